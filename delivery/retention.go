package delivery

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// Retention is how long deliveries are kept after their edition's send
// started: Months and Days after it; zero keeps them forever.
type Retention struct{ Months, Days int }

// Forever tells whether the retention keeps everything.
func (r Retention) Forever() bool { return r.Months == 0 && r.Days == 0 }

// Pruned is what a Prune did.
type Pruned struct {
	Partitions []string // dropped
	Editions   int64    // summarised and dropped with them
	// Kept are the partitions past the retention that stay, with why (an
	// edition of the month still being sent, or the table busy: tried again
	// at the next prune).
	Kept map[string]string
}

// Prune drops the deliveries partitions of the months wholly older than the
// retention (every send in them started longer ago than it) whose editions
// have all finished, after keeping each edition's counts and failures in
// delivery_summaries, where Count and Summary find them. Several processes
// may prune at once: the second finds nothing left to do.
//
// Dropping a partition locks the whole table for a moment; lockWait bounds
// how long the drop waits for that lock behind running statements (and so
// how long the sends queued behind it wait); a month that can't be locked
// in time is tried again at the next prune.
func (q *Queue) Prune(ctx context.Context, keep Retention, now time.Time, lockWait time.Duration) (Pruned, error) {
	p := Pruned{Kept: map[string]string{}}
	if keep.Forever() {
		return p, nil
	}
	cutoff := now.UTC().AddDate(0, -keep.Months, -keep.Days)
	var months []string
	err := q.DB.SelectContext(ctx, &months, `
		SELECT substr(c.relname, 12, 4) || '-' || substr(c.relname, 17, 2) || '-01'
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'deliveries'::regclass AND c.relname ~ '^deliveries_[0-9]{4}_[0-9]{2}$'
		ORDER BY 1`)
	if err != nil {
		return p, fmt.Errorf("prune deliveries: list the partitions: %w", err)
	}
	for _, m := range months {
		start, err := time.Parse(time.DateOnly, m)
		if err != nil {
			return p, fmt.Errorf("prune deliveries: partition of %q: %w", m, err)
		}
		if start.AddDate(0, 1, 0).After(cutoff) {
			break // this month and the later ones are kept
		}
		n, why, err := q.pruneMonth(ctx, m, lockWait)
		if err != nil {
			return p, err
		}
		if why != "" {
			p.Kept[partitionName(m)] = why
			continue
		}
		p.Partitions = append(p.Partitions, partitionName(m))
		p.Editions += n
	}
	return p, nil
}

// pruneMonth summarises and drops the partition of month, or tells why
// not. Two transactions: the summaries read the whole partition, under a
// lock that keeps its rows from changing but lets the sends go on; the drop
// then locks the whole table, for a moment, after checking again that
// nothing changed.
func (q *Queue) pruneMonth(ctx context.Context, month string, lockWait time.Duration) (int64, string, error) {
	part := partitionName(month)
	unfinished := func(tx *sqlx.Tx, lock string) (string, error) {
		var open []string
		err := tx.GetContext(ctx, pq.Array(&open), `
			SELECT coalesce(array_agg(date::text ORDER BY date), '{}') FROM (
				SELECT date, finished_at FROM editions WHERE send_month = $1::date ORDER BY id `+lock+`) e
			WHERE finished_at IS NULL`, month)
		if err != nil || len(open) == 0 {
			return "", err
		}
		return fmt.Sprintf("the send of the editions of %v has not finished", open), nil
	}
	fail := func(err error) (int64, string, error) {
		return 0, "", fmt.Errorf("prune deliveries of %s: %w", month[:7], err)
	}

	tx, err := q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	// SHARE: no row of the month changes (a retry of failures, a late
	// result) between the check and the summaries.
	if _, err := tx.ExecContext(ctx, `LOCK TABLE `+part+` IN SHARE MODE`); err != nil {
		return fail(err)
	}
	if why, err := unfinished(tx, ""); err != nil || why != "" {
		return 0, why, err
	}
	res, err := tx.ExecContext(ctx, fmt.Sprintf(summarise, part, failuresKept))
	if err != nil {
		return fail(fmt.Errorf("summarise: %w", err))
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return fail(err)
	}

	tx, err = q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, fmt.Sprintf(`SET LOCAL lock_timeout = %d`, max(lockWait.Milliseconds(), 1))); err != nil {
		return fail(err)
	}
	// The editions' rows first (an enqueue locks its edition's row before
	// it checks for a summary, see refusePruned): a send of one of them
	// started since the summaries keeps the month.
	if why, err := unfinished(tx, "FOR SHARE"); err != nil || why != "" {
		return 0, why, err
	}
	if _, err := tx.ExecContext(ctx, `LOCK TABLE deliveries IN ACCESS EXCLUSIVE MODE`); err != nil {
		if isLockTimeout(err) {
			return 0, "the table was busy; tried again at the next prune", nil
		}
		return fail(err)
	}
	if _, err := tx.ExecContext(ctx, `DROP TABLE `+part); err != nil {
		return fail(err)
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	return n, "", nil
}

// isLockTimeout tells whether err is PostgreSQL giving up on a lock after
// lock_timeout (SQLSTATE 55P03, lock_not_available).
func isLockTimeout(err error) bool {
	var pe *pq.Error
	return errors.As(err, &pe) && pe.Code == "55P03"
}
