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

	// Reused for every group: nothing per recipient outlives its group.
	// Each message is its recipient's own lines (a few KB in msgs[k]) and
	// the edition's shared chunks, copied only into the connection's
	// write buffer: a group is never a few MB of whole messages.
	msgs    []mailer.Parts
	envs    []smtpclient.Envelope
	results []smtpclient.Result
	index   []int // envs[k] is jobs[index[k]]
	// The group's envelope senders, made into one buffer and one string
	// (see returnPaths): one allocation a group, not one a message.
	paths []byte
	ends  []int
}

func (m *bulkMailer) Send(ctx context.Context, jobs []Job, out []Outcome, done func(k int)) {
	m.envs, m.index = m.envs[:0], m.index[:0]
	if len(m.msgs) < len(jobs) {
		m.msgs = append(m.msgs, make([]mailer.Parts, len(jobs)-len(m.msgs))...)
	}
	now := time.Now()
	for i, j := range jobs {
		msg := &m.msgs[len(m.envs)]
		url, token := m.compose.unsubscribe(j.SubscriberUUID)
		err := m.prepared.AppendParts(msg, mailer.Recipient{
			Name:             j.Name,
			Email:            j.Email,
			MessageID:        j.MessageID,
			UnsubscribeURL:   url,
			UnsubscribeToken: token,
			Date:             now,
		})
		if err == nil && m.compose.DKIM != nil {
			err = m.compose.DKIM.SignParts(msg)
		}
		if err != nil {
			// The recipient's own fields can't make a valid message (an
			// address the database should never have held): final.
			out[i] = Outcome{Permanent: true, Reply: "build message: " + err.Error()}
			continue
		}
		m.envs = append(m.envs, smtpclient.Envelope{From: m.from, To: j.Email, Data: msg.Data})
		m.index = append(m.index, i)
	}
	m.returnPaths(jobs)
	if cap(m.results) < len(m.envs) {
		m.results = make([]smtpclient.Result, len(m.envs))
	}
	res := m.results[:len(m.envs)]
	clear(res)
	from := 0 // the first of envs whose outcome is not in out yet
	m.conn.SendEach(ctx, m.envs, res, func(k int) {
		for ; from < k; from++ {
			i := m.index[from]
			r := res[from]
			if r.OK {
				out[i] = Outcome{Sent: true, Reply: r.Reply}
				continue
			}
			out[i] = outcomeOf(r.Err)
			// A message stopped before any of it went out (the connection
			// died first, or ctx ended) was never sent: no attempt counts.
			out[i].NotTried = r.Err.Code == 0 && r.Err.Stage == smtpclient.StageMail
		}
		// Jobs whose message could not be built have their outcome
		// already: those up to the next message are final too.
		if k < len(m.envs) {
			done(m.index[k])
		} else {
			done(len(jobs))
		}
	})
}

// returnPaths sets each envelope's sender to its delivery's own, when the
// composer makes them (Composer.ReturnPath).
func (m *bulkMailer) returnPaths(jobs []Job) {
	rp := m.compose.ReturnPath
	if rp == nil || len(m.envs) == 0 {
		return
	}
	m.paths, m.ends = m.paths[:0], m.ends[:0]
	for _, i := range m.index {
		m.paths = rp(m.paths, jobs[i].ID)
		m.ends = append(m.ends, len(m.paths))
	}
	all := string(m.paths)
	start := 0
	for k, end := range m.ends {
		m.envs[k].From = all[start:end]
		start = end
	}
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
