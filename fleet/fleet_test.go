package fleet_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/fleet"
	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	db      *sqlx.DB
	q       *delivery.Queue
	edition int64
}

// newFixture makes a database with n recipients queued for an edition.
func newFixture(t *testing.T, n int) *fixture {
	t.Helper()
	ctx := context.Background()
	db := pgtest.New(t)
	tok, _ := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	var csv strings.Builder
	csv.WriteString("email\n")
	for i := range n {
		fmt.Fprintf(&csv, "reader%05d@example.com\n", i)
	}
	if _, err := (&subscribers.Store{DB: db, Tokens: tok}).Import(ctx, strings.NewReader(csv.String()), subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	d, _ := edition.ParseDate("2025-11-13")
	ed := &edition.Edition{Date: d, Site: edition.Site{Name: "London Daily"}, Lead: edition.Story{Title: "Lead", Body: []edition.Block{{Kind: edition.Paragraph, Text: "Body."}}}}
	id, _, err := (&edition.Store{DB: db}).Save(ctx, ed, edition.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: db, q: &delivery.Queue{DB: db}, edition: id}
	if _, err := f.q.Enqueue(ctx, id, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	return f
}

// join makes a member named holder that beats every interval (an hour: it
// never beats, as if it were stuck or about to die) and leaves at the end.
func (f *fixture) join(t *testing.T, holder string, interval time.Duration) *fleet.Member {
	t.Helper()
	m, err := fleet.Join(context.Background(), f.db, fleet.Options{
		Holder: holder, Release: f.q.ReleaseHolder, Interval: interval,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Leave(context.Background()) })
	return m
}

// lease takes n deliveries for connection 0 of holder.
func (f *fixture) lease(t *testing.T, holder string, n int) {
	t.Helper()
	jobs, err := f.q.Lease(context.Background(), f.edition, holder+"/0", n, 5*time.Minute, 0)
	if err != nil || len(jobs) != n {
		t.Fatalf("lease %d for %s: got %d, %v", n, holder, len(jobs), err)
	}
}

// leased counts the deliveries held by holder's connections.
func (f *fixture) leased(t *testing.T, holder string) int {
	t.Helper()
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM deliveries WHERE status = 'sending' AND lease_holder LIKE $1 || '/%'`, holder); err != nil {
		t.Fatal(err)
	}
	return n
}

// kill ends the member's database connection as a process's death would,
// and waits for the server to have released its lock.
func (f *fixture) kill(t *testing.T, holder string) {
	t.Helper()
	const backend = `
		SELECT l.pid FROM pg_locks l JOIN workers w ON l.objid = w.id::oid
		WHERE l.locktype = 'advisory' AND l.objsubid = 2 AND l.classid = $2::integer::oid
		  AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
		  AND w.holder = $1`
	var pid int
	if err := f.db.Get(&pid, backend, holder, fleet.LockClass); err != nil {
		t.Fatalf("the backend holding %s's lock: %v", holder, err)
	}
	f.db.MustExec(`SELECT pg_terminate_backend($1)`, pid)
	waitUntil(t, "the dead member's lock released", func() bool {
		var n int
		f.db.Get(&n, `SELECT count(*) FROM pg_locks WHERE pid = $1`, pid)
		return n == 0
	})
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func holders(t *testing.T, db *sqlx.DB) []string {
	t.Helper()
	list, err := fleet.List(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, w := range list {
		out = append(out, w.Holder)
	}
	return out
}

// A member that joins is listed with what identifies it and what it does;
// the others count it; one that leaves is gone.
func TestJoinListLeave(t *testing.T) {
	f := newFixture(t, 1)
	a := f.join(t, "host/1/a", 50*time.Millisecond)
	if a.Live() != 1 || a.Holder() != "host/1/a" {
		t.Fatalf("alone: live %d, holder %q", a.Live(), a.Holder())
	}
	a.SetActivity(fleet.Activity{Edition: "2025-11-13", Conns: 4, Rate: func() float64 { return 25 }})
	waitUntil(t, "the activity in the row", func() bool {
		list, _ := fleet.List(context.Background(), f.db)
		return len(list) == 1 && list[0].Edition != nil && *list[0].Edition == "2025-11-13" &&
			list[0].Rate != nil && *list[0].Rate == 25 && list[0].Conns == 4
	})
	list, _ := fleet.List(context.Background(), f.db)
	host, _ := os.Hostname()
	if w := list[0]; w.Host != host || w.PID != os.Getpid() || w.Version == "" || w.StartedAt.IsZero() || w.HeartbeatAge > 60 {
		t.Fatalf("listed as %+v", w)
	}
	b := f.join(t, "host/2/b", time.Hour)
	if b.Live() != 2 {
		t.Fatalf("the second member counts %d live, want 2", b.Live())
	}
	waitUntil(t, "the first member to count two", func() bool { return a.Live() == 2 })
	if err := b.Leave(context.Background()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the first member to count one", func() bool { return a.Live() == 1 })
	if h := holders(t, f.db); len(h) != 1 || h[0] != "host/1/a" {
		t.Fatalf("after b left: %v", h)
	}
}

// A member whose connection dies is seen dead by another member within a
// heartbeat: its leases go back to the queue and its row goes. Live
// members' leases and leases of no member are never taken.
func TestDeadMemberLeasesReturned(t *testing.T) {
	f := newFixture(t, 40)
	a := f.join(t, "host/1/a", 50*time.Millisecond)
	f.join(t, "host/2/b", time.Hour)
	f.join(t, "host/3/c", time.Hour)
	f.lease(t, "host/1/a", 10)
	f.lease(t, "host/2/b", 10)
	f.lease(t, "host/3/c", 10)
	f.lease(t, "unregistered", 5)
	waitUntil(t, "three live", func() bool { return a.Live() == 3 })

	f.kill(t, "host/2/b")
	if h := holders(t, f.db); len(h) != 2 {
		t.Fatalf("listed after b died: %v", h)
	}
	waitUntil(t, "b's row gone", func() bool {
		var n int
		f.db.Get(&n, `SELECT count(*) FROM workers WHERE holder = 'host/2/b'`)
		return n == 0
	})
	if n := f.leased(t, "host/2/b"); n != 0 {
		t.Fatalf("%d deliveries still leased by the dead member", n)
	}
	var queued, attempts int
	f.db.Get(&queued, `SELECT count(*) FROM deliveries WHERE status = 'queued' AND lease_holder IS NULL`)
	f.db.Get(&attempts, `SELECT coalesce(sum(attempts), 0) FROM deliveries`)
	if queued != 40-25 || attempts != 35 {
		t.Fatalf("%d queued, %d attempts counted; want 15 (the dead member's 10 back) and 35 (kept)", queued, attempts)
	}
	// Many more heartbeats: nothing else is taken.
	waitUntil(t, "two live", func() bool { return a.Live() == 2 })
	time.Sleep(20 * 50 * time.Millisecond)
	for h, want := range map[string]int{"host/1/a": 10, "host/3/c": 10, "unregistered": 5} {
		if n := f.leased(t, h); n != want {
			t.Errorf("%s holds %d leases, want %d", h, n, want)
		}
	}
}

// A process started after another was killed gets its leases back as it
// joins, before it leases anything, without waiting for a heartbeat.
func TestJoinReturnsDeadLeasesAtOnce(t *testing.T) {
	f := newFixture(t, 20)
	f.join(t, "host/1/dead", time.Hour)
	f.join(t, "host/2/alive", time.Hour)
	f.lease(t, "host/1/dead", 8)
	f.lease(t, "host/2/alive", 8)
	f.kill(t, "host/1/dead")
	m := f.join(t, "host/3/new", time.Hour)
	if n := f.leased(t, "host/1/dead"); n != 0 {
		t.Fatalf("after the join, the dead member still holds %d leases", n)
	}
	if n := f.leased(t, "host/2/alive"); n != 8 {
		t.Fatalf("the live member holds %d leases, want its 8", n)
	}
	if m.Live() != 2 {
		t.Fatalf("live %d, want 2", m.Live())
	}
}

// A member that lost its connection (a database restart, say) joins again
// under the same holder at its next heartbeat.
func TestMemberJoinsAgainAfterLosingItsConnection(t *testing.T) {
	f := newFixture(t, 1)
	a := f.join(t, "host/1/a", 50*time.Millisecond)
	f.kill(t, "host/1/a")
	waitUntil(t, "a listed again", func() bool {
		h := holders(t, f.db)
		return len(h) == 1 && h[0] == "host/1/a"
	})
	if a.Live() != 1 {
		t.Fatalf("live %d", a.Live())
	}
}
