package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/jmoiron/sqlx"
)

// ErrNotCancellable: the send has not started (nothing to cancel in the
// queue), or has finished.
var ErrNotCancellable = errors.New("the send is not going on")

// cancelEdition marks the send cancelled and paused in one: the pause is
// what the send path already looks at (the lease refuses a paused edition,
// each run reads the send state once a poll, see run.watchPause), so every
// worker in every process stops within seconds without any check of its
// own per message, and the cancel outlives restarts. It keeps the first
// pause reason.
const cancelEdition = `
UPDATE editions SET cancelled_at = now(), cancelled_by = $2,
    paused_at = coalesce(paused_at, now()), pause_reason = coalesce(pause_reason, 'cancelled by ' || $2)
WHERE id = $1 AND send_started_at IS NOT NULL AND cancelled_at IS NULL AND finished_at IS NULL
RETURNING send_month::text`

// settleCancelled records as cancelled what is queued of the cancelled
// sends not finished ($1: one edition; NULL: every one), and the leases of
// theirs that expired (their worker died or hung before sending them); then
// marks finished the sends with nothing leased left, so that no statement
// on the sends going on (inSendingEditions) reads their rows again. A
// delivery leased and being sent keeps its lease and records its real
// outcome.
const settleCancelled = `
WITH c AS (
    SELECT id, send_month FROM editions
    WHERE cancelled_at IS NOT NULL AND finished_at IS NULL AND ($1::bigint IS NULL OR id = $1)
),
-- A data-modifying WITH runs whether or not the statement reads it.
settled AS (
    UPDATE deliveries d SET status = 'cancelled', lease_holder = NULL, lease_expires_at = NULL, updated_at = now()
    FROM c WHERE d.edition_id = c.id AND d.send_month = c.send_month
      AND (d.status = 'queued' OR d.status = 'sending' AND d.lease_expires_at < now())
    RETURNING d.edition_id
)
UPDATE editions e SET finished_at = now()
FROM c WHERE e.id = c.id
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = c.id AND d.send_month = c.send_month
                  AND d.status = 'sending' AND d.lease_expires_at >= now())`

// Cancel cancels the edition's send, by whom: every delivery still queued
// is recorded as cancelled at once, in the transaction that marks the
// edition, and the workers stop within a poll (see cancelEdition). Of the
// deliveries leased then, the messages already handed to the relay record
// their outcome; the rest are handed back untried and recorded as
// cancelled as the worker's run ends (or by SettleCancelled). It returns how many it recorded as cancelled;
// ErrNotCancellable when the send is not going on.
func (q *Queue) Cancel(ctx context.Context, editionID int64, by string) (int64, error) {
	tx, err := q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("cancel edition %d: begin: %w", editionID, err)
	}
	defer tx.Rollback()
	var month string
	err = tx.GetContext(ctx, &month, cancelEdition, editionID, by)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("cancel edition %d: %w", editionID, ErrNotCancellable)
	}
	if err != nil {
		return 0, fmt.Errorf("cancel edition %d: %w", editionID, err)
	}
	// Rows a lease holds are locked by it (FOR UPDATE): this update waits
	// for it and then finds them leased, not queued; rows it has not
	// reached yet it can no longer lease, the edition being paused.
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = 'cancelled', updated_at = now()
		WHERE edition_id = $1 AND send_month = $2::date AND status = 'queued'`, editionID, month)
	if err != nil {
		return 0, fmt.Errorf("cancel edition %d: record the queued as cancelled: %w", editionID, err)
	}
	n, _ := res.RowsAffected()
	if err := settle(ctx, tx, editionID); err != nil {
		return n, fmt.Errorf("cancel edition %d: %w", editionID, err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("cancel edition %d: commit: %w", editionID, err)
	}
	return n, nil
}

// SettleCancelled records as cancelled what is left queued of the
// cancelled sends (a worker handed its leases back after the cancel, or a
// dead worker's came back), and the expired leases of theirs, and ends the
// sends with nothing in flight. The live workers call it as they look for
// work, and a Run of a cancelled send as it stops; it costs a look at the
// editions when no cancelled send is unfinished.
func (q *Queue) SettleCancelled(ctx context.Context) error {
	if err := settle(ctx, q.DB, 0); err != nil {
		return fmt.Errorf("settle cancelled sends: %w", err)
	}
	return nil
}

// settle runs settleCancelled for the edition (0: every one).
func settle(ctx context.Context, db sqlx.ExecerContext, editionID int64) error {
	var id *int64
	if editionID != 0 {
		id = &editionID
	}
	_, err := db.ExecContext(ctx, settleCancelled, id)
	return err
}
