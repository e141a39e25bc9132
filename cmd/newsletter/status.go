package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
)

var statusCommand = &command{
	usage: "status [--date YYYY-MM-DD] [--json] [--undelivered] [--watch]\n\nHow an edition's send stands: counts by outcome, the share done, the rate and the estimated finish and,\n" +
		"with --undelivered, every recipient not delivered and why. --watch follows a send that another process runs\n" +
		"until it finishes (or SIGINT).",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		var asJSON, undelivered, watch bool
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
		fs.BoolVar(&asJSON, "json", false, "print JSON")
		fs.BoolVar(&undelivered, "undelivered", false, "list every recipient not delivered, with the reason")
		fs.BoolVar(&watch, "watch", false, "redraw the report every few seconds until the send finishes")
		return func(ctx context.Context, a *app, _ []string) error {
			if watch {
				return a.watchStatus(ctx, date)
			}
			st, r, err := a.status(ctx, date)
			if err != nil {
				return err
			}
			w := bufio.NewWriter(a.stdout)
			defer w.Flush()
			q := &delivery.Queue{DB: a.db}
			if asJSON {
				return writeStatusJSON(ctx, w, r, q, st.ID, undelivered)
			}
			return writeStatusText(ctx, w, r, q, st.ID, undelivered)
		}
	},
}

// status is the report on the send of the edition of date.
func (a *app) status(ctx context.Context, date time.Time) (*edition.Stored, *newsroom.Report, error) {
	st, err := a.edition(ctx, date)
	if err != nil {
		return nil, nil, err
	}
	r, err := a.room(nil).Status(ctx, st)
	return st, r, err
}

// writeJSON writes the report as one document, with the undelivered if
// asked, streamed into it.
func writeStatusJSON(ctx context.Context, w *bufio.Writer, r *newsroom.Report, q *delivery.Queue, id int64, undelivered bool) error {
	head, err := json.Marshal(r)
	if err != nil {
		return err
	}
	if !undelivered {
		w.Write(head)
		w.WriteString("\n")
		return nil
	}
	// Splice the streamed list into the document: {...,"undelivered":[...]}.
	w.Write(head[:len(head)-1])
	w.WriteString(`,"undelivered":[`)
	first := true
	err = q.EachUndelivered(ctx, id, func(u delivery.Undelivered) error {
		b, err := json.Marshal(u)
		if err != nil {
			return err
		}
		if !first {
			w.WriteString(",")
		}
		first = false
		_, err = w.Write(b)
		return err
	})
	w.WriteString("]}\n")
	return err
}

func writeStatusText(ctx context.Context, w *bufio.Writer, r *newsroom.Report, q *delivery.Queue, id int64, undelivered bool) error {
	fmt.Fprintf(w, "edition %s: %s", r.Edition, r.State)
	if r.PauseReason != "" {
		fmt.Fprintf(w, " (%s)", r.PauseReason)
	}
	fmt.Fprintln(w)
	if r.SendAt != nil {
		fmt.Fprintf(w, "scheduled: %s by %s\n", r.SendAt.Format(time.RFC3339), r.ScheduledBy)
	}
	if r.StartedAt != nil {
		fmt.Fprintf(w, "started:   %s\n", r.StartedAt.Format(time.RFC3339))
	}
	if r.CancelledAt != nil {
		fmt.Fprintf(w, "cancelled: %s by %s\n", r.CancelledAt.Format(time.RFC3339), r.CancelledBy)
	}
	switch {
	case r.SendBy != nil:
		fmt.Fprintf(w, "send by:   %s\n", r.SendBy.Format(time.RFC3339))
	case r.StartedAt != nil:
		fmt.Fprintln(w, "send by:   no deadline")
	}
	fmt.Fprintf(w, "recipients %d: sent %d, failed %d (refused %d, temporary %d), skipped %d, cancelled %d, queued %d, sending %d\n",
		r.Counts.Total, r.Counts.Sent, r.Failed, r.Counts.FailedPermanent, r.Counts.FailedTemporary,
		r.Counts.Skipped, r.Counts.Cancelled, r.Counts.Queued, r.Counts.Sending)
	if c := r.CameBack; c.Any() {
		fmt.Fprintf(w, "came back: %d hard bounces, %d soft, %d complaints (each subscriber acted on: see bounces serve)\n", c.Hard, c.Soft, c.Complaints)
	}
	writeProgress(w, r)
	writeWorkers(w, r.Workers)
	if r.Pruned {
		fmt.Fprintln(w, "deliveries pruned (NEWSLETTER_RETENTION): the counts are the summary kept; failures by reply:")
		for _, f := range r.Failures {
			kind := "temporary"
			if f.Permanent {
				kind = "refused"
			}
			fmt.Fprintf(w, "  %d %s %s: %d\n", f.Code, f.Enhanced, kind, f.Count)
		}
		if undelivered {
			fmt.Fprintln(w, "no list of recipients: it was pruned with the deliveries")
		}
		return nil
	}
	if !undelivered {
		return nil
	}
	fmt.Fprintln(w, "\nsubscriber\temail\tstatus\tattempts\tcode\treason")
	return q.EachUndelivered(ctx, id, func(u delivery.Undelivered) error {
		_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%s\n", u.SubscriberID, u.Email, undeliveredStatus(u), u.Attempts, replyCode(u), replyText(u))
		return err
	})
}

func undeliveredStatus(u delivery.Undelivered) string {
	if u.Permanent == nil || u.Status != delivery.Failed {
		return u.Status
	}
	if *u.Permanent {
		return "failed (refused)"
	}
	return "failed (temporary)"
}

func replyCode(u delivery.Undelivered) string {
	if u.Code == nil {
		return ""
	}
	code := fmt.Sprint(*u.Code)
	if u.Enhanced != nil {
		code += " " + *u.Enhanced
	}
	return code
}

func replyText(u delivery.Undelivered) string {
	if u.Reply == nil {
		return ""
	}
	return oneLine(*u.Reply)
}

func writeProgress(w *bufio.Writer, r *newsroom.Report) {
	if r.Counts.Total == 0 {
		return
	}
	fmt.Fprintf(w, "progress:  %.1f%% done", r.PercentDone)
	if r.Counts.Queued+r.Counts.Sending > 0 {
		fmt.Fprintf(w, ", %.1f msgs/s over the last minute", r.Rate)
		if r.EstimatedFinish != nil {
			fmt.Fprintf(w, ", finishing about %s", r.EstimatedFinish.Format(time.RFC3339))
		} else {
			fmt.Fprint(w, ", no estimate of the finish (nothing finished in the last minute)")
		}
	}
	fmt.Fprintln(w)
}

// statusWatchEvery is how often status --watch redraws (a variable so that
// the tests need not wait).
var statusWatchEvery = 2 * time.Second

// watchStatus redraws the report of the edition of date until its send
// finishes or ctx ends (SIGINT): on a terminal in place, otherwise one
// report after the other.
func (a *app) watchStatus(ctx context.Context, date time.Time) error {
	term := isTerminal(a.stdout)
	q := &delivery.Queue{DB: a.db}
	for {
		st, r, err := a.status(ctx, date)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			return err
		}
		w := bufio.NewWriter(a.stdout)
		if term {
			w.WriteString("\x1b[H\x1b[2J") // home, clear the screen
		}
		fmt.Fprintf(w, "%s\n", time.Now().Format(time.TimeOnly))
		err = writeStatusText(ctx, w, r, q, st.ID, false)
		w.WriteString("\n")
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if err != nil || r.State == edition.Finished || r.State == edition.Cancelled && r.Counts.Queued+r.Counts.Sending == 0 {
			return err
		}
		if !sleepCtx(ctx, statusWatchEvery) {
			return nil
		}
	}
}
