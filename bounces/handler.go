package bounces

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/subscribers"
)

// Handler acts on what comes back, by one policy, whatever way it came:
// the SMTP reply at send time, a bounce or complaint mailed to a VERP
// address, a mail to the unsubscribe address.
//
//   - a hard bounce marks the subscriber bounced at once and puts the
//     address on the suppression list;
//   - soft bounces do the same once Soft.Count of them, of different
//     deliveries, came within Soft.Within;
//   - a complaint unsubscribes at once, on the suppression list as a
//     complaint;
//   - a mailto unsubscribe unsubscribes, as the one-click link does.
//
// Each change keeps its evidence (source, status, diagnostic, delivery) in
// the consent record and in bounce_events. What can't be tied to a live
// subscriber (a forged token, a delivery that does not exist, an erased
// subscriber, a token used again) changes nothing and says so in the log,
// naming subscribers by id, never by address.
type Handler struct {
	DB   *sqlx.DB
	Subs *subscribers.Store
	VERP *VERP
	Soft SoftPolicy
	Log  *slog.Logger
}

// Event is one bounce or complaint about a delivery.
type Event struct {
	Delivery int64
	Source   string // where it came from: smtp (the reply at send time), inbound (bounces serve)
	Report
}

// Outcome is what Handle did.
type Outcome string

const (
	Bounced      Outcome = "bounced"      // marked bounced and suppressed
	Counted      Outcome = "counted"      // a soft bounce recorded, below the policy's count
	Unsubscribed Outcome = "unsubscribed" // unsubscribed (complaint, mailto)
	Nothing      Outcome = "nothing"      // ignored, or refused: see the log
)

// ErrUnknown is the error of a bounce or unsubscribe that names nothing
// known: a forged token, a delivery that does not exist, an erased
// subscriber. Nothing was changed.
var ErrUnknown = errors.New("names no delivery or subscriber")

// ErrReused is the error of a bounce of a kind its delivery already had.
var ErrReused = errors.New("already handled for that delivery")

// ErrMalformed is the error of a message to a bounce address that can't be
// read as a bounce, a complaint or an auto-reply.
var ErrMalformed = errors.New("not read")

// Final tells an error of Inbound that says the message can't be used, as
// against one that may pass (the database away): a final one was logged,
// and the message is to be dropped.
func Final(err error) bool {
	return errors.Is(err, ErrUnknown) || errors.Is(err, ErrReused) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrNotOurs)
}

// ErrNotOurs is the error of a recipient outside the bounce domain's two
// forms of address.
var ErrNotOurs = errors.New("the recipient is not an address of the bounce domain")

// Inbound handles a message mailed to rcpt, an address of the bounce
// domain (Classify): source names the way it came (inbound for bounces
// serve).
func (h *Handler) Inbound(ctx context.Context, source, rcpt string, msg io.Reader) (Outcome, error) {
	to := h.VERP.Classify(rcpt)
	switch to.Kind {
	case ToUnsubscribe:
		return h.unsubscribe(ctx, source, to.Token)
	case ToVERP:
	default:
		return Nothing, ErrNotOurs
	}
	id, err := h.VERP.Delivery(to.Token)
	if err != nil {
		h.Log.Warn("bounce refused: forged or damaged VERP token", "source", source)
		return Nothing, fmt.Errorf("%w: %w", ErrUnknown, err)
	}
	rep, err := Parse(msg)
	if err != nil {
		h.Log.Warn("bounce refused: message not read", "source", source, "delivery", id, "err", err)
		return Nothing, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return h.Handle(ctx, Event{Delivery: id, Source: source, Report: *rep})
}

// target is the delivery an event names and its subscriber.
type target struct {
	Delivery   int64  `db:"id"`
	Subscriber int64  `db:"subscriber_id"`
	Email      string `db:"email"`
	Status     string `db:"status"`
}

// findTarget reads the delivery by id alone: ids are unique across the
// partitions (one sequence), and PostgreSQL looks the id up in each
// partition's primary key, a few index probes a bounce.
const findTarget = `
SELECT d.id, d.subscriber_id, s.email, s.status
FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id
WHERE d.id = $1`

// Handle acts on a bounce or complaint about a delivery, by the policy.
func (h *Handler) Handle(ctx context.Context, ev Event) (Outcome, error) {
	log := h.Log.With("source", ev.Source, "delivery", ev.Delivery, "kind", ev.Kind, "status", ev.Status)
	switch ev.Kind {
	case AutoReply, Ignored:
		log.Info("not a bounce: ignored")
		return Nothing, nil
	case Hard, Soft, Complaint:
	default:
		return Nothing, fmt.Errorf("handle %s: not a bounce or complaint", ev.Kind)
	}
	var t target
	switch err := h.DB.GetContext(ctx, &t, findTarget, ev.Delivery); {
	case errors.Is(err, sql.ErrNoRows):
		log.Warn("bounce refused: no such delivery")
		return Nothing, ErrUnknown
	case err != nil:
		return Nothing, fmt.Errorf("find delivery %d: %w", ev.Delivery, err)
	}
	log = log.With("subscriber", t.Subscriber)
	if erased(t.Email) {
		log.Warn("bounce refused: the subscriber's data was erased")
		return Nothing, ErrUnknown
	}
	added, err := h.record(ctx, ev, t.Subscriber, string(ev.Kind))
	if err != nil {
		return Nothing, err
	}
	if !added {
		log.Warn("bounce refused: that delivery already had one of that kind (a token used again)")
		return Nothing, ErrReused
	}
	out, err := h.act(ctx, log, t, ev)
	if err != nil {
		// Not done: the event goes, so that the bounce, sent again, is
		// not taken for a token used again.
		if _, derr := h.DB.ExecContext(context.WithoutCancel(ctx), `DELETE FROM bounce_events WHERE delivery_id = $1 AND kind = $2`, ev.Delivery, ev.Kind); derr != nil {
			err = errors.Join(err, derr)
		}
	}
	return out, err
}

// act applies the policy to a recorded event.
func (h *Handler) act(ctx context.Context, log *slog.Logger, t target, ev Event) (Outcome, error) {
	switch ev.Kind {
	case Complaint:
		return h.suppress(ctx, log, t, ev, subscribers.ReasonComplained, subscribers.MethodComplaint, Unsubscribed)
	case Soft:
		n, err := h.softCount(ctx, t.Subscriber)
		if err != nil {
			return Nothing, err
		}
		if n < h.Soft.Count {
			log.Info("soft bounce counted", "soft_bounces", n, "policy", h.Soft.Count)
			return Counted, nil
		}
		ev.Diagnostic = clip(fmt.Sprintf("%d soft bounces within %s; last: %s", n, h.Soft.Within, ev.Diagnostic), MaxDiagnostic)
	}
	return h.suppress(ctx, log, t, ev, subscribers.ReasonBounced, subscribers.MethodBounce, Bounced)
}

// SendTime handles the bounces among a send's SMTP replies
// (delivery.Worker.Bounced): a hard bounce, or a temporary failure given
// up, as a soft one. The send has marked a hard-bounced subscriber bounced
// already; this adds the suppression and the evidence.
func (h *Handler) SendTime(ctx context.Context, results []delivery.Result) {
	for _, r := range results {
		ev := Event{Delivery: r.ID, Source: "smtp", Report: Report{Kind: Soft, Shape: "reply", Status: r.Enhanced, Diagnostic: diagnostic(r.Reply)}}
		if r.HardBounce {
			ev.Kind = Hard
		}
		if ev.Status == "" && r.Code != 0 {
			ev.Status = fmt.Sprint(r.Code)
		}
		if _, err := h.Handle(ctx, ev); err != nil && !errors.Is(err, ErrUnknown) && !errors.Is(err, ErrReused) {
			h.Log.Error("handle a bounce at send time", "delivery", r.ID, "subscriber", r.SubscriberID, "err", err)
		}
	}
}

// suppress puts the subscriber's address on the suppression list, which
// takes them out of every send (bounced, or unsubscribed for a complaint)
// and adds the evidence to their consent record.
func (h *Handler) suppress(ctx context.Context, log *slog.Logger, t target, ev Event, reason subscribers.Reason, m subscribers.Method, out Outcome) (Outcome, error) {
	res, err := h.Subs.Suppress(ctx, t.Email, reason, evidence(ev), subscribers.Source{Method: m})
	if err != nil {
		return Nothing, fmt.Errorf("suppress subscriber %d: %w", t.Subscriber, err)
	}
	log.Info("subscriber suppressed", "reason", reason, "was_mailed", res.Stopped, "newly_listed", res.Added)
	return out, nil
}

// evidence is the consent record's note of an event: where from, the
// status, the delivery and the diagnostic, within subscribers.MaxNote.
func evidence(ev Event) string {
	s := fmt.Sprintf("%s %s %s, delivery %d", ev.Source, ev.Shape, ev.Status, ev.Delivery)
	if ev.Diagnostic != "" {
		s += ": " + ev.Diagnostic
	}
	return clip(strings.Join(strings.Fields(s), " "), subscribers.MaxNote)
}

const insertEvent = `
INSERT INTO bounce_events (delivery_id, subscriber_id, kind, source, status, diagnostic)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (delivery_id, kind) WHERE delivery_id IS NOT NULL DO NOTHING`

// record adds the event to bounce_events; false when its delivery had one
// of that kind already.
func (h *Handler) record(ctx context.Context, ev Event, subscriber int64, kind string) (bool, error) {
	var delivery any
	if ev.Delivery != 0 {
		delivery = ev.Delivery
	}
	r, err := h.DB.ExecContext(ctx, insertEvent, delivery, subscriber, kind, ev.Source, clip(ev.Status, 20), ev.Diagnostic)
	if err != nil {
		return false, fmt.Errorf("record %s bounce of delivery %d: %w", kind, ev.Delivery, err)
	}
	n, _ := r.RowsAffected()
	return n == 1, nil
}

// softCount is how many of the subscriber's deliveries soft-bounced within
// the policy's period.
func (h *Handler) softCount(ctx context.Context, subscriber int64) (int, error) {
	var n int
	err := h.DB.GetContext(ctx, &n, `SELECT count(DISTINCT delivery_id) FROM bounce_events
		WHERE subscriber_id = $1 AND kind = 'soft' AND received_at > now() - $2 * interval '1 second'`,
		subscriber, h.Soft.Within.Seconds())
	if err != nil {
		return 0, fmt.Errorf("count soft bounces of subscriber %d: %w", subscriber, err)
	}
	return n, nil
}

// unsubscribe handles a mail to unsubscribe+TOKEN@: TOKEN is the one-click
// link's, found as the link's is (subscribers.Store.ByUnsubscribeToken),
// and the subscriber leaves as by the link, the method recorded as mailto.
// RFC 2369 section 3.2: the mailto's content is not read.
func (h *Handler) unsubscribe(ctx context.Context, source, token string) (Outcome, error) {
	sub, err := h.Subs.ByUnsubscribeToken(ctx, token)
	if errors.Is(err, subscribers.ErrNotFound) {
		h.Log.Warn("mailto unsubscribe refused: unknown token", "source", source)
		return Nothing, ErrUnknown
	}
	if err != nil {
		return Nothing, err
	}
	changed, err := h.Subs.UnsubscribeBy(ctx, sub, subscribers.Source{Method: subscribers.MethodMailto})
	if err != nil {
		return Nothing, err
	}
	if changed {
		if _, err := h.record(ctx, Event{Source: source, Report: Report{Shape: "mailto"}}, sub.ID, string(Unsubscribe)); err != nil {
			return Nothing, err
		}
	}
	h.Log.Info("unsubscribed", "how", "mailto", "subscriber", sub.ID, "changed", changed)
	return Unsubscribed, nil
}

// erased tells the placeholder address of an erased subscriber
// (subscribers.Store.Erase): erased-ID@invalid.
func erased(email string) bool {
	return strings.HasPrefix(email, "erased-") && strings.HasSuffix(email, "@invalid")
}
