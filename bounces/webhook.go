package bounces

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"newsletter/delivery"
	"newsletter/subscribers"
)

// Webhooks serves POST /webhooks/{provider}: the bounces and complaints
// that relays (Amazon SES through SNS, Postmark, Mailgun, SendGrid) report
// over HTTP, each authenticated by the provider's own scheme and handed to
// the Handler as a bounce mailed to a VERP address would be. A provider
// left nil is not configured: its URL answers 404, as any unknown path.
type Webhooks struct {
	Handler  *Handler
	SES      *SES
	Postmark *Postmark
	Mailgun  *Mailgun
	SendGrid *SendGrid
}

// MaxWebhookBody is the largest request body read: a provider's batch of
// events is a few KB; SendGrid's largest batches stay well under this.
const MaxWebhookBody = 1 << 20

// provider authenticates a webhook request and reads its events.
type provider interface {
	events(ctx context.Context, r *http.Request, body []byte) ([]hookEvent, error)
}

// hookEvent is one event as a provider reports it: the report, and what
// names the delivery it is about, tried in this order.
type hookEvent struct {
	Report
	Sender    string // the envelope sender: our VERP address when the relay kept it
	MessageID string // our Message-ID, as the provider quotes it
	Recipient string // the address mailed: its latest delivery, when nothing else names one
}

// errUnauthorized is the error of a request whose signature or credentials
// are missing or wrong: 401, and nothing is done.
var errUnauthorized = errors.New("not authenticated")

// errPayload is the error of a request that is authentic but not read:
// 400.
type errPayload struct{ err error }

func (e errPayload) Error() string { return "bad payload: " + e.err.Error() }

func badPayload(format string, args ...any) error { return errPayload{fmt.Errorf(format, args...)} }

func (w *Webhooks) provider(name string) provider {
	// Each check is against a typed nil: a nil *SES in an interface would
	// not compare equal to nil.
	switch name {
	case "ses":
		if w.SES != nil {
			return w.SES
		}
	case "postmark":
		if w.Postmark != nil {
			return w.Postmark
		}
	case "mailgun":
		if w.Mailgun != nil {
			return w.Mailgun
		}
	case "sendgrid":
		if w.SendGrid != nil {
			return w.SendGrid
		}
	}
	return nil
}

// Any tells whether a provider is configured.
func (w *Webhooks) Any() bool {
	return w.SES != nil || w.Postmark != nil || w.Mailgun != nil || w.SendGrid != nil
}

// ServeHTTP serves POST /webhooks/{provider}.
func (w *Webhooks) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	p := w.provider(name)
	if p == nil {
		http.NotFound(rw, r)
		return
	}
	log := w.Handler.Log.With("source", "webhook:"+name)
	body, err := io.ReadAll(http.MaxBytesReader(rw, r.Body, MaxWebhookBody))
	if err != nil {
		log.Warn("webhook refused: body not read", "err", err)
		http.Error(rw, "request body too large or unreadable", http.StatusRequestEntityTooLarge)
		return
	}
	evs, err := p.events(r.Context(), r, body)
	var bad errPayload
	switch {
	case errors.Is(err, errUnauthorized):
		log.Warn("webhook refused: not authenticated", "err", err)
		http.Error(rw, "not authenticated", http.StatusUnauthorized)
		return
	case errors.As(err, &bad):
		log.Warn("webhook refused", "err", err)
		http.Error(rw, bad.Error(), http.StatusBadRequest)
		return
	case err != nil:
		log.Error("webhook failed", "err", err)
		http.Error(rw, "try again later", http.StatusInternalServerError)
		return
	}
	if err := w.handle(r.Context(), log, "webhook:"+name, evs); err != nil {
		// The provider sends the batch again; what was done is not done
		// twice (one event of a kind per delivery).
		log.Error("webhook events not all handled", "err", err)
		http.Error(rw, "try again later", http.StatusInternalServerError)
		return
	}
	rw.WriteHeader(http.StatusNoContent)
}

// handle ties each event to its delivery and hands it to the Handler.
// Events that name nothing known are logged and dropped: the provider
// would only send them again.
func (w *Webhooks) handle(ctx context.Context, log *slog.Logger, source string, evs []hookEvent) error {
	var errs []error
	for _, ev := range evs {
		if ev.Kind == Ignored || ev.Kind == AutoReply {
			continue
		}
		id, err := w.delivery(ctx, ev)
		if errors.Is(err, ErrUnknown) {
			log.Warn("webhook event names no delivery of ours", "kind", ev.Kind)
			continue
		}
		if err == nil {
			_, err = w.Handler.Handle(ctx, Event{Delivery: id, Source: source, Report: ev.Report})
		}
		if err != nil && !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrReused) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// delivery finds the delivery an event is about: by the VERP envelope
// sender, else our Message-ID, else the latest delivery to the recipient.
func (w *Webhooks) delivery(ctx context.Context, ev hookEvent) (int64, error) {
	if to := w.Handler.VERP.Classify(ev.Sender); to.Kind == ToVERP {
		if id, err := w.Handler.VERP.Delivery(to.Token); err == nil {
			return id, nil
		}
	}
	if ev.MessageID != "" {
		id, _, err := (&delivery.Queue{DB: w.Handler.DB}).ByMessageID(ctx, ev.MessageID)
		if err == nil {
			return id, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return 0, err
		}
	}
	if ev.Recipient == "" {
		return 0, ErrUnknown
	}
	addr, err := subscribers.NormalizeAddress(ev.Recipient)
	if err != nil {
		return 0, ErrUnknown
	}
	var id int64
	err = w.Handler.DB.GetContext(ctx, &id, `SELECT d.id FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
		WHERE s.email = $1 AND d.status = 'sent' ORDER BY d.id DESC LIMIT 1`, addr)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ErrUnknown
	}
	if err != nil {
		return 0, fmt.Errorf("find the latest delivery to a recipient: %w", err)
	}
	return id, nil
}

// replays remembers the nonces of recent signed requests (Mailgun's
// token, SendGrid's signature), so that a request captured and sent again
// within the time window is refused.
type replays struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

// maxWebhookAge is how far a signed request's timestamp may be from now:
// older is a replay, or a clock badly off.
const maxWebhookAge = 15 * time.Minute

// fresh checks a request's timestamp and nonce, and remembers the nonce.
func (rp *replays) fresh(now, ts time.Time, nonce string) error {
	if d := now.Sub(ts); d > maxWebhookAge || d < -maxWebhookAge {
		return fmt.Errorf("%w: timestamp %s is more than %s from now", errUnauthorized, ts.UTC().Format(time.RFC3339), maxWebhookAge)
	}
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.seen == nil {
		rp.seen = make(map[string]time.Time)
	}
	for k, t := range rp.seen {
		if now.Sub(t) > 2*maxWebhookAge {
			delete(rp.seen, k)
		}
	}
	if _, ok := rp.seen[nonce]; ok {
		return fmt.Errorf("%w: a request seen already (replayed)", errUnauthorized)
	}
	rp.seen[nonce] = now
	return nil
}

// bounceStatus is the status to keep of an event: the enhanced code (RFC
// 3463) in the provider's status or its text, else the reply code.
func bounceStatus(status, text string, code int) string {
	if s := enhanced(status); s != "" {
		return s
	}
	if s := enhanced(text); s != "" {
		return s
	}
	if code != 0 {
		return fmt.Sprint(code)
	}
	return ""
}

// headerValue finds a header field in a message's text (the header part
// alone): how a provider that quotes the message gives our Message-ID.
func headerValue(msg, field string) string {
	for line := range strings.Lines(msg) {
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), field) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
