package newsroom

import (
	"context"
	"time"

	"newsletter/bounces"
	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/fleet"
)

// Report is how an edition's send stands (`status --json`).
type Report struct {
	Edition     string     `json:"edition"`
	State       string     `json:"state"`
	PauseReason string     `json:"pause_reason,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	SendBy      *time.Time `json:"send_by,omitempty"` // absent: no deadline
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	// SendAt, ScheduledBy: the schedule the send started by, or is to
	// start by; CancelledAt, CancelledBy: who cancelled it.
	SendAt      *time.Time `json:"send_at,omitempty"`
	ScheduledBy string     `json:"scheduled_by,omitempty"`
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy string     `json:"cancelled_by,omitempty"`
	Counts      struct {
		Total           int64 `json:"total"`
		Sent            int64 `json:"sent"`
		Failed          int64 `json:"failed"` // both kinds
		FailedPermanent int64 `json:"failed_permanent"`
		FailedTemporary int64 `json:"failed_temporary"`
		Skipped         int64 `json:"skipped"`
		Queued          int64 `json:"queued"`
		Sending         int64 `json:"sending"`
		Cancelled       int64 `json:"cancelled"`
	} `json:"counts"`
	// PercentDone is the share of the recipients with a final outcome;
	// Rate, deliveries given one per second over the last minute, by every
	// worker; EstimatedFinish, when the rest would be done at that rate.
	// UnsubscribedAfter: recipients who unsubscribed within a week of the
	// send's start (delivery.Queue.UnsubscribedAfter).
	UnsubscribedAfter int64          `json:"unsubscribed_within_7_days"`
	PercentDone       float64        `json:"percent_done"`
	Rate              float64        `json:"rate_per_second"`
	EstimatedFinish   *time.Time     `json:"estimated_finish,omitempty"`
	Workers           []fleet.Worker `json:"workers"` // the live ones, whatever they send
	// Pruned: the deliveries are gone (NEWSLETTER_RETENTION) and the counts
	// are the summary kept, with the failures by reply code.
	Pruned   bool               `json:"pruned,omitempty"`
	Failures []delivery.Failure `json:"failures,omitempty"`
	Failed   int64              `json:"-"` // both kinds
	// CameBack is what came back after the send and was acted on: bounces,
	// complaints (package bounces).
	CameBack bounces.Counts `json:"came_back"`
}

// Status is the report on the send of the edition.
func (r *Room) Status(ctx context.Context, st *edition.Stored) (*Report, error) {
	state, err := r.Editions.SendState(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	counts, err := r.Queue.Count(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	rep := &Report{Failed: counts.Failed}
	sum, err := r.Queue.Summary(ctx, st.ID)
	if err != nil {
		return nil, err
	}
	if sum != nil {
		rep.Pruned, rep.Failures = true, sum.Failures
	}
	rep.Edition, rep.State = st.Edition.DateString(), state.State()
	if state.PauseReason != nil {
		rep.PauseReason = *state.PauseReason
	}
	rep.StartedAt, rep.SendBy, rep.FinishedAt = state.StartedAt, state.SendBy, state.FinishedAt
	rep.SendAt, rep.CancelledAt = state.SendAt, state.CancelledAt
	if state.ScheduledBy != nil {
		rep.ScheduledBy = *state.ScheduledBy
	}
	if state.CancelledBy != nil {
		rep.CancelledBy = *state.CancelledBy
	}
	c := &rep.Counts
	c.Total, c.Sent, c.Skipped = counts.Total(), counts.Sent, counts.Skipped
	c.FailedPermanent, c.FailedTemporary = counts.FailedPermanent, counts.Failed-counts.FailedPermanent
	c.Failed = counts.Failed
	if rep.StartedAt != nil && !rep.Pruned {
		if rep.UnsubscribedAfter, err = r.Queue.UnsubscribedAfter(ctx, st.ID, 7*24*time.Hour); err != nil {
			return nil, err
		}
	}
	c.Queued, c.Sending, c.Cancelled = counts.Queued, counts.Sending, counts.Cancelled
	if err := rep.progress(ctx, r.Queue, st.ID); err != nil {
		return nil, err
	}
	if rep.Workers, err = fleet.List(ctx, r.DB); err != nil {
		return nil, err
	}
	if rep.CameBack, err = bounces.EditionCounts(ctx, r.DB, st.ID); err != nil {
		return nil, err
	}
	return rep, nil
}

// rateWindow is how far back the report looks for the current rate.
const rateWindow = time.Minute

// progress fills in the share done, the current rate and the estimated
// finish from the counts and the deliveries finished lately.
func (rep *Report) progress(ctx context.Context, q *delivery.Queue, id int64) error {
	c := rep.Counts
	if c.Total == 0 {
		return nil
	}
	left := c.Queued + c.Sending
	rep.PercentDone = 100 * float64(c.Total-left) / float64(c.Total)
	if left == 0 || rep.Pruned {
		return nil
	}
	n, err := q.Finished(ctx, id, rateWindow)
	if err != nil {
		return err
	}
	rep.Rate = float64(n) / rateWindow.Seconds()
	if rep.Rate > 0 {
		eta := time.Now().Add(time.Duration(float64(left) / rep.Rate * float64(time.Second))).Truncate(time.Second)
		rep.EstimatedFinish = &eta
	}
	return nil
}
