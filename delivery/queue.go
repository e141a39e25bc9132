// Package delivery owns the deliveries table, which is at once the send queue
// and the record of what happened to every recipient of every edition, and
// the workers that drain it.
package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"newsletter/edition"
)

// Delivery statuses, as the table's CHECK constraint spells them.
const (
	Queued  = "queued"  // waiting for a worker (next_attempt_at says when)
	Sending = "sending" // leased by a worker (lease_holder, lease_expires_at)
	Sent    = "sent"    // the SMTP server accepted it (250 to DATA)
	Failed  = "failed"  // given up: permanent says whether the server refused it
	Skipped = "skipped" // the subscriber left between enqueue and send
	// Cancelled: the send was cancelled before this one was handed to the
	// SMTP server (see Cancel).
	Cancelled = "cancelled"
)

// Queue reads and writes the deliveries table.
type Queue struct {
	DB *sqlx.DB

	// The statements of the send's hot path, prepared once: they run for
	// every batch, and parsing and planning them each time would be a large
	// part of what PostgreSQL does during a send.
	prepMu             sync.Mutex
	leaseStmt, recStmt *sqlx.Stmt

	months sync.Map // edition id -> its deliveries' partition key (see month)
}

// prepare prepares the hot path's statements once (database/sql prepares
// them again on each new connection, after a database restart too); a
// failure (the database is away) is tried again by the next call.
func (q *Queue) prepare(ctx context.Context) error {
	q.prepMu.Lock()
	defer q.prepMu.Unlock()
	if q.recStmt != nil {
		return nil
	}
	lease, err := q.DB.PreparexContext(ctx, leaseJobs)
	if err != nil {
		return fmt.Errorf("prepare the lease statement: %w", err)
	}
	rec, err := q.DB.PreparexContext(ctx, recordResults)
	if err != nil {
		lease.Close()
		return fmt.Errorf("prepare the record statement: %w", err)
	}
	q.leaseStmt, q.recStmt = lease, rec
	return nil
}

// Job is one leased delivery, with what is needed to address it.
type Job struct {
	ID               int64  `db:"id"`
	SubscriberID     int64  `db:"subscriber_id"`
	MessageID        string `db:"message_id"`
	Attempts         int    `db:"attempts"` // including this one
	SubscriberUUID   string `db:"uuid"`
	Email            string `db:"email"`
	Name             string `db:"name"`
	SubscriberStatus string `db:"subscriber_status"`

	leased time.Time // when its lease was taken or last renewed (see feed)
}

// enqueueConfirmed queues every confirmed subscriber not yet queued for the
// edition. NOT EXISTS rather than ON CONFLICT: a speculative insertion per
// row costs more, and two enqueues of one edition can't race, since both
// first lock the edition's row (edition.MarkSendStarted) and this
// statement's snapshot is taken after that lock is granted. The unique
// constraint still guards the pair. Nothing else is computed or checked per
// row (no Message-ID, no foreign-key trigger: see migration 0005), so a
// large list costs little more than the rows written.
const enqueueConfirmed = `
INSERT INTO deliveries (edition_id, subscriber_id, send_month)
SELECT $1, s.id, $2::date
FROM subscribers s
WHERE s.status = 'confirmed'
  AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.edition_id = $1 AND d.send_month = $2::date AND d.subscriber_id = s.id)
ORDER BY s.id`

// analyzeAfter is how many newly queued deliveries warrant fresh planner
// statistics.
const analyzeAfter = 5000

// Enqueue queues the edition for every confirmed subscriber who is not
// queued for it yet, and freezes the edition (send_started_at), in one
// transaction: running it twice queues nobody twice. msgIDDomain is the
// right-hand side of the Message-IDs (RFC 5322 section 3.6.4), fixed by the
// first enqueue of the edition.
//
// window is how long the send may take before temporary failures are given
// up (zero: no deadline): a morning digest that can't go by then is reported
// undelivered, not delivered the next day.
//
// A cancelled send is not started again: edition.ErrCancelled.
func (q *Queue) Enqueue(ctx context.Context, editionID int64, msgIDDomain string, window time.Duration) (int64, error) {
	n, _, err := q.enqueue(ctx, editionID, msgIDDomain, window, false)
	return n, err
}

// EnqueueDue is Enqueue of a scheduled send that is due and not started;
// started tells whether this call started it. Of several processes calling
// it for one edition, one starts it: the others find it started.
func (q *Queue) EnqueueDue(ctx context.Context, editionID int64, msgIDDomain string, window time.Duration) (n int64, started bool, err error) {
	return q.enqueue(ctx, editionID, msgIDDomain, window, true)
}

func (q *Queue) enqueue(ctx context.Context, editionID int64, msgIDDomain string, window time.Duration, onlyDue bool) (int64, bool, error) {
	// The month the rows go to must have its partition before the
	// transaction: creating one locks the whole table, which a transaction
	// that goes on to insert a million rows would hold all along. The month
	// is the edition's if its send started, else this one, or the next
	// should the first enqueue cross the end of the month.
	var month time.Time
	err := q.DB.GetContext(ctx, &month, `
		SELECT coalesce(send_month, date_trunc('month', now() AT TIME ZONE 'UTC')::date) FROM editions WHERE id = $1`, editionID)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: read its send month: %w", editionID, err)
	}
	if err := refusePruned(ctx, q.DB, editionID); err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: %w", editionID, err)
	}
	for _, m := range []time.Time{month, month.AddDate(0, 1, 0)} {
		if err := q.ensurePartition(ctx, m, 0); err != nil {
			return 0, false, fmt.Errorf("enqueue edition %d: %w", editionID, err)
		}
	}
	tx, err := q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: begin: %w", editionID, err)
	}
	defer tx.Rollback()
	// Taking the edition's row lock first (an edition re-import takes it
	// too) keeps an import from slipping in once the send started, and
	// decides which of several starts of a scheduled send goes on.
	if ok, err := edition.LockForStart(ctx, tx, editionID, onlyDue); err != nil || !ok {
		return 0, false, err
	}
	if err := edition.MarkSendStarted(ctx, tx, editionID, window, msgIDDomain); err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: %w", editionID, err)
	}
	var key string
	if err := tx.GetContext(ctx, &key, `SELECT send_month::text FROM editions WHERE id = $1`, editionID); err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: read its send month: %w", editionID, err)
	}
	if err := refusePruned(ctx, tx, editionID); err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: %w", editionID, err)
	}
	res, err := tx.ExecContext(ctx, enqueueConfirmed, editionID, key)
	if err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: %w", editionID, err)
	}
	n, _ := res.RowsAffected()
	if err := tx.Commit(); err != nil {
		return 0, false, fmt.Errorf("enqueue edition %d: commit: %w", editionID, err)
	}
	if n >= analyzeAfter {
		// The planner's statistics still say the queue is (nearly) empty,
		// and with them the lease scans and sorts every queued row, each
		// time, which grows with the list. Fresh statistics let it use the
		// partial index of queued deliveries. The month's partition only:
		// the plans of an edition's statements read that partition's
		// statistics, and analysing the whole table would read every month
		// kept.
		if _, err := q.DB.ExecContext(ctx, `ANALYZE `+partitionName(key)); err != nil {
			return n, true, fmt.Errorf("enqueue edition %d: analyze: %w", editionID, err)
		}
	}
	return n, true, nil
}

// messageID is a delivery's Message-ID (without the angle brackets),
// fixed at enqueue and the same on every retry: unique since the pair
// (edition, subscriber) is, and unguessable since the subscriber's UUID is
// random (RFC 5322 section 3.6.4 asks for global uniqueness). Deliveries
// queued before migration 0005 kept a stored random one.
const messageID = `coalesce(d.message_id,
    s.uuid::text || '.' || d.edition_id || '@' || coalesce(e.message_id_domain, 'message-id.invalid'))`

// Result is the outcome of one leased delivery, to be recorded.
type Result struct {
	ID           int64
	SubscriberID int64
	Status       string    // Sent, Failed, Skipped, or Queued for a retry
	NextAttempt  time.Time // for a retry
	Permanent    bool      // for Failed
	HardBounce   bool      // the mailbox does not exist: the subscriber is marked bounced
	// Deferred: not tried (a rate limit held it back); the attempt counted
	// at lease time is taken back.
	Deferred bool
	Code     int
	Enhanced string
	Reply    string
	// Holder is the lease holder the result is of; empty: the holder given
	// to Record. One Record may carry several connections' results.
	Holder string
}

// recordResults writes a batch of outcomes, but only for deliveries the
// holder still holds: if the lease expired and another worker took the
// delivery, this worker's late result must not overwrite the other's.
//
// The rows are looked up by id ($2 through the primary key) and the status
// and holder checked on those rows only: no index holds just the leased rows
// (migration 0009), and a scan of the leased rows to find a batch's would
// grow with the number of connections. The check is a CASE, whose
// selectivity the planner doesn't guess from the statistics: those are
// usually taken right after the enqueue, when no row was leased, and with
// them the planner expects no row to pass, and rescans the arrays for every
// row that does.
const recordResults = `
UPDATE deliveries d
SET status = v.status,
    lease_holder = NULL, lease_expires_at = NULL,
    attempts = CASE WHEN v.deferred THEN greatest(d.attempts - 1, 0) ELSE d.attempts END,
    next_attempt_at = coalesce(nullif(v.next_at, '')::timestamptz, d.next_attempt_at),
    permanent = CASE WHEN v.status = 'failed' THEN v.permanent END,
    smtp_code = CASE WHEN v.deferred THEN d.smtp_code ELSE nullif(v.code, 0) END,
    smtp_enhanced = CASE WHEN v.deferred THEN d.smtp_enhanced ELSE nullif(v.enhanced, '') END,
    smtp_reply = CASE WHEN v.deferred THEN d.smtp_reply ELSE nullif(v.reply, '') END,
    sent_at = CASE WHEN v.status = 'sent' THEN now() END,
    updated_at = now()
FROM unnest($2::bigint[], $3::text[], $4::text[], $5::boolean[], $6::integer[], $7::text[], $8::text[], $9::boolean[], $1::text[])
    AS v(id, status, next_at, permanent, code, enhanced, reply, deferred, holder)
WHERE d.send_month = $10::date AND d.id = ANY($2) AND d.id = v.id AND CASE WHEN d.status = 'sending' THEN d.lease_holder = v.holder ELSE false END`

const markBounced = `
UPDATE subscribers SET status = 'bounced', updated_at = now()
WHERE id = ANY($1) AND status = 'confirmed'`

// Record writes the outcomes of a batch of the edition in one transaction
// and returns how many were still held by their holders (each result's
// Holder, or holder) and so written.
func (q *Queue) Record(ctx context.Context, editionID int64, holder string, results []Result) (int64, error) {
	if len(results) == 0 {
		return 0, nil
	}
	n := len(results)
	ids, subs := make([]int64, n), []int64{}
	status, next, enh, reply := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	perm, codes, deferred := make([]bool, n), make([]int64, n), make([]bool, n)
	holders := make([]string, n)
	for i, r := range results {
		ids[i], status[i], perm[i], codes[i], enh[i], reply[i] = r.ID, r.Status, r.Permanent, int64(r.Code), r.Enhanced, r.Reply
		if holders[i] = r.Holder; r.Holder == "" {
			holders[i] = holder
		}
		if r.Status == Sent {
			// The one success reply to the end of data is 250 (RFC 5321
			// section 4.3.2), and its text (a queue id, mostly) would cost
			// bytes on every row of every edition kept, and room the row's
			// in-place update needs: the code is kept, not the text.
			codes[i], reply[i] = 250, ""
		}
		deferred[i] = r.Deferred
		if !r.NextAttempt.IsZero() {
			next[i] = r.NextAttempt.UTC().Format(time.RFC3339Nano)
		}
		if r.HardBounce {
			subs = append(subs, r.SubscriberID)
		}
	}
	if err := q.prepare(ctx); err != nil {
		return 0, fmt.Errorf("record deliveries: %w", err)
	}
	month, err := q.month(ctx, editionID)
	if err != nil {
		return 0, fmt.Errorf("record deliveries: %w", err)
	}
	args := []any{pq.Array(holders), pq.Array(ids), pq.Array(status), pq.Array(next),
		pq.Array(perm), pq.Array(codes), pq.Array(enh), pq.Array(reply), pq.Array(deferred), month}
	if len(subs) == 0 {
		// The common case: one statement, no transaction round trips.
		res, err := q.recStmt.ExecContext(ctx, args...)
		if err != nil {
			return 0, fmt.Errorf("record deliveries: %w", err)
		}
		return res.RowsAffected()
	}
	// Hard bounces: the subscribers are marked in the same transaction.
	tx, err := q.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("record deliveries: begin: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.StmtxContext(ctx, q.recStmt).ExecContext(ctx, args...)
	if err != nil {
		return 0, fmt.Errorf("record deliveries: %w", err)
	}
	written, _ := res.RowsAffected()
	if _, err := tx.ExecContext(ctx, markBounced, pq.Array(subs)); err != nil {
		return 0, fmt.Errorf("record deliveries: mark hard bounces: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("record deliveries: commit: %w", err)
	}
	return written, nil
}

// Release hands back leased deliveries of the edition that were never
// tried (the worker is stopping): the attempt counted at lease time is
// taken back.
func (q *Queue) Release(ctx context.Context, editionID int64, holder string, ids []int64) error {
	if len(ids) == 0 {
		return nil
	}
	month, err := q.month(ctx, editionID)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	_, err = q.DB.ExecContext(ctx, `
		UPDATE deliveries SET status = 'queued', lease_holder = NULL, lease_expires_at = NULL,
			attempts = greatest(attempts - 1, 0), updated_at = now()
		WHERE send_month = $3::date AND id = ANY($2) AND status = 'sending' AND lease_holder = $1`,
		holder, pq.Array(ids), month)
	if err != nil {
		return fmt.Errorf("release deliveries: %w", err)
	}
	return nil
}

// inSendingEditions limits a statement on leased deliveries to the editions
// being sent (started, not finished): only they can have leased rows, and
// no index holds just the leased rows (migration 0009), so without it the
// statement would read every edition ever sent. The bound on send_month
// prunes the partitions older than the oldest send going on (migration
// 0010), all of them when none is.
const inSendingEditions = `send_month >= (
    SELECT min(send_month) FROM editions WHERE send_started_at IS NOT NULL AND finished_at IS NULL)
  AND edition_id IN (
    SELECT id FROM editions WHERE send_started_at IS NOT NULL AND finished_at IS NULL)`

// Rescue returns to the queue the deliveries whose lease expired: their
// worker died or hung. The attempt stays counted, since the message may have
// gone out; this is the one window for a duplicate.
func (q *Queue) Rescue(ctx context.Context) (int64, error) {
	res, err := q.DB.ExecContext(ctx, `
		UPDATE deliveries SET status = 'queued', lease_holder = NULL, lease_expires_at = NULL, updated_at = now()
		WHERE `+inSendingEditions+` AND status = 'sending' AND lease_expires_at < now()`)
	if err != nil {
		return 0, fmt.Errorf("rescue expired leases: %w", err)
	}
	return res.RowsAffected()
}

// ReleaseHolder returns to the queue every delivery leased by the Worker
// whose Holder is holder (it leases for its connections as holder/0), and tells how
// many: the registry of live workers (package fleet) calls it for a worker
// whose process is dead, so its leases come back at once instead of at
// their expiry. As with Rescue, the attempt stays counted: the message may
// have gone out.
func (q *Queue) ReleaseHolder(ctx context.Context, holder string) (int64, error) {
	res, err := q.DB.ExecContext(ctx, `
		UPDATE deliveries SET status = 'queued', lease_holder = NULL, lease_expires_at = NULL, updated_at = now()
		WHERE `+inSendingEditions+` AND status = 'sending'
		  AND (lease_holder = $1 OR starts_with(lease_holder, $1 || '/'))`, holder)
	if err != nil {
		return 0, fmt.Errorf("release the leases of %s: %w", holder, err)
	}
	return res.RowsAffected()
}

// pendingSQL counts an edition's unfinished deliveries (queued or leased).
const pendingSQL = `
SELECT count(*) AS n, min(next_attempt_at) FILTER (WHERE status = 'queued') AS next
FROM deliveries WHERE edition_id = $1 AND send_month = $2::date AND status IN ('queued', 'sending')`

// Pending tells how many deliveries of the edition are not finished (queued
// or leased), and when the earliest queued one is due.
//
// Idle connections ask this at the end of a send, when the planner's
// statistics (taken after the enqueue) still say that most of the edition is
// queued; with them the planner picks a parallel scan of the whole table,
// whose cost grows with every edition kept, and which, asked again and again
// by many idle connections, would take most of PostgreSQL's time. Sequential
// scans are ruled out for this one statement: it reads the edition's rows
// through the index on edition_id and nothing else.
func (q *Queue) Pending(ctx context.Context, editionID int64) (int64, time.Time, error) {
	var r struct {
		N    int64      `db:"n"`
		Next *time.Time `db:"next"`
	}
	month, err := q.month(ctx, editionID)
	if errors.Is(err, errNotStarted) {
		return 0, time.Time{}, nil
	}
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count pending deliveries: %w", err)
	}
	tx, err := q.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("count pending deliveries: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return 0, time.Time{}, fmt.Errorf("count pending deliveries: %w", err)
	}
	if err := tx.GetContext(ctx, &r, pendingSQL, editionID, month); err != nil {
		return 0, time.Time{}, fmt.Errorf("count pending deliveries: %w", err)
	}
	var next time.Time
	if r.Next != nil {
		next = *r.Next
	}
	return r.N, next, nil
}

// Extend renews the holder's leases of the edition's given deliveries and returns the
// ids it still held: a worker slowed down (rate limits, a slow relay) keeps
// its batch, and drops what a rescuer already gave to someone else.
func (q *Queue) Extend(ctx context.Context, editionID int64, holder string, ids []int64, ttl time.Duration) (map[int64]bool, error) {
	month, err := q.month(ctx, editionID)
	if err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	var held []int64
	err = q.DB.SelectContext(ctx, &held, `
		UPDATE deliveries SET lease_expires_at = now() + make_interval(secs => $3)
		WHERE send_month = $4::date AND id = ANY($2) AND status = 'sending' AND lease_holder = $1
		RETURNING id`, holder, pq.Array(ids), ttl.Seconds(), month)
	if err != nil {
		return nil, fmt.Errorf("extend leases: %w", err)
	}
	out := make(map[int64]bool, len(held))
	for _, id := range held {
		out[id] = true
	}
	return out, nil
}

// ByMessageID finds the delivery a Message-ID was given to (with or without
// its angle brackets), as a bounce or a complaint quotes it, and tells its
// status. It returns sql.ErrNoRows (wrapped) when none matches. Only tests
// call it until bounce and complaint handling (issue 14) arrives: it is
// kept for that, with the derivation of Message-IDs it must follow.
func (q *Queue) ByMessageID(ctx context.Context, msgID string) (id int64, status string, err error) {
	msgID = strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(msgID), "<"), ">")
	var r struct {
		ID     int64  `db:"id"`
		Status string `db:"status"`
	}
	// A derived Message-ID names the subscriber and the edition; only
	// deliveries queued before migration 0005 store theirs.
	left, _, _ := strings.Cut(msgID, "@")
	subUUID, ed, _ := strings.Cut(left, ".")
	edID, perr := strconv.ParseInt(ed, 10, 64)
	if perr == nil && isUUID(subUUID) {
		err = q.DB.GetContext(ctx, &r, `
			SELECT d.id, d.status
			FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id JOIN editions e ON e.id = d.edition_id
			WHERE s.uuid = $2 AND d.edition_id = $3 AND `+messageID+` = $1`, msgID, subUUID, edID)
	} else {
		err = q.DB.GetContext(ctx, &r, `SELECT id, status FROM deliveries WHERE message_id = $1`, msgID)
	}
	if err != nil {
		return 0, "", fmt.Errorf("find the delivery of Message-ID %q: %w", msgID, err)
	}
	return r.ID, r.Status, nil
}

// isUUID tells whether s is a UUID in its text form (RFC 9562 section 4).
func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := range len(s) {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
