package web

import (
	"context"
	"errors"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"newsletter/mailer"
	"newsletter/smtpclient"
)

// Outbox sends the reader pages' own mail (confirmation emails) in the
// background, over SMTP connections of its own.
//
// Sending after the answer rather than before it keeps the sign-up page's
// timing the same whether or not an email goes out (a page that answered
// slower for new addresses would tell who is already subscribed), and
// keeps a slow relay out of the request. The queue is bounded: when it is
// full the email is dropped and logged, and the reader can ask again; the
// rate limits keep it from filling in normal use. A failed send is retried
// once on a fresh connection, then logged: the page has already said
// "check your inbox", and the reader can ask for another.
type Outbox struct {
	cfg   smtpclient.Config
	log   *slog.Logger
	queue chan outMail
	// ctx ends the workers' sends when Close runs out of time.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu     sync.Mutex // guards closed against Enqueue
	closed bool
}

type outMail struct {
	subscriberID int64
	msg          mailer.Message
}

// Outbox sizes: confirmation emails are few, and each worker holds one SMTP
// connection while busy.
const (
	DefaultOutboxWorkers = 2
	DefaultOutboxQueue   = 1000
	// outboxIdle is how long a worker keeps an unused connection: relays
	// drop idle sessions after a few minutes (RFC 5321 section 4.5.3.2.7
	// gives servers 5), so it is closed well before.
	outboxIdle = 30 * time.Second
	// outboxSendTimeout bounds one attempt, dial included.
	outboxSendTimeout = 2 * time.Minute
)

// NewOutbox starts workers sending through the relay cfg describes.
func NewOutbox(cfg smtpclient.Config, log *slog.Logger, workers, queue int) *Outbox {
	if workers <= 0 {
		workers = DefaultOutboxWorkers
	}
	if queue <= 0 {
		queue = DefaultOutboxQueue
	}
	ctx, cancel := context.WithCancel(context.Background())
	o := &Outbox{cfg: cfg, log: log, queue: make(chan outMail, queue), ctx: ctx, cancel: cancel}
	for range workers {
		o.wg.Go(o.work)
	}
	return o
}

// Enqueue queues a message for the subscriber; false when it was dropped
// (the queue is full, or the outbox closed).
func (o *Outbox) Enqueue(subscriberID int64, m mailer.Message) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return false
	}
	select {
	case o.queue <- outMail{subscriberID, m}:
		return true
	default:
		o.log.Error("confirmation email dropped: the outbox is full", "subscriber", subscriberID)
		return false
	}
}

// Close stops taking messages and sends those queued, until ctx ends; then
// it abandons the rest (they are logged) and returns ctx's error.
func (o *Outbox) Close(ctx context.Context) error {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.queue)
	}
	o.mu.Unlock()
	done := make(chan struct{})
	go func() { o.wg.Wait(); close(done) }()
	select {
	case <-done:
		o.cancel()
		return nil
	case <-ctx.Done():
		o.cancel()
		<-done
		return ctx.Err()
	}
}

func (o *Outbox) work() {
	var conn *smtpclient.MsgConn
	idle := time.NewTimer(outboxIdle)
	defer func() {
		idle.Stop()
		if conn != nil {
			conn.Close()
		}
	}()
	for {
		select {
		case m, ok := <-o.queue:
			if !ok {
				return
			}
			conn = o.send(conn, m)
			idle.Reset(outboxIdle)
		case <-idle.C:
			if conn != nil {
				conn.Close()
				conn = nil
			}
		}
	}
}

// send sends m, dialling when there is no usable connection and retrying
// once on a new one when the first attempt lost the connection or could
// not dial. It returns the connection to keep, if any.
func (o *Outbox) send(conn *smtpclient.MsgConn, m outMail) *smtpclient.MsgConn {
	if o.ctx.Err() != nil {
		o.log.Error("confirmation email abandoned at shutdown", "subscriber", m.subscriberID)
		return conn
	}
	msg, err := mailer.Build(m.msg)
	if err != nil {
		// Only the shape of the message is wrong: nothing personal in
		// the reason beyond what Build says about fields, which it
		// never quotes.
		o.log.Error("confirmation email not built", "subscriber", m.subscriberID, "err", err)
		return conn
	}
	var last *smtpclient.Error
	for attempt := range 2 {
		if conn == nil || conn.Broken() {
			if conn != nil {
				conn.Close()
			}
			conn = nil
			ctx, cancel := context.WithTimeout(o.ctx, outboxSendTimeout)
			c, err := smtpclient.DialMsg(ctx, o.cfg)
			cancel()
			if err != nil {
				last = smtpclient.Classify(err)
				continue
			}
			conn = c
		}
		ctx, cancel := context.WithTimeout(o.ctx, outboxSendTimeout)
		_, err := conn.Send(ctx, msg)
		cancel()
		if err == nil {
			o.log.Info("confirmation email sent", "subscriber", m.subscriberID, "attempt", attempt+1)
			return conn
		}
		last = smtpclient.Classify(err)
		if !last.ConnLost {
			break // the server answered: a second try gets the same answer
		}
	}
	o.log.Error("confirmation email not sent", "subscriber", m.subscriberID,
		"kind", failureKind(last), "stage", last.Stage, "code", last.Code, "enhanced", last.Enhanced,
		"reason", withoutAddress(last.Error(), m.msg.To), "canceled", errors.Is(last, context.Canceled))
	return conn
}

// failureKind names what kind of failure stopped a confirmation email, so
// that an operator tells a relay to fix from a bad moment or a bad address.
func failureKind(e *smtpclient.Error) string {
	switch {
	case e.Misconfigured:
		return "relay misconfigured"
	case e.Timeout:
		return "timeout"
	case e.Permanent:
		return "permanent"
	case e.Throttled:
		return "throttled"
	}
	return "temporary"
}

// withoutAddress is an SMTP failure's text (the relay's reply, or the
// dial or TLS error, with the fix when there is one) with the recipient's
// address taken out: replies often quote it, and the logs name subscribers
// by id only.
func withoutAddress(text string, to *mail.Address) string {
	if to == nil || to.Address == "" {
		return text
	}
	for {
		i := strings.Index(strings.ToLower(text), strings.ToLower(to.Address))
		if i < 0 {
			return text
		}
		text = text[:i] + "<recipient>" + text[i+len(to.Address):]
	}
}
