// Package migrations holds the schema as numbered SQL files embedded in the
// binary and applies them in order.
package migrations

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"

	"github.com/jmoiron/sqlx"
)

//go:embed *.sql
var files embed.FS

// lockID is the advisory lock key held while migrating, so two processes
// starting at once apply each migration exactly once.
const lockID = 0x6e6c6d6967 // "nlmig"

// Migration is one numbered SQL file.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// All returns the embedded migrations in version order.
func All() ([]Migration, error) {
	names, err := fs.Glob(files, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	var out []Migration
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name must start with a positive number and _", n)
		}
		b, err := files.ReadFile(n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		out = append(out, Migration{Version: v, Name: n, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i := 1; i < len(out); i++ {
		if out[i].Version == out[i-1].Version {
			return nil, fmt.Errorf("migrations %s and %s share version %d", out[i-1].Name, out[i].Name, out[i].Version)
		}
	}
	return out, nil
}

// Latest is the schema version this binary expects.
func Latest() int {
	all, err := All()
	if err != nil || len(all) == 0 {
		return 0
	}
	return all[len(all)-1].Version
}

// Apply brings the database up to the binary's schema version, one
// transaction per migration, under an advisory lock. It refuses a database
// whose schema is newer than the binary. It returns the versions it applied.
func Apply(ctx context.Context, db *sqlx.DB) ([]int, error) {
	all, err := All()
	if err != nil {
		return nil, err
	}
	// A session-level advisory lock needs one connection for lock and unlock.
	conn, err := db.Connx(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, lockID); err != nil {
		return nil, fmt.Errorf("migrate: take advisory lock: %w", err)
	}
	defer conn.ExecContext(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, lockID)

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.GetContext(ctx, &current, `SELECT coalesce(max(version), 0) FROM schema_migrations`); err != nil {
		return nil, fmt.Errorf("migrate: read current version: %w", err)
	}
	if len(all) > 0 && current > all[len(all)-1].Version {
		return nil, fmt.Errorf("migrate: the database is at schema version %d, newer than this binary's %d: run a newer newsletter binary", current, all[len(all)-1].Version)
	}
	var applied []int
	for _, m := range all {
		if m.Version <= current {
			continue
		}
		tx, err := conn.BeginTxx(ctx, nil)
		if err != nil {
			return applied, fmt.Errorf("migrate %s: begin: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("migrate %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, name) VALUES ($1, $2)`, m.Version, m.Name); err != nil {
			tx.Rollback()
			return applied, fmt.Errorf("migrate %s: record version: %w", m.Name, err)
		}
		if err := tx.Commit(); err != nil {
			return applied, fmt.Errorf("migrate %s: commit: %w", m.Name, err)
		}
		applied = append(applied, m.Version)
	}
	return applied, nil
}

// Check returns an error unless the database is at exactly the binary's
// schema version; commands other than migrate call it at start.
func Check(ctx context.Context, db *sqlx.DB) error {
	var current int
	err := db.GetContext(ctx, &current, `SELECT coalesce(max(version), 0) FROM schema_migrations`)
	if err != nil {
		return fmt.Errorf("read schema version (run `newsletter migrate` first): %w", err)
	}
	want := Latest()
	switch {
	case current < want:
		return fmt.Errorf("the database is at schema version %d, this binary needs %d: run `newsletter migrate`", current, want)
	case current > want:
		return fmt.Errorf("the database is at schema version %d, newer than this binary's %d: run a newer newsletter binary", current, want)
	}
	return nil
}
