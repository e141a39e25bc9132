// Package fleet owns the workers table, the registry of the processes that
// send: each one joins while it runs, proves it is alive by holding a
// PostgreSQL advisory lock on a connection of its own, and returns the
// leases of members that died to the queue within seconds, rather than at
// their expiry.
package fleet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jmoiron/sqlx"
)

// LockClass is the first key of the two-int advisory locks of the fleet:
// member id holds pg_advisory_lock(LockClass, id) for as long as it lives.
// The two-int form is a key space apart from the one-bigint form that
// migrations use (pg_locks tells them apart by objsubid 2 and 1), and the
// class keeps it apart from any other two-int lock of the database.
const LockClass int32 = 0x6e6c776b // "nlwk"

// DefaultInterval is how often a member beats, looks for dead members and
// counts the live ones.
const DefaultInterval = 2 * time.Second

// ReleaseFunc returns to the queue every lease of the worker named holder,
// and tells how many: the owner of the queue (package delivery) provides it.
type ReleaseFunc func(ctx context.Context, holder string) (int64, error)

// Options configure a member.
type Options struct {
	// Holder names the process's leases (delivery.Worker.Holder): unique
	// per process, e.g. host/pid/random. Required.
	Holder string
	// Release returns a dead member's leases to the queue. Required.
	Release  ReleaseFunc
	Interval time.Duration // default DefaultInterval
	Log      *slog.Logger  // default slog.Default()
}

// Activity is what a member is doing, shown by `newsletter status`.
type Activity struct {
	Edition string // the date of the edition it sends; "" when idle
	Conns   int    // its SMTP connections
	// Rate tells its rate in messages a second at each heartbeat (the rate
	// may change as the fleet does); nil or 0: unlimited.
	Rate func() float64
}

// Member is this process in the registry, from Join to Leave.
type Member struct {
	db       *sqlx.DB
	opts     Options
	host     string
	started  time.Time
	conn     *sqlx.Conn // holds the lock; only the heartbeat uses it after Join
	id       int32
	live     atomic.Int64
	mu       sync.Mutex
	activity Activity
	poke     chan struct{} // a new activity: beat now
	stop     chan struct{}
	done     chan struct{}
}

// Join registers this process, returns the leases of members found dead to
// the queue (so a process restarted after a crash gets its predecessor's
// work back before it starts leasing), and keeps the membership alive until
// Leave, which the caller must call (a process that dies without it is
// found dead by the others).
func Join(ctx context.Context, db *sqlx.DB, o Options) (*Member, error) {
	if o.Holder == "" || o.Release == nil {
		return nil, errors.New("fleet: join needs a holder and a release function")
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	host, _ := os.Hostname()
	m := &Member{db: db, opts: o, host: host, started: time.Now(),
		poke: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	if err := m.register(ctx); err != nil {
		return nil, err
	}
	if err := m.sweep(ctx); err != nil {
		m.opts.Log.Warn("fleet: looking for dead workers failed", "err", err)
	}
	m.count(ctx)
	go m.beat(context.WithoutCancel(ctx))
	return m, nil
}

// Holder is the member's identity, the name of its leases.
func (m *Member) Holder() string { return m.opts.Holder }

// Live tells how many workers are live, this one included (at least 1), as
// counted at the last heartbeat.
func (m *Member) Live() int { return int(max(1, m.live.Load())) }

// SetActivity records what the member is doing; its row says so at once.
func (m *Member) SetActivity(a Activity) {
	m.mu.Lock()
	m.activity = a
	m.mu.Unlock()
	select {
	case m.poke <- struct{}{}:
	default:
	}
}

// Leave ends the membership: the heartbeat stops, the leases the process
// still holds go back to the queue (call it once the work has stopped), the
// row goes, and the connection holding the lock is closed.
func (m *Member) Leave(ctx context.Context) error {
	select {
	case <-m.stop:
		<-m.done
		return nil // left already
	default:
	}
	close(m.stop)
	<-m.done
	if m.conn == nil {
		return nil
	}
	defer m.conn.Close()
	n, err := m.opts.Release(ctx, m.opts.Holder)
	if n > 0 {
		m.opts.Log.Info("fleet: returned the leases left at leaving to the queue", "holder", m.opts.Holder, "deliveries", n)
	}
	if _, derr := m.conn.ExecContext(ctx, `DELETE FROM workers WHERE id = $1`, m.id); derr != nil {
		err = errors.Join(err, fmt.Errorf("fleet: leave: %w", derr))
	}
	return err
}

// register inserts the member's row and takes its lock, in one transaction
// on a new connection: the row is seen by others only once the lock is held,
// so no one ever takes a joining member for a dead one. A member that lost
// its connection (a database restart) registers again under the same
// holder, its old row deleted.
func (m *Member) register(ctx context.Context) error {
	conn, err := m.db.Connx(ctx)
	if err != nil {
		return fmt.Errorf("fleet: join: connect: %w", err)
	}
	if err := m.insert(ctx, conn); err != nil {
		conn.Close()
		return fmt.Errorf("fleet: join: %w", err)
	}
	m.conn = conn
	return nil
}

func (m *Member) insert(ctx context.Context, conn *sqlx.Conn) error {
	tx, err := conn.BeginTxx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Waits for a sweeper that is returning the old row's leases: its
	// leases released, the member is back.
	if _, err := tx.ExecContext(ctx, `DELETE FROM workers WHERE holder = $1`, m.opts.Holder); err != nil {
		return err
	}
	var id int32
	if err := tx.GetContext(ctx, &id, insertWorker, m.opts.Holder, m.host, os.Getpid(), Version(), m.started); err != nil {
		return err
	}
	// Session-level: it outlives the transaction, and ends with the
	// connection.
	var locked bool
	if err := tx.GetContext(ctx, &locked, `SELECT pg_try_advisory_lock($1::integer, $2::integer)`, LockClass, id); err != nil {
		return err
	}
	if !locked {
		return fmt.Errorf("advisory lock (%d, %d) already taken", LockClass, id)
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	m.id = id
	return nil
}

const insertWorker = `
INSERT INTO workers (holder, host, pid, version, started_at)
VALUES ($1, $2, $3, $4, $5)
RETURNING id`

// beat keeps the membership: every interval (or at once after a new
// activity) it updates the row, returns dead members' leases and counts the
// live ones, until Leave: a process stopping gracefully is still alive
// while it hands its leases back.
func (m *Member) beat(ctx context.Context) {
	defer close(m.done)
	t := time.NewTicker(m.opts.Interval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		case <-m.poke:
		}
		bctx, cancel := context.WithTimeout(ctx, m.opts.Interval*5)
		m.heartbeat(bctx)
		cancel()
	}
}

func (m *Member) heartbeat(ctx context.Context) {
	if err := m.update(ctx); err != nil {
		// The connection (and so the lock) is gone, or the row was taken
		// for a dead member's: join again under the same holder.
		m.opts.Log.Warn("fleet: heartbeat failed; joining again", "holder", m.opts.Holder, "err", err)
		if m.conn != nil {
			m.conn.Close()
			m.conn = nil
		}
		if err := m.register(ctx); err != nil {
			m.opts.Log.Warn("fleet: join again failed; retrying at the next heartbeat", "err", err)
			return
		}
	}
	if err := m.sweep(ctx); err != nil {
		m.opts.Log.Warn("fleet: looking for dead workers failed", "err", err)
	}
	m.count(ctx)
}

// update writes the heartbeat and the activity into the member's row.
func (m *Member) update(ctx context.Context) error {
	if m.conn == nil {
		return errors.New("no connection")
	}
	m.mu.Lock()
	a := m.activity
	m.mu.Unlock()
	var ed any
	if a.Edition != "" {
		ed = a.Edition
	}
	var rate any
	if a.Rate != nil {
		if r := a.Rate(); r > 0 {
			rate = r
		}
	}
	res, err := m.conn.ExecContext(ctx, `
		UPDATE workers SET heartbeat_at = now(), edition = $2, rate = $3, conns = $4
		WHERE id = $1`, m.id, ed, rate, max(0, a.Conns))
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n != 1 {
		return errors.New("the member's row is gone")
	}
	return nil
}

// count refreshes Live; on failure the last count stands.
func (m *Member) count(ctx context.Context) {
	var n int64
	if err := m.db.GetContext(ctx, &n, `SELECT count(*) FROM workers w WHERE `+lockHeld, LockClass); err != nil {
		m.opts.Log.Warn("fleet: counting the live workers failed", "err", err)
		return
	}
	m.live.Store(n)
}

// Version is the binary's version: its module version, else its VCS
// revision (with +dirty for uncommitted changes), else "dev".
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "dev"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch {
		case s.Key == "vcs.revision":
			rev = s.Value
		case s.Key == "vcs.modified" && s.Value == "true":
			dirty = "+dirty"
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(12, len(rev))] + dirty
}
