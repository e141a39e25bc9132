package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/subscribers"
	"newsletter/templates"
)

// sendOptions are send's own flags.
type sendOptions struct {
	date        time.Time
	to          string
	retryFailed bool
	enqueueOnly bool
	at          string // --at: when to start; empty: now
}

var sendCommand = &command{
	usage: "send [--date YYYY-MM-DD] [--to ADDRESS] [--retry-failed] [--enqueue-only] [--at TIME] [flags]\n\n" +
		"Sends the edition to every confirmed subscriber and returns when each has a recorded outcome.\n" +
		"Safe to run twice: nobody already sent is sent again; a paused send resumes where it stopped.\n" +
		"--to sends one test copy and records nothing. --at schedules the send and returns: the live processes\n" +
		"(worker, serve) start it then; a time now or past sends now. `cancel` unschedules it.",
	needs: needDB | needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		var o sendOptions
		dateFlag(fs, &o.date, "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
		fs.StringVar(&o.to, "to", "", "send one test copy to this address only, recording nothing")
		fs.BoolVar(&o.retryFailed, "retry-failed", false, "first put the edition's temporary failures back in the queue")
		fs.BoolVar(&o.enqueueOnly, "enqueue-only", false, "queue the recipients and return, leaving the sending to the worker subcommand's processes")
		fs.StringVar(&o.at, "at", "", "schedule the send: RFC 3339, or \"YYYY-MM-DD HH:MM\" in NEWSLETTER_TZ")
		return func(ctx context.Context, a *app, _ []string) error { return send(ctx, a, o) }
	},
}

func send(ctx context.Context, a *app, o sendOptions) error {
	subs := &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens}
	st, comp, err := a.render(ctx, o.date, subs)
	if err != nil {
		return err
	}
	if o.to != "" {
		return a.sendTestCopy(ctx, st, subs, o.to)
	}
	if o.at != "" {
		at, err := parseSendAt(o.at, a.cfg.location)
		if err != nil {
			return usageErr("--at: %v", err)
		}
		if at.After(time.Now()) {
			return a.schedule(ctx, st, subs, at)
		}
	}
	if err := (&delivery.Queue{DB: a.db}).EnsurePartitions(ctx, time.Now(), 0); err != nil {
		return err
	}
	if !o.enqueueOnly {
		leave, err := a.joinFleet(ctx)
		if err != nil {
			return err
		}
		defer leave()
	}
	start := time.Now()
	w, err := a.newWorker(comp)
	if err != nil {
		return err
	}
	if err := a.enqueue(ctx, w, st, o); err != nil || o.enqueueOnly {
		return err
	}
	var stats delivery.Stats
	stop := a.watchSend(ctx, w, st, &stats)
	runErr := a.sendEdition(ctx, w, st.ID, st.Edition.DateString(), &stats)
	stop()
	elapsed := time.Since(start)
	interrupted := errors.Is(runErr, context.Canceled)
	paused := errors.Is(runErr, delivery.ErrPaused)
	if runErr != nil && !interrupted && !paused {
		return fmt.Errorf("send %s: %w", st.Edition.DateString(), runErr)
	}
	counts, err := w.Queue.Count(context.WithoutCancel(ctx), st.ID)
	if err != nil {
		return err
	}
	sent := stats.Sent.Load()
	fmt.Fprintf(a.stdout, "edition %s: sent %d, failed %d, skipped %d, retried %d in %s (%.1f msgs/s)\n",
		st.Edition.DateString(), sent, stats.Failed.Load(), stats.Skipped.Load(), stats.Retried.Load(),
		elapsed.Round(time.Millisecond), float64(sent)/elapsed.Seconds())
	unfinished := counts.Queued + counts.Sending
	fmt.Fprintf(a.stdout, "all %d recipients: %d sent, %d failed (%d refused by the server), %d skipped, %d cancelled, %d not finished\n",
		counts.Total(), counts.Sent, counts.Failed, counts.FailedPermanent, counts.Skipped, counts.Cancelled, unfinished)
	if state, err := w.Editions.SendState(context.WithoutCancel(ctx), st.ID); err == nil && state.CancelledAt != nil {
		return fmt.Errorf("%w: the send was cancelled by %s; it is not sent again", errCancelled, *state.CancelledBy)
	}
	switch {
	case interrupted && unfinished > 0:
		return fmt.Errorf("%w: %d recipients are not finished; run the same send again to finish them", errInterrupted, unfinished)
	case paused:
		return fmt.Errorf("%w; %d recipients are not finished: fix the cause, then run the same send again to resume", runErr, unfinished)
	}
	return nil
}

// errInterrupted is a send stopped by SIGINT or SIGTERM with recipients
// left: not a failure, but not done either (exitInterrupted).
var errInterrupted = errors.New("interrupted")

// errCancelled is a send stopped because it was cancelled (exitStopped).
var errCancelled = errors.New("cancelled")

// enqueue starts (or resumes) the edition's send: the temporary failures
// back in the queue if asked, a paused send resumed, every confirmed
// subscriber not yet queued added.
func (a *app) enqueue(ctx context.Context, w *delivery.Worker, st *edition.Stored, o sendOptions) error {
	if o.retryFailed {
		n, err := w.Queue.RetryFailed(ctx, st.ID)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "re-queued %d temporary failures\n", n)
	}
	if reason, err := w.Editions.Resume(ctx, st.ID); err != nil {
		return err
	} else if reason != "" {
		fmt.Fprintf(a.stdout, "resuming the send, paused because: %s\n", reason)
	}
	queued, err := a.room(nil).StartSend(ctx, newsroom.CLI, st)
	if err != nil {
		return err
	}
	if o.enqueueOnly {
		fmt.Fprintf(a.stdout, "edition %s: queued %d new recipients for the workers\n", st.Edition.DateString(), queued)
	}
	return nil
}

// render loads the edition of date (today when zero) and renders it once:
// the composer builds each recipient's message from it.
func (a *app) render(ctx context.Context, date time.Time, subs *subscribers.Store) (*edition.Stored, *delivery.Composer, error) {
	st, err := a.edition(ctx, date)
	if err != nil {
		return nil, nil, err
	}
	comp, err := a.composer(st.Edition, subs)
	return st, comp, err
}

func (a *app) composer(ed *edition.Edition, subs *subscribers.Store) (*delivery.Composer, error) {
	c := a.cfg
	rendered, err := a.tpl.RenderEdition(ed, c.editionData(ed))
	if err != nil {
		return nil, fmt.Errorf("render edition %s: %w", ed.DateString(), err)
	}
	comp := &delivery.Composer{
		Rendered:          rendered,
		From:              c.fromAddr,
		ListID:            c.listIDHeader(ed.Site.Name),
		UnsubscribeMailto: c.unsubscribeMailto(),
		UnsubscribeDomain: c.unsubscribeDomain(),
		UnsubscribeURL:    func(uuid string) string { return subs.UnsubscribeURL(c.baseURL, uuid) },
		UnsubscribeToken:  subs.Tokens.Unsubscribe,
		UnsubscribePrefix: subscribers.UnsubscribePrefix(c.baseURL),
		FeedbackID:        c.feedbackID(ed.DateString(), ed.Site.Name),
		DKIM:              c.dkim,
	}
	if c.tokens != nil { // preview reads no secret, and sends nothing
		comp.ReturnPath = c.verp().AppendAddress
	}
	return comp, nil
}

// editionData is what the templates need besides the edition.
func (c *config) editionData(ed *edition.Edition) templates.EditionData {
	return templates.EditionData{
		BaseURL:  c.baseURL,
		WebURL:   c.baseURL + "/editions/" + ed.DateString(),
		ListName: ed.Site.Name,
	}
}

// sendTestCopy sends the edition to one address, outside the queue: no
// record, and the unsubscribe link is a placeholder that belongs to nobody.
func (a *app) sendTestCopy(ctx context.Context, st *edition.Stored, subs *subscribers.Store, to string) error {
	replies, err := a.room(subs).TestSend(ctx, newsroom.CLI, st.Edition, []string{to}, newsroom.TestOptions{})
	if ie := (*newsroom.InvalidError)(nil); errors.As(err, &ie) {
		return usageErr("--to: %v", ie.Err)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "sent a test copy to %s: %s\n", to, replies[0])
	return nil
}

// sendAtLayout is --at's local form, in NEWSLETTER_TZ.
const sendAtLayout = "2006-01-02 15:04"

// parseSendAt reads --at: an RFC 3339 time, or a local time in loc.
func parseSendAt(s string, loc *time.Location) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if loc == nil {
		loc = time.UTC
	}
	t, err := time.ParseInLocation(sendAtLayout, s, loc)
	if err != nil {
		return t, fmt.Errorf("want RFC 3339 (2025-11-13T06:00:00Z) or %q in NEWSLETTER_TZ, got %q", sendAtLayout, s)
	}
	return t, nil
}

// schedule schedules the edition's send for at and says so.
func (a *app) schedule(ctx context.Context, st *edition.Stored, subs *subscribers.Store, at time.Time) error {
	room := a.room(subs)
	if _, err := room.ScheduleSend(ctx, newsroom.CLI, st, at); err != nil {
		return err
	}
	state, err := room.Editions.SendState(ctx, st.ID)
	if err != nil {
		return err
	}
	if state.State() != edition.Scheduled {
		fmt.Fprintf(a.stdout, "edition %s: %s; its send started already, so nothing was scheduled\n", st.Edition.DateString(), state.State())
		return nil
	}
	fmt.Fprintf(a.stdout, "edition %s: scheduled for %s; the live worker or serve processes start it then\n",
		st.Edition.DateString(), state.SendAt.In(a.cfg.location).Format(time.RFC3339))
	return nil
}
