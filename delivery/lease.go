package delivery

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// plan is where a Run's feed leases from: the ids queued when the Run
// began, cut into stripes at a random offset. The feed works through the
// first stripe, then takes the upper half of the largest stripe left, and
// when every stripe is nearly done it leases from the whole edition (a
// shared pass, see Queue.Lease), which also picks up retries, rescued
// leases and rows queued later. So processes that share the edition start
// in different places and go different ways, and FOR UPDATE SKIP LOCKED
// rarely has rows another holds to step over; where they meet it keeps
// each row to one holder. (The plan works for any number of leasers, each
// with its stripe, as the test shows; a Run has one.)
type plan struct {
	mu      sync.Mutex
	stripes []stripe // one per connection, and the head below the first (see newPlan)
}

// stripe is the ids (next, end] left to lease.
type stripe struct{ next, end int64 }

// span is what Queue.Span tells of an edition's queued deliveries.
type span struct {
	N  int64 `db:"n"`
	Lo int64 `db:"lo"`
	Hi int64 `db:"hi"`
}

// newPlan cuts the ids [lo, hi] into conns stripes. The cuts start at a
// random offset, so that two processes starting on one edition do not both
// put a connection on each cut; the ids below the first cut are a stripe no
// connection starts with, left for the first to finish its own. A single
// connection leases in the order of the ids, as it always has.
func newPlan(conns int, queued, lo, hi int64) *plan {
	p := &plan{stripes: make([]stripe, conns+1)}
	if queued == 0 || hi < lo {
		return p // every connection starts with the shared pass
	}
	width := (hi - lo + 1 + int64(conns) - 1) / int64(conns)
	shift := int64(0)
	if conns > 1 {
		shift = rand.Int64N(width)
	}
	start := lo - 1 - width + shift // the head: ids [lo, first cut]
	for i := range p.stripes {
		k := (i + conns) % (conns + 1) // connection i gets stripe i+1; the head is last
		next, end := max(start+int64(i)*width, lo-1), min(start+int64(i+1)*width, hi)
		p.stripes[k] = stripe{next: next, end: end}
	}
	return p
}

// claim tells connection i which ids to lease from: its stripe, or else the
// upper half of the largest stripe left if that is worth taking (at least
// two leases of size n, so the owner's lease in flight rarely reaches it);
// ok is false when the connection should join the shared pass.
func (p *plan) claim(i, n int) (after, upto int64, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if s := p.stripes[i]; s.next < s.end {
		return s.next, s.end, true
	}
	big := -1
	for j, s := range p.stripes {
		if s.end-s.next >= 2*int64(n) && (big < 0 || s.end-s.next > p.stripes[big].end-p.stripes[big].next) {
			big = j
		}
	}
	if big < 0 {
		return 0, 0, false
	}
	s := p.stripes[big]
	mid := s.next + (s.end-s.next)/2
	p.stripes[big].end = mid
	p.stripes[i] = stripe{next: mid, end: s.end}
	return mid, s.end, true
}

// leased moves connection i's stripe past jobs, which a lease of up to n
// from the stripe returned: fewer than n means nothing due is left in it.
func (p *plan) leased(i, n int, jobs []Job) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := &p.stripes[i]
	if len(jobs) < n {
		s.next = s.end
		return
	}
	for _, j := range jobs {
		s.next = max(s.next, j.ID)
	}
}

// Span counts an edition's queued deliveries and tells the lowest and the
// highest id among them, through the partial index of queued rows (so it
// costs what is queued, whatever the table holds): a Run cuts its
// connections' stripes from it.
func (q *Queue) Span(ctx context.Context, editionID int64) (span, error) {
	var s span
	month, err := q.month(ctx, editionID)
	if errors.Is(err, errNotStarted) {
		return s, nil
	}
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	tx, err := q.DB.BeginTxx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	defer tx.Rollback()
	// Right after the enqueue the statistics say most of the table is
	// queued, and the planner would scan all of it (every edition kept).
	if _, err := tx.ExecContext(ctx, `SET LOCAL enable_seqscan = off`); err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	err = tx.GetContext(ctx, &s, `
		SELECT count(*) AS n, coalesce(min(id), 0) AS lo, coalesce(max(id), 0) AS hi
		FROM deliveries WHERE edition_id = $1 AND send_month = $2::date AND status = 'queued'`, editionID, month)
	if err != nil {
		return s, fmt.Errorf("span of the queued deliveries: %w", err)
	}
	return s, nil
}

// leaseJobs takes up to $3 due deliveries of the edition (whose send month
// is $7, so that one partition is read) with ids in ($5, $6], unless its send is paused, that no other worker holds (SKIP
// LOCKED: workers never wait on each other), marks them held by $2 until the
// lease expires, and counts the attempt now, before anything is dialled, so
// a crash mid-send still counts.
//
// The update finds the picked rows by primary key (= ANY of their ids), and
// joins nothing: on a small table the planner would hash a join with the
// CTE, or with subscribers, against a full scan of deliveries, whose cost is
// the table's, not the lease's (TestLeasePlan). The addresses are joined to
// the rows it returned.
const leaseJobs = `
WITH picked AS (
    SELECT id FROM deliveries
    WHERE edition_id = $1 AND send_month = $7::date AND status = 'queued' AND id > $5 AND id <= $6
      AND next_attempt_at <= now()
      AND NOT EXISTS (SELECT 1 FROM editions WHERE id = $1 AND paused_at IS NOT NULL)
    ORDER BY id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
),
leased AS (
    UPDATE deliveries d
    SET status = 'sending', lease_holder = $2,
        lease_expires_at = now() + make_interval(secs => $4),
        attempts = d.attempts + 1, last_attempt_at = now(), updated_at = now()
    WHERE d.send_month = $7::date AND d.id = ANY(ARRAY(SELECT id FROM picked))
    RETURNING d.id, d.subscriber_id, d.edition_id, d.message_id, d.attempts
)
SELECT d.id, d.subscriber_id, ` + messageID + ` AS message_id, d.attempts, s.uuid, s.email, s.name, s.status AS subscriber_status
FROM leased d JOIN subscribers s ON s.id = d.subscriber_id JOIN editions e ON e.id = d.edition_id`

// Lease takes up to n due deliveries of the edition with ids above after
// for holder.
//
// after is the caller's cursor: the index of queued deliveries keeps entries
// for rows already sent until a vacuum, so a lease that always started from
// the lowest id would step over every one of them, and a send would slow
// down quadratically. Starting after the last id leased keeps each lease
// short; the caller starts again from 0 when nothing is left above, which
// also picks up retries and rescued leases.
func (q *Queue) Lease(ctx context.Context, editionID int64, holder string, n int, ttl time.Duration, after int64) ([]Job, error) {
	return q.LeaseRange(ctx, editionID, holder, n, ttl, after, math.MaxInt64)
}

// LeaseRange is Lease of the ids in (after, upto] only: a connection that
// leases from its own part of the edition's ids (see plan) does not step
// over the rows the others just took.
func (q *Queue) LeaseRange(ctx context.Context, editionID int64, holder string, n int, ttl time.Duration, after, upto int64) ([]Job, error) {
	if err := q.prepare(ctx); err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	month, err := q.month(ctx, editionID)
	if err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	var jobs []Job
	if err := q.leaseStmt.SelectContext(ctx, &jobs, editionID, holder, n, ttl.Seconds(), after, upto, month); err != nil {
		return nil, fmt.Errorf("lease deliveries: %w", err)
	}
	return jobs, nil
}
