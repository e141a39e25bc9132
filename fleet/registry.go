package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

// lockHeld is true for a row of workers w whose member holds its lock, the
// fleet's class being $1. Advisory locks are per database, and pg_locks
// shows those of every database of the server. pg_try_advisory_lock would
// tell as much, one member at a time, taking the lock for a moment.
const lockHeld = `EXISTS (
    SELECT 1 FROM pg_locks l
    WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
      AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND l.classid = $1::integer::oid AND l.objid = w.id::oid)`

// deadWorkers deletes the rows of members whose lock is free: their process
// died, and PostgreSQL released the lock with its connection.
const deadWorkers = `DELETE FROM workers w WHERE NOT ` + lockHeld + `
RETURNING id, holder, host, pid`

// sweep returns the leases of dead members to the queue and deletes their
// rows, in a transaction on the member's connection: the deleted rows stay
// locked until their leases are back, so of two members sweeping at once
// only one returns a dead member's leases, and if this process dies before
// that, the rows are back for the next sweep.
func (m *Member) sweep(ctx context.Context) error {
	if m.conn == nil {
		return nil
	}
	tx, err := m.conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	var dead []struct {
		ID     int32  `db:"id"`
		Holder string `db:"holder"`
		Host   string `db:"host"`
		PID    int    `db:"pid"`
	}
	if err := tx.SelectContext(ctx, &dead, deadWorkers, LockClass); err != nil {
		return err
	}
	for _, d := range dead {
		n, err := m.opts.Release(ctx, d.Holder)
		if err != nil {
			return err
		}
		m.opts.Log.Info("fleet: returned the leases of a dead worker to the queue",
			"holder", d.Holder, "host", d.Host, "pid", d.PID, "deliveries", n)
	}
	return tx.Commit()
}

// Worker is a live member as `newsletter status` shows it.
type Worker struct {
	Holder      string    `db:"holder" json:"holder"`
	Host        string    `db:"host" json:"host"`
	PID         int       `db:"pid" json:"pid"`
	Version     string    `db:"version" json:"version"`
	StartedAt   time.Time `db:"started_at" json:"started_at"`
	HeartbeatAt time.Time `db:"heartbeat_at" json:"heartbeat_at"`
	// HeartbeatAge is how many seconds ago the last heartbeat was, by
	// the database's clock, as are the times.
	HeartbeatAge float64  `db:"heartbeat_age" json:"heartbeat_age_seconds"`
	Edition      *string  `db:"edition" json:"edition,omitempty"` // absent: idle
	Rate         *float64 `db:"rate" json:"rate,omitempty"`       // messages a second; absent: unlimited
	Conns        int      `db:"conns" json:"conns"`
}

// List returns the live members, oldest first.
func List(ctx context.Context, db *sqlx.DB) ([]Worker, error) {
	out := []Worker{} // none is an empty list, not null, in JSON
	err := db.SelectContext(ctx, &out, `
		SELECT holder, host, pid, version, started_at, heartbeat_at,
		       extract(epoch FROM now() - heartbeat_at)::float8 AS heartbeat_age, edition, rate, conns
		FROM workers w WHERE `+lockHeld+`
		ORDER BY started_at, id`, LockClass)
	if err != nil {
		return nil, fmt.Errorf("list the live workers: %w", err)
	}
	return out, nil
}
