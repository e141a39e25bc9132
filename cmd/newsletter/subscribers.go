package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"newsletter/subscribers"
)

func cmdSubscribers(ctx context.Context, e *env) error {
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: newsletter subscribers import FILE [--status S] | add EMAIL [--name N] [--status S] | list [--status S]")
		if len(e.args) == 0 {
			return usageErr("name a subcommand: import, add or list")
		}
		return nil
	}
	sub, args := e.args[0], e.args[1:]
	fs := flagSet(e, "subscribers "+sub, "subscribers "+sub+" [flags]")
	c := newConfig(fs, envDatabaseURL, envSecret)
	var status, name string
	switch sub {
	case "import":
		fs.StringVar(&status, "status", "pending", "status for rows without one: pending, confirmed or unsubscribed")
	case "add":
		fs.StringVar(&status, "status", "pending", "pending, confirmed or unsubscribed")
		fs.StringVar(&name, "name", "", "the person's name")
	case "list":
		fs.StringVar(&status, "status", "", "only this status: pending, confirmed, unsubscribed or bounced")
	default:
		return usageErr("unknown subcommand %q: want import, add or list", sub)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"import": 1, "add": 1, "list": 0}[sub]
	if len(pos) != want {
		return usageErr("subscribers %s takes %d argument(s), got %d", sub, want, len(pos))
	}
	var st subscribers.Status
	if status != "" {
		if status == string(subscribers.Bounced) && sub == "list" {
			st = subscribers.Bounced
		} else if st, err = subscribers.ParseStatus(status); err != nil {
			return usageErr("--status: %v", err)
		}
	}
	if sub == "list" {
		c.need[envSecret] = false
	}
	if err := c.load(e.log); err != nil {
		return err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	store := &subscribers.Store{DB: db, Tokens: c.tokens}

	switch sub {
	case "import":
		f, err := os.Open(pos[0])
		if err != nil {
			return fmt.Errorf("open %s: %w", pos[0], err)
		}
		defer f.Close()
		res, err := store.Import(ctx, f, st)
		var ie *subscribers.ImportError
		if errors.As(err, &ie) {
			fmt.Fprintf(e.stderr, "%s: %v\n", pos[0], ie)
			return fmt.Errorf("%s has %d bad row(s); nothing was imported", pos[0], len(ie.Rows))
		}
		if err != nil {
			return fmt.Errorf("%s: %w", pos[0], err)
		}
		fmt.Fprintf(e.stdout, "imported %d rows: %d added, %d updated, %d kept unsubscribed\n",
			res.Rows, res.Added, res.Updated, res.KeptUnsubscribed)
	case "add":
		s, err := store.Add(ctx, pos[0], name, st)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added subscriber %d (%s)\n", s.ID, s.Status)
	case "list":
		// Tab-separated and streamed a page at a time: a list of any size
		// prints without being held in memory.
		w := bufio.NewWriter(e.stdout)
		fmt.Fprintln(w, "id\temail\tname\tstatus\tcreated")
		err := store.Each(ctx, st, func(s subscribers.Subscriber) error {
			_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.ID, s.Email, s.Name, s.Status, s.CreatedAt.UTC().Format(time.RFC3339))
			return err
		})
		if err != nil {
			return err
		}
		return w.Flush()
	}
	return nil
}
