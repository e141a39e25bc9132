package delivery

import (
	"context"
	"fmt"
	"time"
)

// Waiting is what an edition's unfinished deliveries are waiting for, as a
// send shows it when it has nothing else to say.
type Waiting struct {
	Leased      int64     // leased by other workers than the asker
	LeasedUntil time.Time // when the last of those leases expires
	Retries     int64     // queued for a retry not due yet
	RetryAt     time.Time // when the first of them is due
}

// Waiting tells what the edition's unfinished deliveries wait for: leases
// held by holders other than those starting with holder (a Worker's
// connections are Holder/0, Holder/1, ...), and retries not due yet. For a
// progress report every few seconds, not for the send's own loop.
func (q *Queue) Waiting(ctx context.Context, editionID int64, holder string) (Waiting, error) {
	var r struct {
		Leased      int64      `db:"leased"`
		LeasedUntil *time.Time `db:"leased_until"`
		Retries     int64      `db:"retries"`
		RetryAt     *time.Time `db:"retry_at"`
	}
	err := q.DB.GetContext(ctx, &r, `
		SELECT count(*) FILTER (WHERE status = 'sending' AND left(lease_holder, length($2)) <> $2) AS leased,
		       max(lease_expires_at) FILTER (WHERE status = 'sending' AND left(lease_holder, length($2)) <> $2) AS leased_until,
		       count(*) FILTER (WHERE status = 'queued' AND next_attempt_at > now()) AS retries,
		       min(next_attempt_at) FILTER (WHERE status = 'queued' AND next_attempt_at > now()) AS retry_at
		FROM deliveries WHERE `+ofEdition+` AND status IN ('queued', 'sending')`, editionID, holder+"/")
	if err != nil {
		return Waiting{}, fmt.Errorf("what the send waits for: %w", err)
	}
	w := Waiting{Leased: r.Leased, Retries: r.Retries}
	if r.LeasedUntil != nil {
		w.LeasedUntil = *r.LeasedUntil
	}
	if r.RetryAt != nil {
		w.RetryAt = *r.RetryAt
	}
	return w, nil
}
