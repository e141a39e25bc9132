package schedule

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/edition"
)

// Record is one run as `newsletter schedule status` shows it.
type Record struct {
	Day          time.Time  `db:"day"`
	ScheduledFor time.Time  `db:"scheduled_for"`
	StartedAt    *time.Time `db:"started_at"`
	EditionDate  *time.Time `db:"edition_date"`
	State        string     `db:"state"`
	Held         bool       `db:"held"`
	Reason       string     `db:"reason"`
	Attempts     int        `db:"attempts"`
	NextAt       *time.Time `db:"next_at"`
}

// List returns the latest runs, newest first, at most limit.
func List(ctx context.Context, db *sqlx.DB, limit int) ([]Record, error) {
	var out []Record
	err := db.SelectContext(ctx, &out, `
		SELECT day, scheduled_for, started_at, edition_date, state, held, reason, attempts, next_at
		FROM schedule_runs ORDER BY day DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("list the schedule's runs: %w", err)
	}
	return out, nil
}

// ErrNoRun: the schedule has no run of that day (yet).
var ErrNoRun = errors.New("no scheduled run")

// Hold stops the send of day's run until Release: the run may still be
// importing or in its hold, not yet sending.
func Hold(ctx context.Context, db *sqlx.DB, day time.Time) error {
	return change(ctx, db, day, "hold", `
		UPDATE schedule_runs SET held = true WHERE day = $1::date AND state IN ('importing', 'holding')`)
}

// Release lets a held run's send start: at once (at the next tick of a
// scheduler, now being the clock's time) when it was imported, whether its
// hold ended or not, and however late: an editor asked for it.
func Release(ctx context.Context, db *sqlx.DB, day, now time.Time) error {
	return change(ctx, db, day, "release", `
		UPDATE schedule_runs SET held = false,
		    next_at = CASE WHEN state = 'holding' THEN $2 ELSE next_at END
		WHERE day = $1::date AND held AND state IN ('importing', 'holding')`, now)
}

// change runs a hold or release; when it changes nothing, the error says
// what state the run is in.
func change(ctx context.Context, db *sqlx.DB, day time.Time, what, query string, args ...any) error {
	date := day.Format(edition.DateLayout)
	res, err := db.ExecContext(ctx, query, append([]any{date}, args...)...)
	if err != nil {
		return fmt.Errorf("%s the run of %s: %w", what, date, err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return nil
	}
	var r Record
	err = db.GetContext(ctx, &r, `SELECT state, held FROM schedule_runs WHERE day = $1::date`, date)
	switch {
	case isNoRows(err):
		return fmt.Errorf("%s %s: %w of that day: the schedule records a day's run at its time; `newsletter schedule status` lists them", what, date, ErrNoRun)
	case err != nil:
		return fmt.Errorf("%s the run of %s: %w", what, date, err)
	case what == "release" && !r.Held && (r.State == Importing || r.State == Holding):
		return fmt.Errorf("release %s: the run is not held", date)
	}
	return fmt.Errorf("%s %s: the run is %s; only a run whose send has not started can be held or released", what, date, r.State)
}

// LastOutcomes is when the last scheduled send started and when the last
// run failed or was missed (zero when none), for the metrics.
func LastOutcomes(ctx context.Context, db *sqlx.DB) (lastSent, lastFailed time.Time, err error) {
	var sent, failed sql.NullTime
	err = db.QueryRowxContext(ctx, `
		SELECT max(finished_at) FILTER (WHERE state = 'sent'), max(finished_at) FILTER (WHERE state IN ('failed', 'missed'))
		FROM schedule_runs`).Scan(&sent, &failed)
	if err != nil {
		return time.Time{}, time.Time{}, fmt.Errorf("read the schedule's last outcomes: %w", err)
	}
	return sent.Time, failed.Time, nil
}

func isNoRows(err error) bool { return errors.Is(err, sql.ErrNoRows) }
