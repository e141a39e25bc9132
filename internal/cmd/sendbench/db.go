package main

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"newsletter/delivery"
	"newsletter/internal/pgtest"
)

// server is the PostgreSQL server the runs use and what is known of its
// processes on this machine.
type server struct {
	adminURL   string
	stop       func() // nil when the server is not ours
	dataDir    string
	postmaster int // 0 when the server's processes can't be seen from here
}

// startServer uses DATABASE_URL when set, else a throwaway cluster from
// pgtest (run as the postgres user when we are root).
func startServer(ctx context.Context) (_ *server, err error) {
	s := &server{adminURL: os.Getenv("DATABASE_URL")}
	if s.adminURL == "" {
		u, stop, err := pgtest.StartCluster()
		if err != nil {
			return nil, fmt.Errorf("start a throwaway PostgreSQL: %w", err)
		}
		s.adminURL, s.stop = u, stop
		defer func() {
			if err != nil {
				stop()
			}
		}()
	}
	db, err := sqlx.Open("postgres", s.adminURL)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", redact(s.adminURL), err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return nil, fmt.Errorf("connect to %s: %w", redact(s.adminURL), err)
	}
	if err := db.GetContext(ctx, &s.dataDir, `SHOW data_directory`); err != nil {
		// Not a superuser, or not allowed to read settings: the runs go on
		// without PostgreSQL's CPU.
		s.dataDir = ""
		return s, nil
	}
	pid, err := postmasterPID(s.dataDir)
	if err != nil {
		return s, nil // a server on another machine or in a container
	}
	// The data directory could be a same-named folder of another server:
	// make sure our own backend is this postmaster's child.
	var backend int
	if err := db.GetContext(ctx, &backend, `SELECT pg_backend_pid()`); err != nil {
		return nil, fmt.Errorf("pg_backend_pid: %w", err)
	}
	if st, err := readProcStat(backend); err == nil && st.ppid == pid {
		s.postmaster = pid
	}
	return s, nil
}

// cpu is the server's CPU time so far, all processes together; 0 when they
// can't be seen.
func (s *server) cpu() (time.Duration, error) {
	if s.postmaster == 0 {
		return 0, nil
	}
	return treeCPU(s.postmaster)
}

// bench is one database holding n confirmed subscribers and the edition.
type bench struct {
	n           int
	url         string
	db          *sqlx.DB
	nl          *newsletterBin
	editionFile string
	siteURL     string
	date        string // the edition as imported, for the baseline's message
	seq         int    // editions imported for runs so far
}

// prepare creates the database sendbench_<n> (or reuses it, when it holds
// exactly n confirmed subscribers from an earlier -keep-db run), migrates it
// with the binary, loads the subscribers and imports the edition.
func prepare(ctx context.Context, srv *server, nl *newsletterBin, n int, editionFile, siteURL string) (*bench, error) {
	name := fmt.Sprintf("sendbench_%d", n)
	admin, err := sqlx.Open("postgres", srv.adminURL)
	if err != nil {
		return nil, fmt.Errorf("open admin connection: %w", err)
	}
	defer admin.Close()
	b := &bench{n: n, url: pgtest.DatabaseURL(srv.adminURL, name), nl: nl, editionFile: editionFile, siteURL: siteURL}
	if b.reusable(ctx, admin, name) {
		return b, b.load(ctx)
	}
	if _, err := admin.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name); err != nil {
		return nil, fmt.Errorf("drop database %s: %w", name, err)
	}
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
		return nil, fmt.Errorf("create database %s: %w", name, err)
	}
	if out, err := nl.run(ctx, b.url, "migrate"); err != nil {
		return nil, fmt.Errorf("newsletter migrate: %w: %s", err, out)
	}
	if b.db, err = sqlx.Open("postgres", b.url); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	start := time.Now()
	// Straight SQL, not `subscribers import`: loading a million readers
	// through the CSV path would take longer than the send it sets up. The
	// token hash only has to be 32 bytes and unique; no link is followed.
	if _, err := b.db.ExecContext(ctx, `
		INSERT INTO subscribers (uuid, email, name, status, unsub_token_hash, confirmed_at)
		SELECT gen_random_uuid(), 'reader' || g || '@example.com', 'Reader ' || g, 'confirmed',
		       sha256(('t' || g)::bytea), now()
		FROM generate_series(1, $1) g`, n); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("load %d subscribers: %w", n, err)
	}
	loaded := time.Since(start)
	if out, err := nl.run(ctx, b.url, "edition", "import", editionFile, "--site-url", siteURL); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("newsletter edition import: %w: %s", err, out)
	}
	if _, err := b.db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		b.db.Close()
		return nil, fmt.Errorf("vacuum: %w", err)
	}
	fmt.Fprintf(os.Stderr, "sendbench: %s: loaded %d subscribers in %s\n", name, n, loaded.Round(time.Millisecond))
	return b, b.load(ctx)
}

func (b *bench) reusable(ctx context.Context, admin *sqlx.DB, name string) bool {
	var exists bool
	if err := admin.GetContext(ctx, &exists, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name); err != nil || !exists {
		return false
	}
	db, err := sqlx.Open("postgres", b.url)
	if err != nil {
		return false
	}
	defer db.Close()
	var subs int
	if db.GetContext(ctx, &subs, `SELECT count(*) FROM subscribers WHERE status = 'confirmed'`) != nil {
		return false
	}
	// An earlier run may have stopped midway: -keep-db must not leave the
	// database unusable, only its schema must still be the binary's.
	if out, err := b.nl.run(ctx, b.url, "migrate"); err != nil {
		fmt.Fprintf(os.Stderr, "sendbench: %s is not reusable (%v: %s); loading it again\n", name, err, out)
		return false
	}
	return subs == b.n
}

func (b *bench) load(ctx context.Context) error {
	var err error
	if b.db == nil {
		if b.db, err = sqlx.Open("postgres", b.url); err != nil {
			return fmt.Errorf("open %s: %w", redact(b.url), err)
		}
	}
	var first time.Time
	if err := b.db.GetContext(ctx, &first, `SELECT min(date) FROM editions`); err != nil {
		return fmt.Errorf("find the edition: %w", err)
	}
	b.date = first.Format("2006-01-02")
	var last time.Time
	if err := b.db.GetContext(ctx, &last, `SELECT max(date) FROM editions`); err != nil {
		return fmt.Errorf("find the editions: %w", err)
	}
	b.seq = int(last.Sub(first).Hours() / 24)
	return nil
}

// freshEdition imports the edition again under a date of its own, with the
// binary (so whatever the editions table has become, the row is right), and
// empties the queue, so each run starts from the same state: a never-sent
// edition, no deliveries. It then settles the server (VACUUM, CHECKPOINT),
// so no run pays for the clean-up of the one before it.
func (b *bench) freshEdition(ctx context.Context) (id int64, date string, err error) {
	first, err := time.Parse("2006-01-02", b.date)
	if err != nil {
		return 0, "", fmt.Errorf("edition date %q: %w", b.date, err)
	}
	b.seq++
	date = first.AddDate(0, 0, b.seq).Format("2006-01-02")
	if out, err := b.nl.run(ctx, b.url, "edition", "import", b.editionFile, "--date", date, "--site-url", b.siteURL); err != nil {
		return 0, "", fmt.Errorf("newsletter edition import --date %s: %w: %s", date, err, out)
	}
	if err := b.db.GetContext(ctx, &id, `SELECT id FROM editions WHERE date = $1`, date); err != nil {
		return 0, "", fmt.Errorf("find edition %s: %w", date, err)
	}
	if err := b.settle(ctx); err != nil {
		return 0, "", err
	}
	return id, date, nil
}

// settle empties the queue, then VACUUMs and CHECKPOINTs, so that no run
// pays for the clean-up of the one before it (autovacuum of a million
// updated deliveries, dirty buffers) and each starts with no deliveries.
func (b *bench) settle(ctx context.Context) error {
	for _, q := range []string{
		// CASCADE: a table that comes to reference deliveries is emptied too.
		`TRUNCATE deliveries CASCADE`,
		`VACUUM ANALYZE`,
		`CHECKPOINT`,
	} {
		if _, err := b.db.ExecContext(ctx, q); err != nil {
			if q == `CHECKPOINT` && strings.Contains(err.Error(), "permission") {
				continue // not a superuser on DATABASE_URL's server
			}
			return fmt.Errorf("settle before a run: %s: %w", q, err)
		}
	}
	return nil
}

// timeEnqueue runs delivery.Queue.Enqueue, the statement `send` starts
// with, for every subscriber on a fresh edition, and returns how long it
// took and PostgreSQL's CPU for it.
func (b *bench) timeEnqueue(ctx context.Context, srv *server) (result, error) {
	r := result{Size: b.n, Kind: "enqueue", Connections: -1, pgKnown: srv.postmaster != 0}
	id, _, err := b.freshEdition(ctx)
	if err != nil {
		return r, err
	}
	// A connection opened beforehand: the timing is the statement's, not
	// the connection set-up's.
	if err := b.db.PingContext(ctx); err != nil {
		return r, fmt.Errorf("ping: %w", err)
	}
	q := &delivery.Queue{DB: b.db}
	pg0, err := srv.cpu()
	if err != nil {
		return r, err
	}
	start := time.Now()
	n, err := q.Enqueue(ctx, id, "example.com", 0)
	r.Wall = time.Since(start)
	if err != nil {
		return r, err
	}
	pg1, err := srv.cpu()
	if err != nil {
		return r, err
	}
	r.Msgs, r.PGCPU = n, pg1-pg0
	r.OK = n == int64(b.n)
	r.Check = "ok"
	if !r.OK {
		r.Check = fmt.Sprintf("queued %d of %d", n, b.n)
	}
	return r, nil
}

// outcomes tallies an edition's deliveries by status.
func (b *bench) outcomes(ctx context.Context, editionID int64) (map[string]int64, error) {
	rows, err := b.db.QueryContext(ctx, `SELECT status, count(*) FROM deliveries WHERE edition_id = $1 GROUP BY 1 ORDER BY 1`, editionID)
	if err != nil {
		return nil, fmt.Errorf("count deliveries: %w", err)
	}
	defer rows.Close()
	m := map[string]int64{}
	for rows.Next() {
		var st string
		var n int64
		if err := rows.Scan(&st, &n); err != nil {
			return nil, fmt.Errorf("count deliveries: %w", err)
		}
		m[st] = n
	}
	return m, rows.Err()
}

func (b *bench) close() {
	if b.db != nil {
		b.db.Close()
	}
}

// redact hides a password in a URL for messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
