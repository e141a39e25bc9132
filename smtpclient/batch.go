package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// batch is the state of one stream (Send, SendEach, SendStream): the
// envelopes pull gave and not yet reported, their results, and i, the first
// message whose outcome is not recorded yet (the one whose replies are read
// next). The methods that record an outcome move i on; those that give the
// connection up mark every message from i on not sent. Messages are asked
// for one at a time, when the one before is on its way, and dropped from
// envs once each has them (see emit), so a stream of any length keeps a few.
type batch struct {
	c        *Conn
	ctx      context.Context
	envs     []Envelope
	results  []Result
	i        int
	reported int                     // results[:reported] went to each
	pull     func() (Envelope, bool) // nil once it said there are no more
	each     func(Result)
	drain    bool // see Conn.stream
}

// groupStages are the commands of a transaction up to the data, in order.
var groupStages = [3]string{StageMail, StageRcpt, StageData}

// groupReplyOK reports whether code is the success reply to command k of
// groupStages: 2yz, and 354 to DATA (RFC 5321 section 4.3.2).
func groupReplyOK(k, code int) bool {
	return positive(code) || k == 2 && code == codeStartMailData
}

// nextValid is the first index from i, among the messages given so far,
// whose envelope passed checkEnvelope.
func (b *batch) nextValid(i int) int {
	for i < len(b.envs) && !b.c.valid[i] {
		i++
	}
	return i
}

// nextToSend is nextValid, asking pull for more messages when those given
// run out, unless ctx has ended: len(b.envs) means there is none.
func (b *batch) nextToSend(i int) int {
	for {
		i = b.nextValid(i)
		if i < len(b.envs) || !b.pullOne(false) {
			return i
		}
	}
}

// pullOne asks pull for one more message and checks it; force asks even
// after ctx ended (to report it not sent). It reports whether one came.
func (b *batch) pullOne(force bool) bool {
	if b.pull == nil || (!force && b.ctx.Err() != nil) {
		return false
	}
	e, ok := b.pull()
	if !ok {
		b.pull = nil
		return false
	}
	b.envs = append(b.envs, e)
	err := b.c.checkEnvelope(&b.envs[len(b.envs)-1])
	r := Result{}
	if err != nil {
		r.Err = err
	}
	b.results = append(b.results, r)
	b.c.valid = append(b.c.valid, err == nil)
	return true
}

// advance moves on to the next message among those given.
func (b *batch) advance() { b.i = b.nextValid(b.i + 1) }

// report tells the caller the outcomes before message i. It is called once
// the next message's commands are written, so that the server works on them
// while the caller does.
func (b *batch) report() { b.emit(b.i) }

// emit passes the results before k that each has not had, and drops them
// (and their envelopes) once there are enough to be worth the copy; i moves
// with them. Called between messages only: no other index is held then.
func (b *batch) emit(k int) {
	for ; b.reported < k; b.reported++ {
		b.each(b.results[b.reported])
	}
	if b.reported < 64 {
		return
	}
	n := copy(b.envs, b.envs[b.reported:])
	clear(b.envs[n:])
	b.envs = b.envs[:n]
	b.results = b.results[:copy(b.results, b.results[b.reported:])]
	b.c.valid = b.c.valid[:copy(b.c.valid, b.c.valid[b.reported:])]
	b.i -= b.reported
	b.reported = 0
}

// fail records that message i was refused by e and moves on.
func (b *batch) fail(e *Error) {
	b.results[b.i] = Result{Reply: replyText(e), Err: e}
	b.advance()
}

// endOfData sends what was written after message i's data (its end of data,
// and in pipelined mode the next message's commands), reads the reply to the
// end of data (RFC 5321 section 4.1.1.4) and records i's outcome; both modes
// end every message they send here. It reports whether the connection is
// still usable.
func (b *batch) endOfData() bool {
	c := b.c
	code, err := c.roundTrip()
	if err != nil {
		b.lostAfterData(err)
		return false
	}
	if positive(code) {
		b.results[b.i] = Result{OK: true, Reply: string(c.text)}
		b.advance()
		return true
	}
	e := c.replyError(StageData, code, "end of data")
	b.results[b.i] = Result{Reply: string(c.text), Err: e}
	b.advance()
	if code == CodeServiceUnavailable {
		b.abandon(e)
		return false
	}
	return true
}

// reset ends message i's transaction, refused by failed, and moves on: a
// single "." when its DATA was accepted (RFC 2920 section 3.1: "if the DATA
// command was accepted the client SMTP should send a single dot"; the server
// then fails the empty transaction), then RSET (RFC 5321 section 4.1.1.5), as
// the failed transaction may still be open (a rejected RCPT leaves the
// accepted MAIL in place), then, with sendNext, the next message's commands
// in the same write. It reports whether the connection is still usable.
func (b *batch) reset(failed *Error, dataAccepted, sendNext bool) bool {
	c := b.c
	b.fail(failed)
	if dataAccepted {
		c.writeEndOfData()
	}
	c.writeRset()
	if sendNext {
		c.writeGroup(&b.envs[b.i])
	}
	if err := c.flush(); err != nil {
		b.lose(StageMail, err)
		return false
	}
	if dataAccepted {
		code, err := c.readReply()
		if err != nil {
			b.lose(StageMail, err)
			return false
		}
		if code == CodeServiceUnavailable {
			b.abandon(c.replyError(StageData, code, "end of data"))
			return false
		}
	}
	return b.readRset()
}

// readRset reads the reply to a RSET. Anything but 250 leaves the dialogue in
// an unknown state: the connection is given up and the messages from i on are
// not sent (a pipelined group after the RSET had no effect that counts).
func (b *batch) readRset() bool {
	code, err := b.c.readReply()
	if err != nil {
		b.lose(StageMail, err)
		return false
	}
	if code != codeOK {
		e := b.c.replyError(StageReset, code, "RSET")
		e.ConnLost = true
		b.abandon(e)
		return false
	}
	return true
}

// lose handles an I/O or protocol error at stage of message i, before any of
// its data was sent: i and the rest are not sent, the connection is broken.
func (b *batch) lose(stage string, err error) { b.lost(stage, "not sent: ", err) }

// lostAfterData handles an I/O error after message i's data was (at least
// partly) written: its fate is unknown, so it is not OK, and ConnLost tells the
// caller to retry it - the documented duplicate window. The rest were not
// sent.
func (b *batch) lostAfterData(err error) {
	b.lost(StageData, "no reply to the end of data, the message may or may not have been delivered: ", err)
}

// lost gives the connection up after err at stage of message i, which fails
// with err (its text after what), and marks the rest not sent.
func (b *batch) lost(stage, what string, err error) {
	b.c.giveUp()
	if b.i >= len(b.envs) {
		return
	}
	err = withCtx(b.ctx, err)
	e := ioError(stage, err)
	e.Text = what + e.Text
	b.results[b.i] = Result{Err: e}
	b.advance()
	b.notSent(lostNotSent(err))
}

// closing handles a server that closes the connection (421) while message i
// is unresolved: i gets first (the first failure of its group) or the
// closing reply, the rest are not sent.
func (b *batch) closing(first, closing *Error) {
	e := first
	if e == nil {
		e = closing
	}
	e.ConnLost = true
	b.fail(e)
	b.abandon(closing)
}

// abandon gives the connection up: the messages from i on are not sent.
func (b *batch) abandon(cause *Error) {
	b.c.giveUp()
	b.notSent(cause)
}

// notSent marks the valid messages from i on as not sent because of cause:
// those given so far, and with drain all that pull still has.
func (b *batch) notSent(cause *Error) {
	if b.drain {
		for b.pullOne(true) {
		}
	}
	for i := b.nextValid(b.i); i < len(b.envs); i = b.nextValid(i + 1) {
		e := &Error{Stage: StageMail, ConnLost: cause.ConnLost, Timeout: cause.Timeout, Err: cause}
		if cause.Code != 0 {
			e.Text = fmt.Sprintf("not sent: the server closed the connection (%d %s)", cause.Code, cause.Text)
		} else {
			e.Text = "not sent: " + cause.Text
		}
		b.results[i] = Result{Err: e}
	}
}

// stopped marks the messages from i on as not sent because ctx ended; the
// connection stays usable.
func (b *batch) stopped(err error) {
	b.notSent(&Error{Stage: StageMail, Text: "stopped before this message: " + err.Error(),
		Timeout: errors.Is(err, context.DeadlineExceeded), Err: err})
}

// giveUp closes the connection for good: the dialogue is out of step or over.
func (c *Conn) giveUp() {
	c.broken.Store(true)
	_ = c.conn.Close()
}

// ioError classifies an error without a reply (EOF, reset, timeout, protocol
// error): always ConnLost, the dialogue is out of step.
func ioError(stage string, err error) *Error {
	e := classify(err, nil)
	e.Stage, e.ConnLost = stage, true
	return e
}

func lostNotSent(err error) *Error {
	e := ioError(StageMail, err)
	e.Text = "the connection was lost before this message: " + e.Text
	e.Timeout = false // the timeout belongs to the message in flight
	return e
}

// withCtx adds ctx's error to an I/O error it caused (its deadline is on the
// socket), so that errors.Is(err, context.DeadlineExceeded) holds. The socket
// deadline may fire a moment before ctx's own timer marks ctx done.
func withCtx(ctx context.Context, err error) error {
	ctxErr := ctx.Err()
	if d, ok := ctx.Deadline(); ok && ctxErr == nil && !time.Now().Before(d) && errors.Is(err, os.ErrDeadlineExceeded) {
		ctxErr = context.DeadlineExceeded
	}
	if ctxErr != nil && !errors.Is(err, ctxErr) {
		return errors.Join(ctxErr, err)
	}
	return err
}
