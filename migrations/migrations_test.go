package migrations_test

import (
	"context"
	"sync"
	"testing"

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
	if total != migrations.Latest() {
		t.Fatalf("the four processes applied %d migrations in all, want each once (%d)", total, migrations.Latest())
	}
	var n int
	if err := db.Get(&n, `SELECT count(*) FROM schema_migrations`); err != nil || n != migrations.Latest() {
		t.Fatalf("schema_migrations has %d rows (%v), want %d", n, err, migrations.Latest())
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
