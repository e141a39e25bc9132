package newsroom

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/editors"
	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/subscribers"
)

// PreviewRecipient stands in for a subscriber: the preview is what a
// subscriber gets, with a made-up reader and a placeholder unsubscribe link.
var PreviewRecipient = mail.Address{Name: "Ada Lovelace", Address: "reader@example.com"}

// Preview formats.
const (
	PreviewHTML = "html"
	PreviewText = "text"
	PreviewEML  = "eml" // the whole MIME message with its headers
)

// Preview renders the edition exactly as a subscriber gets it, in format.
func (r *Room) Preview(ed *edition.Edition, format string) ([]byte, error) {
	if format != PreviewHTML && format != PreviewText && format != PreviewEML {
		return nil, invalid("format", "want html, text or eml")
	}
	comp, err := r.Compose(ed)
	if err != nil {
		return nil, err
	}
	msg := comp.Message(&PreviewRecipient, "preview@"+r.FromDomain, r.BaseURL+"/u/preview")
	var buf bytes.Buffer
	switch format {
	case PreviewHTML:
		buf.WriteString(msg.HTML)
	case PreviewText:
		buf.WriteString(msg.Text)
	case PreviewEML:
		if err := mailer.BuildTo(&buf, msg); err != nil {
			return nil, fmt.Errorf("build message: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// Test copies: at most MaxTestRecipients a request and TestLimit copies per
// actor in any TestWindow, so a leaked token can't make the newsletter's
// sender an open relay to a few addresses.
const (
	MaxTestRecipients = 10
	TestLimit         = 20
	TestWindow        = time.Minute
)

// TestOptions say how a test copy is marked.
type TestOptions struct {
	// MarkSubject puts "[TEST] " before the subject, so nobody mistakes
	// the copy for the edition sent.
	MarkSubject bool
}

// TestSend sends a copy of the edition to each address, outside the queue:
// no delivery is recorded, and the unsubscribe link is a placeholder that
// belongs to nobody. It returns the server's reply to each.
func (r *Room) TestSend(ctx context.Context, a Actor, ed *edition.Edition, to []string, o TestOptions) ([]string, error) {
	if len(to) == 0 || len(to) > MaxTestRecipients {
		return nil, invalid("to", "give 1 to %d addresses", MaxTestRecipients)
	}
	addrs := make([]string, len(to))
	for i, t := range to {
		addr, err := subscribers.NormalizeAddress(t)
		if err != nil {
			return nil, invalid("to", "%q: %v", t, err)
		}
		addrs[i] = addr
	}
	if !r.allowTests(a.Name, len(addrs)) {
		return nil, ErrTooMany
	}
	comp, err := r.Compose(ed)
	if err != nil {
		return nil, err
	}
	conn, err := smtpclient.DialMsg(ctx, r.SMTP)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	var replies []string
	for _, addr := range addrs {
		msg := comp.Message(&mail.Address{Address: addr}, "test-"+strings.ToLower(rand.Text())+"@"+r.FromDomain, r.BaseURL+"/u/test-copy")
		if o.MarkSubject {
			msg.Subject = "[TEST] " + msg.Subject
		}
		m, err := mailer.Build(msg)
		if err != nil {
			return replies, fmt.Errorf("build test copy: %w", err)
		}
		reply, err := conn.Send(ctx, m)
		if err != nil {
			return replies, fmt.Errorf("send test copy to %s: %w", addr, err)
		}
		replies = append(replies, reply)
	}
	return replies, r.audit(ctx, a, "test-send", ed.DateString(), "to "+strings.Join(addrs, ", "))
}

// allowTests counts n test copies for actor, unless that goes over the
// limit.
func (r *Room) allowTests(actor string, n int) bool {
	r.testMu.Lock()
	defer r.testMu.Unlock()
	if r.testSent == nil {
		r.testSent = map[string][]time.Time{}
	}
	now := time.Now()
	recent := r.testSent[actor][:0]
	for _, t := range r.testSent[actor] {
		if now.Sub(t) < TestWindow {
			recent = append(recent, t)
		}
	}
	if len(recent)+n > TestLimit {
		r.testSent[actor] = recent
		return false
	}
	for range n {
		recent = append(recent, now)
	}
	r.testSent[actor] = recent
	return true
}

// StartSend queues every confirmed subscriber of the edition not yet queued
// and marks its send started (the edition is frozen from then on). The
// workers carry it out. Running it again queues nobody twice; it returns
// how many were queued now. A cancelled send is not started again
// (ErrConflict).
func (r *Room) StartSend(ctx context.Context, a Actor, st *edition.Stored) (int64, error) {
	queued, err := r.Queue.Enqueue(ctx, st.ID, r.FromDomain, r.SendWindow)
	if errors.Is(err, edition.ErrCancelled) {
		return 0, fmt.Errorf("%w: the send of %s was cancelled; it is not sent again", ErrConflict, st.Edition.DateString())
	}
	if err != nil {
		return 0, err
	}
	if err := r.audit(ctx, a, "send", st.Edition.DateString(), fmt.Sprintf("queued %d", queued)); err != nil {
		return queued, err
	}
	if r.Log != nil {
		r.Log.Info("send started", "edition", st.Edition.DateString(), "newly_queued", queued, "by", a.Name)
	}
	return queued, nil
}

// ScheduleSend schedules the edition's send for at, or starts it now when
// at is not in the future (then it returns how many StartSend queued). A
// second schedule replaces the time while the send has not started; once
// it started, scheduling changes nothing, so calling it again never sends
// twice. The live workers start a due send (StartDue).
func (r *Room) ScheduleSend(ctx context.Context, a Actor, st *edition.Stored, at time.Time) (int64, error) {
	if !at.After(time.Now()) {
		return r.StartSend(ctx, a, st)
	}
	state, err := r.Editions.SendState(ctx, st.ID)
	if err != nil {
		return 0, err
	}
	if state.CancelledAt != nil {
		return 0, fmt.Errorf("%w: the send of %s was cancelled; it is not sent again", ErrConflict, st.Edition.DateString())
	}
	old, err := r.Editions.Schedule(ctx, st.ID, at, a.Name)
	if errors.Is(err, edition.ErrSendStarted) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	detail := "at " + at.UTC().Format(time.RFC3339)
	if old != nil {
		detail += ", replacing " + old.UTC().Format(time.RFC3339)
	}
	return 0, r.audit(ctx, a, "schedule", st.Edition.DateString(), detail)
}

// Scheduler is who the audit record names for the start of a scheduled
// send: the schedule's editor is named in its detail.
var Scheduler = Actor{Name: "scheduler", Role: editors.Editor}

// StartDue starts every scheduled send that is due. Any number of
// processes may call it at once: each send starts once (the first process
// to lock the edition starts it, see delivery.Queue.EnqueueDue), and only
// that start is audited. It returns the dates it started.
func (r *Room) StartDue(ctx context.Context) ([]string, error) {
	ids, err := r.Editions.Due(ctx)
	if err != nil {
		return nil, err
	}
	var started []string
	for _, id := range ids {
		queued, ok, err := r.Queue.EnqueueDue(ctx, id, r.FromDomain, r.SendWindow)
		if errors.Is(err, edition.ErrCancelled) || err == nil && !ok {
			continue
		}
		if err != nil {
			return started, err
		}
		state, err := r.Editions.SendState(ctx, id)
		if err != nil {
			return started, err
		}
		by := ""
		if state.ScheduledBy != nil {
			by = "scheduled by " + *state.ScheduledBy + "; "
		}
		if err := r.audit(ctx, Scheduler, "send", state.Date, fmt.Sprintf("%squeued %d", by, queued)); err != nil {
			return started, err
		}
		if r.Log != nil {
			r.Log.Info("scheduled send started", "edition", state.Date, "newly_queued", queued)
		}
		started = append(started, state.Date)
	}
	return started, nil
}

// Pause stops the edition's send: every worker leases nothing more of it
// within a lease's time, and it stays paused across restarts until Resume.
func (r *Room) Pause(ctx context.Context, a Actor, st *edition.Stored) error {
	state, err := r.Editions.SendState(ctx, st.ID)
	if err != nil {
		return err
	}
	switch state.State() {
	case edition.Draft, edition.Scheduled:
		return fmt.Errorf("%w: the send of %s has not started", ErrConflict, st.Edition.DateString())
	case edition.Finished:
		return fmt.Errorf("%w: the send of %s has finished", ErrConflict, st.Edition.DateString())
	case edition.Cancelled:
		return fmt.Errorf("%w: the send of %s was cancelled", ErrConflict, st.Edition.DateString())
	}
	if err := r.Editions.Pause(ctx, st.ID, "paused by "+a.Name); err != nil {
		return err
	}
	return r.audit(ctx, a, "pause", st.Edition.DateString(), "")
}

// Resume lets a paused send go on where it stopped; it returns the reason
// it was paused for, "" when it was not paused (then nothing is recorded).
// A cancelled send is not resumed (ErrConflict).
func (r *Room) Resume(ctx context.Context, a Actor, st *edition.Stored) (string, error) {
	reason, err := r.Editions.Resume(ctx, st.ID)
	if errors.Is(err, edition.ErrCancelled) {
		return "", fmt.Errorf("%w: the send of %s was cancelled; it can't be resumed", ErrConflict, st.Edition.DateString())
	}
	if err != nil || reason == "" {
		return reason, err
	}
	return reason, r.audit(ctx, a, "resume", st.Edition.DateString(), "paused because: "+reason)
}

// Cancel cancels the edition's send. A scheduled send not started is
// unscheduled (the edition is a draft again). A send going on stops in
// every process within a few seconds and for good: every recipient not yet
// handed to the SMTP server is recorded as cancelled, the messages being
// sent record their real outcome, and the send is never resumed or sent
// again. It returns how many were recorded as cancelled now. Cancelling a
// cancelled send changes nothing; a draft or a finished send: ErrConflict.
func (r *Room) Cancel(ctx context.Context, a Actor, st *edition.Stored) (int64, error) {
	date := st.Edition.DateString()
	at, err := r.Editions.Unschedule(ctx, st.ID)
	if err != nil {
		return 0, err
	}
	if at != nil {
		return 0, r.audit(ctx, a, "unschedule", date, "was scheduled at "+at.UTC().Format(time.RFC3339))
	}
	n, err := r.Queue.Cancel(ctx, st.ID, a.Name)
	if errors.Is(err, delivery.ErrNotCancellable) {
		state, serr := r.Editions.SendState(ctx, st.ID)
		if serr != nil {
			return 0, serr
		}
		if state.CancelledAt != nil {
			return 0, nil
		}
		return 0, fmt.Errorf("%w: the send of %s is %s: nothing to cancel", ErrConflict, date, state.State())
	}
	if err != nil {
		return 0, err
	}
	if r.Log != nil {
		r.Log.Info("send cancelled", "edition", date, "cancelled", n, "by", a.Name)
	}
	return n, r.audit(ctx, a, "cancel", date, fmt.Sprintf("%d recipients not sent", n))
}
