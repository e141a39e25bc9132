package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"

	"github.com/jmoiron/sqlx"

	"newsletter/migrations"
)

func cmdMigrate(ctx context.Context, e *env) error {
	fs := flagSet(e, "migrate", "migrate [flags]")
	c := newConfig(fs, envDatabaseURL)
	if _, err := parseArgs(fs, e.args); err != nil {
		return err
	}
	if err := c.load(e.log); err != nil {
		return err
	}
	db, err := sqlx.Open("postgres", c.databaseURL)
	if err != nil {
		return fmt.Errorf("open database: %w", err)
	}
	defer db.Close()
	applied, err := migrations.Apply(ctx, db)
	if err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(e.stdout, "schema is up to date (version %d)\n", migrations.Latest())
		return nil
	}
	fmt.Fprintf(e.stdout, "applied migrations %v; schema is at version %d\n", applied, migrations.Latest())
	return nil
}

func cmdSecret(ctx context.Context, e *env) error {
	fs := flagSet(e, "secret", "secret\n\nPrints 32 random bytes from crypto/rand as hex, for NEWSLETTER_SECRET.")
	if _, err := parseArgs(fs, e.args); err != nil {
		return err
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return fmt.Errorf("read random bytes: %w", err)
	}
	fmt.Fprintln(e.stdout, hex.EncodeToString(b))
	return nil
}
