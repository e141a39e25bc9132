// Command dbsize measures what a send costs the deliveries table on disk and
// in WAL: it queues an edition for -readers subscribers, leases and records
// every delivery as a plain 250 acceptance the way the worker's connections
// do (without SMTP), and prints, per send, the WAL written per message, the
// share of the table's updates PostgreSQL made in place (HOT), and after the
// first and the last send the bytes per delivery of the table and its
// indexes after a VACUUM.
//
//	go run ./internal/cmd/dbsize -readers 10000 -sends 10
//
// It uses DATABASE_URL when set (a database it may fill), else a throwaway
// cluster. Slow at large sizes: not part of make test.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"newsletter/delivery"
	"newsletter/internal/pgtest"
	"newsletter/migrations"
)

func main() {
	readers := flag.Int("readers", 10000, "confirmed subscribers")
	sends := flag.Int("sends", 10, "editions sent one after the other")
	batch := flag.Int("batch", 100, "deliveries leased at a time")
	flag.Parse()
	if err := run(context.Background(), *readers, *sends, *batch); err != nil {
		log.Fatal(err)
	}
}

func run(ctx context.Context, readers, sends, batch int) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		u, stop, err := pgtest.StartCluster()
		if err != nil {
			return err
		}
		defer stop()
		url = u
	}
	db, err := sqlx.Open("postgres", url)
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := migrations.Apply(ctx, db); err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	if _, err := db.ExecContext(ctx, `
		INSERT INTO subscribers (email, status, unsub_token_hash)
		SELECT 'reader' || i || '@example.com', 'confirmed', sha256(i::text::bytea)
		FROM generate_series(1, $1) i`, readers); err != nil {
		return fmt.Errorf("subscribers: %w", err)
	}
	q := &delivery.Queue{DB: db}
	fmt.Printf("readers %d, lease batch %d\n", readers, batch)
	for i := 1; i <= sends; i++ {
		if err := send(ctx, db, q, i, batch); err != nil {
			return err
		}
		if i == 1 || i == sends {
			if err := sizes(ctx, db); err != nil {
				return err
			}
		}
	}
	return nil
}

// send queues and sends edition i, and prints its WAL and HOT figures.
func send(ctx context.Context, db *sqlx.DB, q *delivery.Queue, i, batch int) error {
	var ed int64
	date := time.Date(2026, 1, i, 0, 0, 0, 0, time.UTC).Format(time.DateOnly)
	if err := db.GetContext(ctx, &ed, `INSERT INTO editions (date, content, source_format)
		VALUES ($1, '{}', 'json') RETURNING id`, date); err != nil {
		return fmt.Errorf("edition: %w", err)
	}
	if _, err := q.Enqueue(ctx, ed, "example.com", 0); err != nil {
		return err
	}
	upd0, hot0, err := updates(ctx, db)
	if err != nil {
		return err
	}
	lsn0, err := lsn(ctx, db)
	if err != nil {
		return err
	}
	start := time.Now()
	n, err := drain(ctx, q, ed, batch)
	if err != nil {
		return err
	}
	elapsed := time.Since(start)
	lsn1, err := lsn(ctx, db)
	if err != nil {
		return err
	}
	upd1, hot1, err := updates(ctx, db)
	if err != nil {
		return err
	}
	var wal float64
	if err := db.GetContext(ctx, &wal, `SELECT pg_wal_lsn_diff($1, $2)`, lsn1, lsn0); err != nil {
		return err
	}
	idle, err := idleLook(ctx, q, ed)
	if err != nil {
		return err
	}
	fmt.Printf("send %2d: %d messages, WAL %.0f bytes/msg, updates %d, HOT %d (%.2f), %v; an idle look (rescue + pending) %v\n",
		i, n, wal/float64(n), upd1-upd0, hot1-hot0, float64(hot1-hot0)/float64(max(upd1-upd0, 1)),
		elapsed.Round(time.Millisecond), idle.Round(10*time.Microsecond))
	return nil
}

// idleLook times what an idle connection asks the database once a poll at
// the end of a send (the fastest of three).
func idleLook(ctx context.Context, q *delivery.Queue, ed int64) (time.Duration, error) {
	best := time.Hour
	for range 3 {
		start := time.Now()
		if _, err := q.Rescue(ctx); err != nil {
			return 0, err
		}
		if _, _, err := q.Pending(ctx, ed); err != nil {
			return 0, err
		}
		best = min(best, time.Since(start))
	}
	return best, nil
}

// holder is a lease holder as long as a worker's (host/pid/random/connection).
const holder = "newsletter-host/123456/9f3a1c2e/0"

// drain leases and records every delivery of the edition as sent.
func drain(ctx context.Context, q *delivery.Queue, ed int64, batch int) (int, error) {
	var after int64
	n := 0
	for {
		jobs, err := q.Lease(ctx, ed, holder, batch, time.Minute, after)
		if err != nil {
			return n, err
		}
		if len(jobs) == 0 {
			return n, nil
		}
		rs := make([]delivery.Result, len(jobs))
		for k, j := range jobs {
			rs[k] = delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Sent,
				Code: 250, Enhanced: "2.0.0", Reply: "2.0.0 Ok: queued as 4dZxKq1R2bz8"}
		}
		if _, err := q.Record(ctx, ed, holder, rs); err != nil {
			return n, err
		}
		n += len(jobs)
		after = jobs[len(jobs)-1].ID
	}
}

func lsn(ctx context.Context, db *sqlx.DB) (string, error) {
	var s string
	err := db.GetContext(ctx, &s, `SELECT pg_current_wal_lsn()::text`)
	return s, err
}

// updates reads the table's update counters, flushed and not from a cached
// snapshot.
func updates(ctx context.Context, db *sqlx.DB) (upd, hot int64, err error) {
	conn, err := db.Connx(ctx)
	if err != nil {
		return 0, 0, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_stat_force_next_flush()`); err != nil {
		return 0, 0, err
	}
	err = conn.QueryRowxContext(ctx, `
		SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables
		WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'deliveries'::regclass)`).Scan(&upd, &hot)
	return upd, hot, err
}

// sizes vacuums the table and prints its bytes per delivery, and each index's.
func sizes(ctx context.Context, db *sqlx.DB) error {
	if _, err := db.ExecContext(ctx, `VACUUM deliveries`); err != nil {
		return err
	}
	var rows []struct {
		Name  string `db:"name"`
		Bytes int64  `db:"bytes"`
	}
	if err := db.SelectContext(ctx, &rows, `
		WITH parts AS (SELECT inhrelid AS oid FROM pg_inherits WHERE inhparent = 'deliveries'::regclass)
		SELECT 'total' AS name, sum(pg_total_relation_size(oid))::bigint AS bytes FROM parts
		UNION ALL SELECT 'heap', sum(pg_relation_size(oid))::bigint FROM parts
		UNION ALL SELECT pi.indexrelid::regclass::text, sum(pg_relation_size(i.indexrelid))::bigint
		FROM pg_index pi JOIN pg_inherits ii ON ii.inhparent = pi.indexrelid JOIN pg_index i ON i.indexrelid = ii.inhrelid
		WHERE pi.indrelid = 'deliveries'::regclass GROUP BY pi.indexrelid`); err != nil {
		return err
	}
	var count int64
	if err := db.GetContext(ctx, &count, `SELECT count(*) FROM deliveries`); err != nil {
		return err
	}
	fmt.Printf("after VACUUM, %d deliveries:", count)
	for _, r := range rows {
		fmt.Printf(" %s %.0f", r.Name, float64(r.Bytes)/float64(count))
	}
	fmt.Println(" (bytes per delivery)")
	return nil
}
