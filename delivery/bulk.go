package delivery

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"newsletter/mailer"
	"newsletter/smtpclient"
)

// Prepare encodes the composer's edition once for the bulk path.
func (c *Composer) Prepare() (*mailer.Prepared, error) {
	html, text := c.Rendered.Parts()
	return mailer.Prepare(mailer.PrepareInput{
		From:              c.From,
		Subject:           c.Rendered.Subject(),
		ListID:            c.ListID,
		UnsubscribeMailto: c.UnsubscribeMailto,
		UnsubscribeDomain: c.UnsubscribeDomain,
		FeedbackID:        c.FeedbackID,
		Text:              text,
		HTML:              html,
	})
}

// BulkDialer opens pipelined SMTP connections (smtpclient.Conn) that send
// the edition prepared once: each recipient's message is spliced into
// pre-encoded bytes, not built. This is how editions are sent; go-mail
// (smtpclient.DialMsg) sends only test copies and transactional mail.
// dialFailed, when not nil, is told of each relay ("host:port") that could
// not be connected to (for /metrics).
func BulkDialer(relays []smtpclient.Config, c *Composer, p *mailer.Prepared, dialFailed func(relay string)) Dialer {
	return func(ctx context.Context) (Mailer, error) {
		conn, err := dialFirst(ctx, relays, dialFailed)
		if err != nil {
			return nil, err
		}
		return &bulkMailer{conn: conn, compose: c, prepared: p, from: c.From.Address}, nil
	}
}

// dialFirst connects to the first relay that answers, in the order given:
// the first is the primary, the others take over while it is down.
func dialFirst(ctx context.Context, relays []smtpclient.Config, dialFailed func(relay string)) (*smtpclient.Conn, error) {
	var errs []error
	for _, cfg := range relays {
		c, err := smtpclient.Dial(ctx, cfg)
		if err == nil {
			return c, nil
		}
		relay := net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))
		if dialFailed != nil && ctx.Err() == nil {
			dialFailed(relay)
		}
		errs = append(errs, fmt.Errorf("%s: %w", relay, err))
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, errors.New("no SMTP relay configured")
	}
	return nil, errors.Join(errs...)
}

type bulkMailer struct {
	conn     *smtpclient.Conn
	compose  *Composer
	prepared *mailer.Prepared
	from     string

	// Each message is its recipient's own lines (a few KB) and the
	// edition's shared chunks, copied only into the connection's write
	// buffer. A stream holds two messages at a time (the one being written
	// and the next, asked for meanwhile): the buffers go round.
	msgs [4]mailer.Parts
	k    int   // messages made
	jobs []Job // sent and not yet reported, oldest first: jobs[head:]
	head int
	path []byte // scratch for an envelope sender (Composer.ReturnPath)
}

func (m *bulkMailer) Stream(ctx context.Context, next func() (Job, bool), done func(Job, Outcome)) {
	m.jobs, m.head = m.jobs[:0], 0
	m.conn.SendStream(ctx, func() (smtpclient.Envelope, bool) {
		for {
			j, ok := next()
			if !ok {
				return smtpclient.Envelope{}, false
			}
			msg, err := m.message(j)
			if err != nil {
				// The recipient's own fields can't make a valid message
				// (an address the database should never have held):
				// final.
				done(j, Outcome{Permanent: true, Reply: "build message: " + err.Error()})
				continue
			}
			m.jobs = append(m.jobs, j)
			return smtpclient.Envelope{From: m.sender(j), To: j.Email, Data: msg.Data}, true
		}
	}, func(r smtpclient.Result) {
		j := m.jobs[m.head]
		m.jobs[m.head] = Job{}
		// One or two are in flight at any time: drop the reported ones
		// now and then, or a long stream would keep all of its jobs.
		if m.head++; m.head >= 64 || m.head == len(m.jobs) {
			m.jobs, m.head = m.jobs[:copy(m.jobs, m.jobs[m.head:])], 0
		}
		if r.OK {
			done(j, Outcome{Sent: true, Reply: r.Reply})
			return
		}
		o := outcomeOf(r.Err)
		// A message stopped before any of it went out (the connection
		// died first, or ctx ended) was never sent: no attempt counts.
		o.NotTried = r.Err.Code == 0 && r.Err.Stage == smtpclient.StageMail
		done(j, o)
	})
}

// message makes j's message in the next of the buffers.
func (m *bulkMailer) message(j Job) (*mailer.Parts, error) {
	msg := &m.msgs[m.k%len(m.msgs)]
	m.k++
	url, token := m.compose.unsubscribe(j.SubscriberUUID)
	err := m.prepared.AppendParts(msg, mailer.Recipient{
		Name:             j.Name,
		Email:            j.Email,
		MessageID:        j.MessageID,
		UnsubscribeURL:   url,
		UnsubscribeToken: token,
		Date:             time.Now(),
	})
	if err == nil && m.compose.DKIM != nil {
		err = m.compose.DKIM.SignParts(msg)
	}
	return msg, err
}

// sender is the envelope sender of j's message: its delivery's own when
// the composer makes them (Composer.ReturnPath), else the From address.
func (m *bulkMailer) sender(j Job) string {
	if m.compose.ReturnPath == nil {
		return m.from
	}
	m.path = m.compose.ReturnPath(m.path[:0], j.ID)
	return string(m.path)
}

func (m *bulkMailer) Close() error { return m.conn.Close() }

// outcomeOf turns a classified SMTP error into an outcome.
func outcomeOf(e *smtpclient.Error) Outcome {
	return Outcome{
		Permanent:     e.Permanent,
		HardBounce:    e.IsHardBounce(),
		ConnLost:      e.ConnLost,
		Throttled:     e.Throttled,
		Misconfigured: e.Misconfigured,
		Code:          e.Code,
		Enhanced:      e.Enhanced,
		Reply:         e.Error(),
	}
}
