package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"newsletter/bounces"
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/fleet"
)

// statusReport is `status --json`: one document, the undelivered streamed
// into it so a long list is never held in memory.
type statusReport struct {
	Edition     string     `json:"edition"`
	State       string     `json:"state"`
	PauseReason string     `json:"pause_reason,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	SendBy      *time.Time `json:"send_by,omitempty"` // absent: no deadline
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	Counts      struct {
		Total           int64 `json:"total"`
		Sent            int64 `json:"sent"`
		FailedPermanent int64 `json:"failed_permanent"`
		FailedTemporary int64 `json:"failed_temporary"`
		Skipped         int64 `json:"skipped"`
		Queued          int64 `json:"queued"`
		Sending         int64 `json:"sending"`
	} `json:"counts"`
	// PercentDone is the share of the recipients with a final outcome;
	// Rate, deliveries given one per second over the last minute, by every
	// worker; EstimatedFinish, when the rest would be done at that rate.
	PercentDone     float64        `json:"percent_done"`
	Rate            float64        `json:"rate_per_second"`
	EstimatedFinish *time.Time     `json:"estimated_finish,omitempty"`
	Workers         []fleet.Worker `json:"workers"` // the live ones, whatever they send
	// Pruned: the deliveries are gone (NEWSLETTER_RETENTION) and the counts
	// are the summary kept, with the failures by reply code.
	// CameBack is what came back after the send and was acted on: bounces,
	// complaints (package bounces).
	CameBack bounces.Counts     `json:"came_back"`
	Pruned   bool               `json:"pruned,omitempty"`
	Failures []delivery.Failure `json:"failures,omitempty"`
	failed   int64              // both kinds
}

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
				return r.writeJSON(ctx, w, q, st.ID, undelivered)
			}
			return r.writeText(ctx, w, q, st.ID, undelivered)
		}
	},
}

// status is the report on the send of the edition of date.
func (a *app) status(ctx context.Context, date time.Time) (*edition.Stored, *statusReport, error) {
	st, err := a.edition(ctx, date)
	if err != nil {
		return nil, nil, err
	}
	state, err := (&edition.Store{DB: a.db}).SendState(ctx, st.ID)
	if err != nil {
		return nil, nil, err
	}
	q := &delivery.Queue{DB: a.db}
	counts, err := q.Count(ctx, st.ID)
	if err != nil {
		return nil, nil, err
	}
	r := &statusReport{failed: counts.Failed}
	sum, err := q.Summary(ctx, st.ID)
	if err != nil {
		return nil, nil, err
	}
	if sum != nil {
		r.Pruned, r.Failures = true, sum.Failures
	}
	r.Edition, r.State = st.Edition.DateString(), state.State()
	if state.PauseReason != nil {
		r.PauseReason = *state.PauseReason
	}
	r.StartedAt, r.SendBy, r.FinishedAt = state.StartedAt, state.SendBy, state.FinishedAt
	r.Counts.Total, r.Counts.Sent, r.Counts.Skipped = counts.Total(), counts.Sent, counts.Skipped
	r.Counts.FailedPermanent, r.Counts.FailedTemporary = counts.FailedPermanent, counts.Failed-counts.FailedPermanent
	r.Counts.Queued, r.Counts.Sending = counts.Queued, counts.Sending
	if err := r.progress(ctx, q, st.ID); err != nil {
		return nil, nil, err
	}
	if r.Workers, err = fleet.List(ctx, a.db); err != nil {
		return nil, nil, err
	}
	if r.CameBack, err = bounces.EditionCounts(ctx, a.db, st.ID); err != nil {
		return nil, nil, err
	}
	return st, r, nil
}

// writeJSON writes the report as one document, with the undelivered if
// asked, streamed into it.
func (r *statusReport) writeJSON(ctx context.Context, w *bufio.Writer, q *delivery.Queue, id int64, undelivered bool) error {
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

func (r *statusReport) writeText(ctx context.Context, w *bufio.Writer, q *delivery.Queue, id int64, undelivered bool) error {
	fmt.Fprintf(w, "edition %s: %s", r.Edition, r.State)
	if r.PauseReason != "" {
		fmt.Fprintf(w, " (%s)", r.PauseReason)
	}
	fmt.Fprintln(w)
	if r.StartedAt != nil {
		fmt.Fprintf(w, "started:   %s\n", r.StartedAt.Format(time.RFC3339))
	}
	switch {
	case r.SendBy != nil:
		fmt.Fprintf(w, "send by:   %s\n", r.SendBy.Format(time.RFC3339))
	case r.StartedAt != nil:
		fmt.Fprintln(w, "send by:   no deadline")
	}
	fmt.Fprintf(w, "recipients %d: sent %d, failed %d (refused %d, temporary %d), skipped %d, queued %d, sending %d\n",
		r.Counts.Total, r.Counts.Sent, r.failed, r.Counts.FailedPermanent, r.Counts.FailedTemporary,
		r.Counts.Skipped, r.Counts.Queued, r.Counts.Sending)
	if c := r.CameBack; c.Any() {
		fmt.Fprintf(w, "came back: %d hard bounces, %d soft, %d complaints (each subscriber acted on: see bounces serve)\n", c.Hard, c.Soft, c.Complaints)
	}
	r.writeProgress(w)
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

// rateWindowStatus is how far back status looks for the current rate.
const rateWindowStatus = time.Minute

// progress fills in the share done, the current rate and the estimated
// finish from the counts and the deliveries finished lately.
func (r *statusReport) progress(ctx context.Context, q *delivery.Queue, id int64) error {
	c := r.Counts
	if c.Total == 0 {
		return nil
	}
	left := c.Queued + c.Sending
	r.PercentDone = 100 * float64(c.Total-left) / float64(c.Total)
	if left == 0 || r.Pruned {
		return nil
	}
	n, err := q.Finished(ctx, id, rateWindowStatus)
	if err != nil {
		return err
	}
	r.Rate = float64(n) / rateWindowStatus.Seconds()
	if r.Rate > 0 {
		eta := time.Now().Add(time.Duration(float64(left) / r.Rate * float64(time.Second))).Truncate(time.Second)
		r.EstimatedFinish = &eta
	}
	return nil
}

func (r *statusReport) writeProgress(w *bufio.Writer) {
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
		err = r.writeText(ctx, w, q, st.ID, false)
		w.WriteString("\n")
		if ferr := w.Flush(); err == nil {
			err = ferr
		}
		if err != nil || r.State == "finished" {
			return err
		}
		if !sleepCtx(ctx, statusWatchEvery) {
			return nil
		}
	}
}
