package smtptest

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"sync/atomic"
	"time"
)

// relayQueue bounds the messages waiting to be passed on; past it a message
// is kept but not relayed (and the failure logged) rather than held in
// memory without limit while the relay target is down.
const relayQueue = 4096

// relayAttempts is how often one message is offered to the relay target
// when it answers with a temporary failure or can't be reached, with
// relayRetry doubled between attempts.
const (
	relayAttempts = 3
	relayRetry    = time.Second
)

// relayer passes accepted messages on to another SMTP server, in order, in
// the background. The client's 250 never waits for it: the message is kept
// already (Messages, the .eml folder), and a relay target that is missing or
// failing (a web inbox that did not start) must not become a temporary
// failure that makes the sender retry for minutes.
type relayer struct {
	addr    string
	log     *slog.Logger
	queue   chan Message
	ctx     context.Context // canceled by close, which also ends a relay under way
	stop    context.CancelFunc
	done    chan struct{}
	relayed atomic.Int64
	failed  atomic.Int64
}

func startRelayer(addr string, log *slog.Logger) *relayer {
	ctx, stop := context.WithCancel(context.Background())
	r := &relayer{
		addr:  addr,
		log:   log,
		queue: make(chan Message, relayQueue),
		ctx:   ctx,
		stop:  stop,
		done:  make(chan struct{}),
	}
	go r.run()
	return r
}

// enqueue hands m to the background relay without ever blocking the session.
func (r *relayer) enqueue(m Message) {
	select {
	case r.queue <- m:
	default:
		r.failed.Add(1)
		r.log.Error("relay queue full: message kept but not passed on", "relay", r.addr, "to", m.To)
	}
}

// close stops relaying; messages still queued are kept but not passed on.
func (r *relayer) close() {
	r.stop()
	<-r.done
	if n := len(r.queue); n > 0 {
		r.log.Warn("closing with messages not yet relayed", "relay", r.addr, "messages", n)
	}
}

func (r *relayer) run() {
	defer close(r.done)
	for {
		select {
		case <-r.ctx.Done():
			return
		case m := <-r.queue:
			r.relayOne(m)
		}
	}
}

// relayOne offers m to the relay target until it is accepted, refused for
// good (5xx), or relayAttempts temporary failures have passed.
func (r *relayer) relayOne(m Message) {
	wait := relayRetry
	for attempt := 1; ; attempt++ {
		err := relay(r.ctx, r.addr, m)
		if err == nil {
			r.relayed.Add(1)
			return
		}
		if !temporary(err) || attempt == relayAttempts {
			r.failed.Add(1)
			r.log.Error("message kept but not passed on to the relay", "relay", r.addr, "to", m.To, "attempts", attempt, "err", err)
			return
		}
		r.log.Warn("relay failed, retrying", "relay", r.addr, "to", m.To, "attempt", attempt, "in", wait, "err", err)
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-r.ctx.Done():
			t.Stop()
			r.failed.Add(1)
			return
		}
		wait *= 2
	}
}

// temporary tells a failure worth retrying: anything but a 5xx reply (RFC
// 5321 section 4.2.1: 4yz is a transient negative completion, and a target
// that can't be reached may come up).
func temporary(err error) bool {
	var tpe *textproto.Error
	return !errors.As(err, &tpe) || tpe.Code/100 != 5
}

// relay forwards m to a plain SMTP server with the standard library client. A fixed
// deadline keeps a relay that stopped answering from holding up the messages
// behind m; canceling ctx ends the exchange at once.
func relay(ctx context.Context, addr string, m Message) error {
	d := net.Dialer{Timeout: 10 * time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("dialing relay %s: %w", addr, err)
	}
	defer context.AfterFunc(ctx, func() { conn.Close() })()
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		conn.Close()
		return fmt.Errorf("setting relay deadline: %w", err)
	}
	return relayOn(conn, addr, m)
}

// relayOn delivers m over an already connected conn using net/smtp. No STARTTLS and
// no AUTH: the relay target is a local development catcher such as Mailpit.
func relayOn(conn net.Conn, addr string, m Message) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		conn.Close()
		return fmt.Errorf("parsing relay address: %w", err)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting from relay %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("relay MAIL FROM: %w", err)
	}
	for _, rcpt := range m.To {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("relay RCPT TO %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("relay DATA: %w", err)
	}
	if _, err := w.Write(m.Data); err != nil {
		return fmt.Errorf("relay writing message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("relay end of DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("relay QUIT: %w", err)
	}
	return nil
}
