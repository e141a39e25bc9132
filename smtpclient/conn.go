package smtpclient

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Envelope is one message for Conn.Send.
type Envelope struct {
	From string // MAIL FROM reverse-path without brackets; "" is the null path
	To   string // RCPT TO forward-path without brackets
	// Data is the message, CRLF line endings, already dot-stuffed (RFC 5321
	// section 4.5.2) and without the final ".\r\n", in pieces written in
	// order (e.g. an edition's shared chunks and the recipient's lines,
	// never put together), or in one. Send checks the stuffing and refuses
	// a message with a line that starts with a single ".", which would end
	// the data early and have the rest read as commands.
	Data [][]byte
}

// Result is what happened to one Envelope.
type Result struct {
	// OK: the server accepted the message (2yz to the end of data, RFC 5321
	// section 4.1.1.4) and is now responsible for it.
	OK bool
	// Reply is the text of the server's reply that decided this message,
	// without the reply code but with any enhanced status code, lines
	// joined by "\n": e.g. "2.0.0 Ok: queued as 4F2A", or "5.1.1 No such
	// user". "" when no reply came.
	Reply string
	// Err is set when !OK; see Error. With Code 0 (no reply decided it):
	//   - ConnLost, Stage StageData: its data was sent but the reply to it
	//     never came (connection lost): it may or may not have been
	//     delivered, and retrying may deliver it twice. That window, one
	//     message per lost connection, is inherent to SMTP (RFC 1047).
	//   - ConnLost, any other stage: the connection failed or closed before
	//     its data was sent; StageMail means nothing of it was sent at all.
	//   - not ConnLost, Stage StageMail: Send stopped because ctx was
	//     cancelled before this message (errors.Is(Err, ctx.Err())).
	//   - Stage StageMessage, Permanent: refused before sending (see Send).
	Err *Error
}

// Extensions are the SMTP service extensions a server advertised in its
// EHLO reply (RFC 5321 section 4.1.1.1), after STARTTLS when used.
type Extensions struct {
	Pipelining          bool     // RFC 2920
	StartTLS            bool     // RFC 3207
	EightBitMIME        bool     // RFC 6152
	SMTPUTF8            bool     // RFC 6531
	EnhancedStatusCodes bool     // RFC 2034
	Size                int64    // RFC 1870 message size limit; 0: none given
	Auth                []string // RFC 4954 SASL mechanisms, upper case
}

// Conn is one SMTP connection that sends messages in batches. Use it from one
// goroutine at a time (Send and Close are serialised anyway); open several
// for parallelism.
type Conn struct {
	cfg  Config
	conn net.Conn // TCP, or TLS over it
	br   *bufio.Reader
	bw   *wireWriter
	ext  Extensions
	helo string

	mu     sync.Mutex
	broken atomic.Bool
	closed atomic.Bool

	// Scratch, reused for every reply, command and Send.
	text  []byte // the last reply's text: its lines, without codes, joined by "\n"
	num   []byte // SIZE= parameter
	long  []byte // the start of an overlong reply line
	valid []bool // which envelopes of a Send pass checkEnvelope
	// A stream's messages from the first not yet reported on, and their
	// results (see batch).
	envs    []Envelope
	results []Result

	// flushes counts Send's writes to the socket, each the start of a
	// round trip; the tests check pipelining needs one per message.
	flushes int
}

// Broken reports whether the connection can no longer be used: a send lost
// it, the server closed it (421), or Close was called. Close it and dial again.
func (c *Conn) Broken() bool { return c.broken.Load() || c.closed.Load() }

// Extensions returns what the server advertised.
func (c *Conn) Extensions() Extensions {
	e := c.ext
	e.Auth = append([]string(nil), e.Auth...)
	return e
}

// Close sends QUIT (RFC 5321 section 4.1.1.10) when the connection is healthy,
// waiting at most cfg.Timeout for the reply, and closes it in any case.
func (c *Conn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed.Swap(true) {
		return nil
	}
	defer c.conn.Close()
	if c.broken.Load() {
		return nil
	}
	_ = c.conn.SetDeadline(time.Now().Add(c.cfg.timeout()))
	if _, err := c.command("QUIT"); err != nil {
		return fmt.Errorf("closing SMTP connection: %w", err)
	}
	return nil
}

// Send sends envs[i] and stores its outcome in results[i] (results must be at
// least as long as envs). It never returns early without filling every
// result.
//
// With PIPELINING (RFC 2920) each message costs one round trip: the data of
// one message, its end-of-data dot and the next message's MAIL, RCPT and DATA
// go out in one write, and the replies to all of them come back together.
// Without it, Send works in lock-step.
//
// Failures are classified as by Classify: 5xx is Permanent, 4xx temporary;
// 421 (the server is closing, RFC 5321 section 3.8) is ConnLost and
// Throttled; 4.7.28 and 451 4.7.x are Throttled. When the connection is lost (421,
// EOF, reset, timeout, protocol error) the message in flight and all later
// ones get ConnLost errors (see Result.Err) and the Conn is Broken.
//
// ctx's deadline bounds the I/O (as does cfg.Timeout, per round trip). When
// ctx is cancelled, Send stops before the next message: the one in flight
// finishes, so that shutting down never creates a duplicate, and the rest
// are reported not sent (temporary, connection still usable).
func (c *Conn) Send(ctx context.Context, envs []Envelope, results []Result) {
	c.SendEach(ctx, envs, results, nil)
}

// SendEach is Send that also calls done(k), in order, each time the outcomes
// results[:k] are final, while the later messages are still on their way: a
// caller can write outcomes down as they come without the pipeline running
// dry between its groups (each drain would cost a round trip). done runs on
// the sending goroutine, so the connection waits while it runs; its last
// call is done(len(envs)). It may cancel ctx to stop before the next message.
func (c *Conn) SendEach(ctx context.Context, envs []Envelope, results []Result, done func(k int)) {
	if len(results) < len(envs) {
		panic("smtpclient: Conn.Send: results is shorter than envs")
	}
	results = results[:len(envs)]
	clear(results)
	if len(envs) == 0 {
		if done != nil {
			done(0)
		}
		return
	}
	next, k := 0, 0
	c.stream(ctx, func() (Envelope, bool) {
		if next == len(envs) {
			return Envelope{}, false
		}
		next++
		return envs[next-1], true
	}, func(r Result) {
		results[k] = r
		k++
		if done != nil {
			done(k)
		}
	}, true)
}

// SendStream sends the messages next gives, in order, as one stream on the
// connection, until next reports there are none left, ctx ends or the
// connection is lost: a sender that keeps next supplied never lets the
// pipeline run dry, however many messages it sends. next is asked for a
// message while the one before is on its way, and should answer at once
// (false, when it has nothing ready, ends the stream: call SendStream again
// when there is more). done gets each message's Result, in the order next
// gave them, as soon as it is final, while later messages are on their way;
// it runs on the sending goroutine. Every message next gave gets its done
// before SendStream returns; the envelope, and the memory its Data points
// to, are the caller's again once the message after it was asked for and
// its own done came.
//
// When ctx is cancelled, SendStream asks for nothing more and the messages
// already asked for finish, or are reported not sent (stopped before them)
// when their data was not written yet, the connection still usable. A lost
// connection reports the messages not sent, as Send does.
func (c *Conn) SendStream(ctx context.Context, next func() (Envelope, bool), done func(Result)) {
	c.stream(ctx, next, done, false)
}

// stream runs a batch on the messages pull gives; drain (Send, SendEach):
// when the connection is lost or ctx ends, the messages pull has not given
// yet are taken and reported not sent as well.
func (c *Conn) stream(ctx context.Context, pull func() (Envelope, bool), each func(Result), drain bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := batch{c: c, ctx: ctx, pull: pull, each: each, drain: drain, envs: c.envs[:0], results: c.results[:0]}
	c.valid = c.valid[:0]
	defer func() {
		b.emit(len(b.envs))
		clear(b.envs) // nothing of the caller's is kept
		c.envs, c.results = b.envs[:0], b.results[:0]
	}()
	if c.closed.Load() || c.broken.Load() {
		// One message at least, so that the caller learns.
		if b.pullOne(true) {
			b.notSent(&Error{Stage: StageMail, ConnLost: true, Text: ErrConnBroken.Error(), Err: ErrConnBroken})
		}
		return
	}
	if c.ext.Pipelining {
		b.sendPipelined()
	} else {
		b.sendLockStep()
	}
}
