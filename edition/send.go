package edition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// SendState is where an edition's send stands. The deliveries table (package
// delivery) holds each recipient's part; this is the edition's.
type SendState struct {
	ID          int64      `db:"id"`
	Date        string     `db:"date"`
	StartedAt   *time.Time `db:"send_started_at"`
	SendBy      *time.Time `db:"send_by"` // nil: no deadline
	PausedAt    *time.Time `db:"paused_at"`
	PauseReason *string    `db:"pause_reason"`
	FinishedAt  *time.Time `db:"finished_at"`
	// BounceWatchDone: no run need watch the send's first outcomes for
	// hard bounces any more (see EndBounceWatch).
	BounceWatchDone bool `db:"bounce_watch_done"`
	// CancelledAt, CancelledBy: the send was cancelled (it is paused too,
	// for good; see delivery.Queue.Cancel).
	CancelledAt *time.Time `db:"cancelled_at"`
	CancelledBy *string    `db:"cancelled_by"`
	// SendAt, ScheduledBy: the send is scheduled to start then (see
	// Schedule); kept once it started, as the record of the schedule.
	SendAt      *time.Time `db:"send_at"`
	ScheduledBy *string    `db:"scheduled_by"`
}

// The states of an edition's send, as people read them.
const (
	Draft     = "draft"     // not started, not scheduled
	Scheduled = "scheduled" // not started, to start at SendAt
	Sending   = "sending"
	Paused    = "paused"
	Cancelled = "cancelled"
	Finished  = "finished"
)

// State names the send's state for people: draft, scheduled, sending,
// paused, cancelled or finished.
func (s SendState) State() string {
	switch {
	case s.StartedAt == nil && s.SendAt != nil:
		return Scheduled
	case s.StartedAt == nil:
		return Draft
	case s.CancelledAt != nil:
		return Cancelled
	case s.PausedAt != nil:
		return Paused
	case s.FinishedAt != nil:
		return Finished
	}
	return Sending
}

const sendStateColumns = `id, date::text, send_started_at, send_by, paused_at, pause_reason, finished_at, bounce_watch_done,
	cancelled_at, cancelled_by, send_at, scheduled_by`

// SendState reads the send state of the edition with the given id.
func (s *Store) SendState(ctx context.Context, id int64) (SendState, error) {
	var st SendState
	err := s.DB.GetContext(ctx, &st, `SELECT `+sendStateColumns+` FROM editions WHERE id = $1`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return st, fmt.Errorf("edition %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return st, fmt.Errorf("read send state of edition %d: %w", id, err)
	}
	return st, nil
}

// EndBounceWatch records that the edition's first outcomes were watched
// for hard bounces (the window is over, or the send paused for them), so
// no run, in any process, watches again: after a resume the people who
// looked at the list have decided.
func (s *Store) EndBounceWatch(ctx context.Context, id int64) error {
	if _, err := s.DB.ExecContext(ctx, `UPDATE editions SET bounce_watch_done = true WHERE id = $1 AND NOT bounce_watch_done`, id); err != nil {
		return fmt.Errorf("end bounce watch of edition %d: %w", id, err)
	}
	return nil
}

// Pause stops the send of an edition: workers lease nothing more of it until
// Resume. The first reason is kept.
func (s *Store) Pause(ctx context.Context, id int64, reason string) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE editions SET paused_at = now(), pause_reason = $2
		WHERE id = $1 AND paused_at IS NULL`, id, reason)
	if err != nil {
		return fmt.Errorf("pause edition %d: %w", id, err)
	}
	return nil
}

// Resume lets a paused send go on where it stopped; it returns the reason it
// was paused for, or "" if it was not paused. A cancelled send stays
// paused: ErrCancelled.
func (s *Store) Resume(ctx context.Context, id int64) (string, error) {
	var reason sql.NullString
	err := s.DB.GetContext(ctx, &reason, `
		WITH old AS (SELECT id, pause_reason, cancelled_at FROM editions WHERE id = $1 AND paused_at IS NOT NULL FOR UPDATE)
		UPDATE editions e SET paused_at = NULL, pause_reason = NULL FROM old WHERE e.id = old.id AND old.cancelled_at IS NULL
		RETURNING old.pause_reason`, id)
	if errors.Is(err, sql.ErrNoRows) {
		st, err := s.SendState(ctx, id)
		if err == nil && st.CancelledAt != nil {
			err = fmt.Errorf("resume edition %s: %w", st.Date, ErrCancelled)
		}
		return "", err
	}
	if err != nil {
		return "", fmt.Errorf("resume edition %d: %w", id, err)
	}
	return reason.String, nil
}

// MarkFinished records that every recipient of the edition has an outcome.
func (s *Store) MarkFinished(ctx context.Context, id int64) error {
	_, err := s.DB.ExecContext(ctx, `UPDATE editions SET finished_at = coalesce(finished_at, now()) WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("mark edition %d finished: %w", id, err)
	}
	return nil
}

// Active lists the editions whose send started and is neither finished nor
// paused, oldest first: the long-lived worker's to-do list.
func (s *Store) Active(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.DB.SelectContext(ctx, &ids, `SELECT id FROM editions
		WHERE send_started_at IS NOT NULL AND finished_at IS NULL AND paused_at IS NULL ORDER BY date`)
	if err != nil {
		return nil, fmt.Errorf("list active editions: %w", err)
	}
	return ids, nil
}

// Schedule sets the time the edition's send is to start, by whom, unless it
// started: then it changes nothing and returns ErrSendStarted. It returns
// the time it replaced, nil if none.
func (s *Store) Schedule(ctx context.Context, id int64, at time.Time, by string) (*time.Time, error) {
	var old struct {
		At *time.Time `db:"send_at"`
	}
	err := s.DB.GetContext(ctx, &old, `
		WITH old AS (SELECT id, send_at FROM editions WHERE id = $1 AND send_started_at IS NULL FOR UPDATE)
		UPDATE editions e SET send_at = $2, scheduled_by = $3 FROM old WHERE e.id = old.id
		RETURNING old.send_at`, id, at, by)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("schedule edition %d: %w", id, ErrSendStarted)
	}
	if err != nil {
		return nil, fmt.Errorf("schedule edition %d: %w", id, err)
	}
	return old.At, nil
}

// Unschedule takes back the schedule of a send not started yet, and returns
// the time it was for; nil: none was (or the send started meanwhile).
func (s *Store) Unschedule(ctx context.Context, id int64) (*time.Time, error) {
	var at time.Time
	err := s.DB.GetContext(ctx, &at, `
		WITH old AS (SELECT id, send_at FROM editions WHERE id = $1 AND send_started_at IS NULL AND send_at IS NOT NULL FOR UPDATE)
		UPDATE editions e SET send_at = NULL, scheduled_by = NULL FROM old WHERE e.id = old.id
		RETURNING old.send_at`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("unschedule edition %d: %w", id, err)
	}
	return &at, nil
}

// Due lists the editions whose scheduled send is due and not started,
// oldest schedule first. Several processes may list one; LockForStart
// decides which of them starts it.
func (s *Store) Due(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := s.DB.SelectContext(ctx, &ids, `SELECT id FROM editions
		WHERE send_at <= now() AND send_started_at IS NULL ORDER BY send_at, id`)
	if err != nil {
		return nil, fmt.Errorf("list due scheduled sends: %w", err)
	}
	return ids, nil
}

// LockForStart takes the edition's row lock in the transaction of the
// send's start (before MarkSendStarted) and tells whether this start is
// to go on: never for a cancelled send (ErrCancelled); when onlyDue, only
// if the send is scheduled, due and not started. The lock makes a second
// process starting the same scheduled send wait for the first to commit,
// then see it started: a due send starts exactly once.
func LockForStart(ctx context.Context, tx sqlx.QueryerContext, id int64, onlyDue bool) (bool, error) {
	var r struct {
		Cancelled bool `db:"cancelled"`
		Due       bool `db:"due"`
	}
	err := sqlx.GetContext(ctx, tx, &r, `SELECT cancelled_at IS NOT NULL AS cancelled,
		coalesce(send_started_at IS NULL AND send_at <= now(), false) AS due FROM editions WHERE id = $1 FOR UPDATE`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return false, fmt.Errorf("start the send of edition %d: %w", id, ErrNotFound)
	}
	if err != nil {
		return false, fmt.Errorf("start the send of edition %d: %w", id, err)
	}
	if r.Cancelled {
		return false, fmt.Errorf("start the send of edition %d: %w", id, ErrCancelled)
	}
	return !onlyDue || r.Due, nil
}
