package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
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
}

func cmdStatus(ctx context.Context, e *env) error {
	fs := flagSet(e, "status", "status [--date YYYY-MM-DD] [--json] [--undelivered]\n\nHow an edition's send stands: counts by outcome and, with --undelivered, every recipient not delivered and why.")
	c := newConfig(fs, envDatabaseURL, envTZ)
	var date string
	var asJSON, undelivered bool
	fs.StringVar(&date, "date", "", "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
	fs.BoolVar(&asJSON, "json", false, "print JSON")
	fs.BoolVar(&undelivered, "undelivered", false, "list every recipient not delivered, with the reason")
	pos, err := parseArgs(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("status takes no arguments")
	}
	if err := c.load(e.log); err != nil {
		return err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := editionFor(ctx, db, date, c.location)
	if err != nil {
		return err
	}
	state, err := (&edition.Store{DB: db}).SendState(ctx, st.ID)
	if err != nil {
		return err
	}
	q := &delivery.Queue{DB: db}
	counts, err := q.Count(ctx, st.ID)
	if err != nil {
		return err
	}
	var r statusReport
	r.Edition, r.State = st.Edition.DateString(), state.State()
	if state.PauseReason != nil {
		r.PauseReason = *state.PauseReason
	}
	r.StartedAt, r.SendBy, r.FinishedAt = state.StartedAt, state.SendBy, state.FinishedAt
	r.Counts.Total, r.Counts.Sent, r.Counts.Skipped = counts.Total(), counts.Sent, counts.Skipped
	r.Counts.FailedPermanent, r.Counts.FailedTemporary = counts.FailedPermanent, counts.Failed-counts.FailedPermanent
	r.Counts.Queued, r.Counts.Sending = counts.Queued, counts.Sending

	w := bufio.NewWriter(e.stdout)
	defer w.Flush()
	if asJSON {
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
		err = q.EachUndelivered(ctx, st.ID, func(u delivery.Undelivered) error {
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
	fmt.Fprintf(w, "edition %s: %s", r.Edition, r.State)
	if r.PauseReason != "" {
		fmt.Fprintf(w, " (%s)", r.PauseReason)
	}
	fmt.Fprintln(w)
	switch {
	case r.SendBy != nil:
		fmt.Fprintf(w, "send by:   %s\n", r.SendBy.Format(time.RFC3339))
	case r.StartedAt != nil:
		fmt.Fprintln(w, "send by:   no deadline")
	}
	fmt.Fprintf(w, "recipients %d: sent %d, failed %d (refused %d, temporary %d), skipped %d, queued %d, sending %d\n",
		r.Counts.Total, r.Counts.Sent, counts.Failed, r.Counts.FailedPermanent, r.Counts.FailedTemporary,
		r.Counts.Skipped, r.Counts.Queued, r.Counts.Sending)
	if !undelivered {
		return nil
	}
	fmt.Fprintln(w, "\nsubscriber\temail\tstatus\tattempts\tcode\treason")
	return q.EachUndelivered(ctx, st.ID, func(u delivery.Undelivered) error {
		status := u.Status
		if u.Permanent != nil && status == delivery.Failed {
			if *u.Permanent {
				status = "failed (refused)"
			} else {
				status = "failed (temporary)"
			}
		}
		code, reply := "", ""
		if u.Code != nil {
			code = fmt.Sprint(*u.Code)
			if u.Enhanced != nil {
				code += " " + *u.Enhanced
			}
		}
		if u.Reply != nil {
			reply = oneLine(*u.Reply)
		}
		_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%d\t%s\t%s\n", u.SubscriberID, u.Email, status, u.Attempts, code, reply)
		return err
	})
}
