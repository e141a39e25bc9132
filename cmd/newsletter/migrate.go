package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"flag"
	"fmt"
	"time"

	"newsletter/delivery"
	"newsletter/migrations"
)

var migrateCommand = &command{
	usage: "migrate [flags]\n\nApplies the embedded SQL migrations in order; refuses a database newer than the binary.",
	needs: needAnyDB,
	setup: func(*flag.FlagSet) runFunc { return migrate },
}

func migrate(ctx context.Context, a *app, _ []string) error {
	applied, err := migrations.Apply(ctx, a.db)
	if err != nil {
		return err
	}
	if err := (&delivery.Queue{DB: a.db}).EnsurePartitions(ctx, time.Now(), 0); err != nil {
		return err
	}
	if len(applied) == 0 {
		fmt.Fprintf(a.stdout, "schema is up to date (version %d)\n", migrations.Latest())
		return nil
	}
	fmt.Fprintf(a.stdout, "applied migrations %v; schema is at version %d\n", applied, migrations.Latest())
	return nil
}

var secretCommand = &command{
	usage: "secret\n\nPrints 32 random bytes from crypto/rand as hex, for NEWSLETTER_SECRET.",
	setup: func(*flag.FlagSet) runFunc { return secret },
}

func secret(_ context.Context, a *app, _ []string) error {
	fmt.Fprintln(a.stdout, randomHex(32))
	return nil
}

// randomHex is n random bytes as hex. crypto/rand.Read never fails: it
// crashes the program irrecoverably instead (Go 1.24 and later).
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
