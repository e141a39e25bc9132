package migrations_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/internal/pgtest"
	"newsletter/migrations"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func TestApplyTwiceIsNoOp(t *testing.T) {
	db := pgtest.New(t) // already migrated from the template
	ctx := context.Background()
	applied, err := migrations.Apply(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) != 0 {
		t.Fatalf("second apply ran %v, want nothing", applied)
	}
	if err := migrations.Check(ctx, db); err != nil {
		t.Fatalf("check after apply: %v", err)
	}
}

func TestConcurrentApplyOnEmptyDatabase(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	// Make it empty again: drop everything the template had.
	if _, err := db.Exec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	results := make([][]int, 4)
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i], errs[i] = migrations.Apply(ctx, db)
		}()
	}
	wg.Wait()
	total := 0
	for i := range 4 {
		if errs[i] != nil {
			t.Fatalf("apply %d: %v", i, errs[i])
		}
		total += len(results[i])
	}
	// Counted, not the latest version: a number can be reserved by a
	// branch not merged yet.
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	if total != len(all) {
		t.Fatalf("the four processes applied %d migrations in all, want each once (%d)", total, len(all))
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM schema_migrations`); err != nil || n != len(all) {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, len(all))
	}
}

func TestRefusesNewerDatabase(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if _, err := db.Exec(`INSERT INTO schema_migrations (version, name) VALUES (9999, 'future.sql')`); err != nil {
		t.Fatal(err)
	}
	if _, err := migrations.Apply(ctx, db); err == nil {
		t.Fatal("apply against a newer database succeeded, want a refusal")
	}
	if err := migrations.Check(ctx, db); err == nil {
		t.Fatal("check against a newer database succeeded, want a refusal")
	}
}

// migrateTo empties the database and brings it to the given version, as a
// binary of that version would have left it.
func migrateTo(t *testing.T, db *sqlx.DB, version int) {
	t.Helper()
	all, err := migrations.All()
	if err != nil {
		t.Fatal(err)
	}
	db.MustExec(`DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	db.MustExec(`CREATE TABLE schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`)
	for _, m := range all {
		if m.Version > version {
			break
		}
		if _, err := db.Exec(m.SQL); err != nil {
			t.Fatalf("%s: %v", m.Name, err)
		}
		db.MustExec(`INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name)
	}
}

// Sends started before 0006 stored "no deadline" as a date a hundred years
// ahead: the upgrade makes it NULL, and keeps real deadlines and editions
// not started.
func TestUpgradeTo0006StoresNoDeadlineAsNull(t *testing.T) {
	db := pgtest.New(t)
	migrateTo(t, db, 5)
	// What 0005's binary wrote for a window of 0, of 12h, and no send.
	db.MustExec(`INSERT INTO editions (date, content, source_format, send_started_at, send_by) VALUES
		('2025-11-12', '{}', 'json', now(), now() + make_interval(secs => 3153600000)),
		('2025-11-13', '{}', 'json', now(), now() + interval '12 hours'),
		('2025-11-14', '{}', 'json', NULL, NULL)`)
	applied, err := migrations.Apply(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if len(applied) == 0 || applied[0] != 6 {
		t.Fatalf("applied %v, want from 6 on", applied)
	}
	var rows []struct {
		Date   string     `db:"date"`
		SendBy *time.Time `db:"send_by"`
	}
	if err := db.Select(&rows, `SELECT date::text, send_by FROM editions ORDER BY date`); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 || rows[0].SendBy != nil || rows[1].SendBy == nil || rows[2].SendBy != nil {
		t.Fatalf("after the upgrade: %+v; want NULL, the 12h deadline, NULL", rows)
	}
	if until := time.Until(*rows[1].SendBy); until < 11*time.Hour || until > 13*time.Hour {
		t.Errorf("the real deadline moved: %v ahead", until)
	}
}
