package edition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
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
}

// State names the send's state for people: not started, running, paused or
// finished.
func (s SendState) State() string {
	switch {
	case s.StartedAt == nil:
		return "not started"
	case s.PausedAt != nil:
		return "paused"
	case s.FinishedAt != nil:
		return "finished"
	}
	return "running"
}

const sendStateColumns = `id, date::text, send_started_at, send_by, paused_at, pause_reason, finished_at, bounce_watch_done`

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
// was paused for, or "" if it was not paused.
func (s *Store) Resume(ctx context.Context, id int64) (string, error) {
	var reason sql.NullString
	err := s.DB.GetContext(ctx, &reason, `
		WITH old AS (SELECT id, pause_reason FROM editions WHERE id = $1 AND paused_at IS NOT NULL FOR UPDATE)
		UPDATE editions e SET paused_at = NULL, pause_reason = NULL FROM old WHERE e.id = old.id
		RETURNING old.pause_reason`, id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
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
