// Package schedule runs the daily digest on its own: at the time
// NEWSLETTER_SCHEDULE names it imports the day's edition, waits the hold
// during which an editor may stop it, then starts its send, which the
// delivery workers carry out. It owns the schedule_runs table, the record of
// every run, whose row per day is what makes exactly one of several
// processes run a day's digest.
package schedule

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/edition"
)

// Run states, as the table's CHECK constraint spells them.
const (
	Importing = "importing" // due: the edition is being imported (or the import retried)
	Holding   = "holding"   // imported, waiting for the end of the hold (or for a release, when held)
	Sending   = "sending"   // its send is being started
	Sent      = "sent"      // its send started: the workers deliver it
	Failed    = "failed"    // the import or the start of the send kept failing until the window closed
	Missed    = "missed"    // no process was up within the catch-up window: not sent late
	Skipped   = "skipped"   // the day's edition was already being sent when the run imported it
)

// Scheduler runs the schedule's days, as one of any number of processes
// against one database.
type Scheduler struct {
	DB   *sqlx.DB
	Spec *Spec
	// Hold is how long an imported edition waits before its send starts,
	// for an editor to look at it and hold it.
	Hold time.Duration
	// CatchUp is how late a run may start: a run due longer ago than this
	// when a process looks is recorded missed, and an import still failing
	// when it has passed is given up.
	CatchUp time.Duration
	// Import stores the edition for the local day (a date) and returns the
	// edition's date.
	Import func(ctx context.Context, day time.Time) (date time.Time, err error)
	// Start starts the send of the edition of date: it queues the
	// recipients, the workers deliver.
	Start func(ctx context.Context, date time.Time) error
	// Alert, when set, is told of a failed or missed run besides the log
	// (an email, see MailAlert).
	Alert  func(ctx context.Context, subject, body string) error
	Log    *slog.Logger
	Holder string // names this process in the leases of runs
	// Now is the clock; nil: time.Now. Tests give their own to a Tick.
	Now func() time.Time
	// Poll is how often Run looks for work between scheduled times: retries,
	// holds ending, releases. Zero: 15s.
	Poll time.Duration
}

// Timings of a run's steps.
const (
	// leaseTTL is how long a process owns a step it took; one that died
	// leaves the run to another process after it.
	leaseTTL = 10 * time.Minute
	// stepTimeout bounds one import or start of a send, well within the
	// lease.
	stepTimeout = 5 * time.Minute
	firstRetry  = 30 * time.Second
	maxRetry    = 15 * time.Minute
	// lookBack bounds how far back missed runs are recorded after a long
	// outage.
	lookBack = 31 * 24 * time.Hour
)

// Run ticks until ctx ends: at each scheduled time and every Poll between.
func (s *Scheduler) Run(ctx context.Context) error {
	poll := s.Poll
	if poll <= 0 {
		poll = 15 * time.Second
	}
	s.Log.Info("schedule started", "schedule", s.Spec.String(), "tz", s.Spec.Location().String(),
		"next", s.Spec.Next(s.now()), "hold", s.Hold, "catch_up", s.CatchUp)
	for {
		now := s.now()
		if err := s.Tick(ctx, now); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			// The database may be restarting: the next tick tries again.
			s.Log.Warn("schedule: tick failed; trying again", "err", err)
		}
		wait := poll
		if next := s.Spec.Next(now); !next.IsZero() {
			wait = min(wait, max(next.Sub(s.now()), 0))
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (s *Scheduler) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Tick does what is due at now: it records the runs that came due (or were
// missed), then takes the due steps of open runs one at a time.
func (s *Scheduler) Tick(ctx context.Context, now time.Time) error {
	if err := s.record(ctx, now); err != nil {
		return err
	}
	// Bounded: a step that fails moves its run's next_at past now.
	for range 100 {
		r, err := s.claim(ctx, now)
		if err != nil || r == nil {
			return err
		}
		if err := s.step(ctx, now, r); err != nil {
			return err
		}
	}
	return nil
}

// record inserts the row of every run that came due since the last one
// recorded: a run within the catch-up window as due, an older one as
// missed. ON CONFLICT DO NOTHING: of several processes, the one whose
// insert wrote the row reports a missed run; a due run is then taken by
// claim, which one process wins.
func (s *Scheduler) record(ctx context.Context, now time.Time) error {
	from := now.Add(-s.CatchUp)
	var last *time.Time
	if err := s.DB.GetContext(ctx, &last, `SELECT max(scheduled_for) FROM schedule_runs`); err != nil {
		return fmt.Errorf("schedule: read the last run: %w", err)
	}
	if last != nil && last.Before(from) {
		from = maxTime(*last, now.Add(-lookBack))
	}
	var missed []string
	for _, run := range s.Spec.Between(from, now) {
		day := run.Day.Format(edition.DateLayout)
		if run.At.After(now.Add(-s.CatchUp)) {
			if _, err := s.DB.ExecContext(ctx, `
				INSERT INTO schedule_runs (day, scheduled_for, state, next_at) VALUES ($1::date, $2, 'importing', $2)
				ON CONFLICT (day) DO NOTHING`, day, run.At); err != nil {
				return fmt.Errorf("schedule: record the run of %s: %w", day, err)
			}
			continue
		}
		reason := fmt.Sprintf("no process was running between %s and the end of the catch-up window (%s later): not sent late",
			run.At.In(s.Spec.Location()).Format(time.RFC3339), s.CatchUp)
		res, err := s.DB.ExecContext(ctx, `
			INSERT INTO schedule_runs (day, scheduled_for, state, reason, finished_at) VALUES ($1::date, $2, 'missed', $3, $4)
			ON CONFLICT (day) DO NOTHING`, day, run.At, reason, now)
		if err != nil {
			return fmt.Errorf("schedule: record the missed run of %s: %w", day, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			s.Log.Error("scheduled digest not sent", "day", day, "outcome", Missed, "reason", reason)
			missed = append(missed, day)
		}
	}
	if len(missed) > 0 {
		// One email however long the outage: the log has a line per day.
		s.mail(ctx, missed, Missed, "no process was running within the catch-up window of its scheduled time: not sent late")
	}
	return nil
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// claimed is a run whose next step this process took.
type claimed struct {
	Day          time.Time  `db:"day"`
	ScheduledFor time.Time  `db:"scheduled_for"`
	State        string     `db:"state"`
	EditionDate  *time.Time `db:"edition_date"`
	Attempts     int        `db:"attempts"`
	NextAt       time.Time  `db:"next_at"` // when the step came due
}

// claimSQL takes the lease of one run with a step due: an import (held or
// not: a hold stops the send, not the import), or the start of a send not
// held. The row lock and the re-checked lease let exactly one process
// through; SKIP LOCKED sends the others to another run.
const claimSQL = `
UPDATE schedule_runs SET lease_holder = $2, lease_until = $3,
    started_at = coalesce(started_at, $1),
    state = CASE WHEN state = 'holding' THEN 'sending' ELSE state END
WHERE day = (
    SELECT day FROM schedule_runs
    WHERE state IN ('importing', 'holding', 'sending') AND next_at <= $1
      AND (state = 'importing' OR NOT held)
      AND (lease_until IS NULL OR lease_until < $1)
    ORDER BY day LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING day, scheduled_for, state, edition_date, attempts, next_at`

func (s *Scheduler) claim(ctx context.Context, now time.Time) (*claimed, error) {
	var r claimed
	err := s.DB.GetContext(ctx, &r, claimSQL, now, s.Holder, now.Add(leaseTTL))
	if isNoRows(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("schedule: take a due run: %w", err)
	}
	return &r, nil
}

// step does the claimed run's step and records what came of it.
func (s *Scheduler) step(ctx context.Context, now time.Time, r *claimed) error {
	day := r.Day.Format(edition.DateLayout)
	if r.State == Importing {
		return s.importStep(ctx, now, r, day)
	}
	if now.After(r.NextAt.Add(s.CatchUp)) {
		return s.late(ctx, now, r, day)
	}
	sctx, cancel := context.WithTimeout(ctx, stepTimeout)
	err := s.Start(sctx, *r.EditionDate)
	cancel()
	if err == nil {
		s.Log.Info("scheduled send started", "day", day, "edition", r.EditionDate.Format(edition.DateLayout))
		return s.finish(ctx, now, day, Sent, "")
	}
	if ctx.Err() != nil {
		return s.unlease(ctx, day)
	}
	// The send may be retried for as long as its import could have been,
	// counted from the end of the hold.
	return s.retryOrFail(ctx, now, r, day, Holding, r.ScheduledFor.Add(s.CatchUp+s.Hold), fmt.Errorf("start the send: %w", err))
}

// late records a run whose send came due (the hold ended, or an editor
// released it) longer than the catch-up window ago, all processes having
// been down since: missed, not sent late. Unless the process that took it
// last had started the send before it died: then it is sent.
func (s *Scheduler) late(ctx context.Context, now time.Time, r *claimed, day string) error {
	var started bool
	err := s.DB.GetContext(ctx, &started, `SELECT send_started_at IS NOT NULL FROM editions WHERE date = $1::date`,
		r.EditionDate.Format(edition.DateLayout))
	if err != nil && !isNoRows(err) {
		return fmt.Errorf("schedule: read whether the send of %s started: %w", day, err)
	}
	if started {
		return s.finish(ctx, now, day, Sent, "")
	}
	return s.finish(ctx, now, day, Missed, fmt.Sprintf("its send was due at %s and no process was running within the catch-up window (%s): not sent late",
		r.NextAt.In(s.Spec.Location()).Format(time.RFC3339), s.CatchUp))
}

func (s *Scheduler) importStep(ctx context.Context, now time.Time, r *claimed, day string) error {
	deadline := r.ScheduledFor.Add(s.CatchUp)
	if now.After(deadline) {
		// A process died during the run and none took it over in time.
		return s.finish(ctx, now, day, Failed, "the catch-up window closed before the edition was imported")
	}
	ictx, cancel := context.WithTimeout(ctx, stepTimeout)
	date, err := s.Import(ictx, r.Day)
	cancel()
	switch {
	case errors.Is(err, edition.ErrSendStarted):
		return s.finish(ctx, now, day, Skipped, err.Error())
	case err != nil && ctx.Err() != nil:
		return s.unlease(ctx, day)
	case err != nil:
		return s.retryOrFail(ctx, now, r, day, Importing, deadline, fmt.Errorf("import the edition: %w", err))
	}
	s.Log.Info("scheduled edition imported", "day", day, "edition", date.Format(edition.DateLayout), "send_at", now.Add(s.Hold))
	_, err = s.DB.ExecContext(ctx, `
		UPDATE schedule_runs SET state = 'holding', edition_date = $2::date, next_at = $3, attempts = 0, reason = '',
		    lease_holder = NULL, lease_until = NULL
		WHERE day = $1::date AND lease_holder = $4`, day, date.Format(edition.DateLayout), now.Add(s.Hold), s.Holder)
	if err != nil {
		return fmt.Errorf("schedule: record the import of %s: %w", day, err)
	}
	return nil
}

// retryOrFail puts the run back in state, due again after a backoff, or
// records it failed when that would be after deadline.
func (s *Scheduler) retryOrFail(ctx context.Context, now time.Time, r *claimed, day, state string, deadline time.Time, cause error) error {
	attempts := r.Attempts + 1
	next := now.Add(backoff(attempts))
	if next.After(deadline) {
		return s.finish(ctx, now, day, Failed, fmt.Sprintf("%v (%d attempts)", cause, attempts))
	}
	s.Log.Warn("scheduled run failed a step; retrying", "day", day, "attempt", attempts, "retry_at", next, "err", cause)
	_, err := s.DB.ExecContext(ctx, `
		UPDATE schedule_runs SET state = $2, attempts = $3, next_at = $4, reason = $5, lease_holder = NULL, lease_until = NULL
		WHERE day = $1::date AND lease_holder = $6`, day, state, attempts, next, cause.Error(), s.Holder)
	if err != nil {
		return fmt.Errorf("schedule: record the retry of %s: %w", day, err)
	}
	return nil
}

// backoff is the wait before attempt n+1: 30s doubled per attempt, at most
// 15 minutes.
func backoff(n int) time.Duration {
	d := firstRetry
	for i := 1; i < n && d < maxRetry; i++ {
		d *= 2
	}
	return min(d, maxRetry)
}

// finish records the run's outcome, and raises the alert of a failure.
func (s *Scheduler) finish(ctx context.Context, now time.Time, day, outcome, reason string) error {
	ctx = context.WithoutCancel(ctx)
	_, err := s.DB.ExecContext(ctx, `
		UPDATE schedule_runs SET state = $2, reason = $3, finished_at = $4::timestamptz, next_at = NULL,
		    sent_at = CASE WHEN $2 = 'sent' THEN $4::timestamptz END, lease_holder = NULL, lease_until = NULL
		WHERE day = $1::date AND lease_holder = $5`, day, outcome, reason, now, s.Holder)
	if err != nil {
		return fmt.Errorf("schedule: record the outcome of %s: %w", day, err)
	}
	if outcome == Failed || outcome == Missed {
		s.Log.Error("scheduled digest not sent", "day", day, "outcome", outcome, "reason", reason)
		s.mail(ctx, []string{day}, outcome, reason)
	}
	return nil
}

// unlease gives the run back when this process is stopping mid-step, so
// another takes it at once rather than after the lease.
func (s *Scheduler) unlease(ctx context.Context, day string) error {
	_, err := s.DB.ExecContext(context.WithoutCancel(ctx), `
		UPDATE schedule_runs SET lease_holder = NULL, lease_until = NULL,
		    state = CASE WHEN state = 'sending' THEN 'holding' ELSE state END
		WHERE day = $1::date AND lease_holder = $2`, day, s.Holder)
	if err != nil {
		return fmt.Errorf("schedule: hand back the run of %s: %w", day, err)
	}
	return ctx.Err()
}

// mail sends Alert's email about runs that did not send, when Alert is
// set; the caller logged each at error level.
func (s *Scheduler) mail(ctx context.Context, days []string, outcome, reason string) {
	if s.Alert == nil {
		return
	}
	which := days[0]
	if len(days) > 1 {
		which = fmt.Sprintf("%s to %s (%d days)", days[0], days[len(days)-1], len(days))
	}
	subject := fmt.Sprintf("Newsletter digest of %s %s", which, outcome)
	body := fmt.Sprintf("The scheduled digest of %s (schedule %q, %s) was not sent: it %s.\n\nReason: %s\n\n"+
		"`newsletter schedule status` lists the runs; `newsletter send --date %s` sends one by hand.\n",
		which, s.Spec.String(), s.Spec.Location(), outcome, reason, days[len(days)-1])
	if err := s.Alert(context.WithoutCancel(ctx), subject, body); err != nil {
		s.Log.Error("schedule: the alert email was not sent", "days", which, "err", err)
	}
}
