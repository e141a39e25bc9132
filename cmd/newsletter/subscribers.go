package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"newsletter/subscribers"
)

func cmdSubscribers(ctx context.Context, e *env) error {
	if len(e.args) == 0 || e.args[0] == "-h" || e.args[0] == "--help" {
		fmt.Fprintln(e.stdout, "Usage: newsletter subscribers import FILE [--status S] | add EMAIL [--name N] [--status S] | list [--status S] | export EMAIL | erase EMAIL")
		if len(e.args) == 0 {
			return usageErr("name a subcommand: import, add, list, export or erase")
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
	case "export", "erase":
		fs.Usage = func() {
			fmt.Fprintf(e.stdout, "Usage: newsletter subscribers %s EMAIL\n\n%s\n", sub, map[string]string{
				"export": "Prints everything kept about the person as JSON: the subscriber, the consent record,\nthe links mailed to them, their deliveries, whether the address is suppressed.",
				"erase":  "Removes the person's personal data (GDPR art. 17): address and name, mailed links, the\nIP and user agent in the consent record. Keeps the consent record's entries (proof of\nconsent, with addresses only as keyed hashes) and puts the address on the suppression\nlist, so that no import adds it back. Asks nothing: it prints what it did.",
			}[sub])
		}
	default:
		return usageErr("unknown subcommand %q: want import, add, list, export or erase", sub)
	}
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	want := map[string]int{"import": 1, "add": 1, "list": 0, "export": 1, "erase": 1}[sub]
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
		fmt.Fprintf(e.stdout, "imported %d rows: %d added, %d updated, %d kept unsubscribed, %d suppressed (erased on request)\n",
			res.Rows, res.Added, res.Updated, res.KeptUnsubscribed, res.Suppressed)
	case "add":
		s, err := store.Add(ctx, pos[0], name, st)
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "added subscriber %d (%s)\n", s.ID, s.Status)
	case "export":
		x, err := store.ExportPerson(ctx, pos[0])
		if errors.Is(err, subscribers.ErrNotFound) {
			return notFound(ctx, store, pos[0])
		}
		if err != nil {
			return err
		}
		enc := json.NewEncoder(e.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(x)
	case "erase":
		res, err := store.Erase(ctx, pos[0], subscribers.Source{Method: subscribers.MethodEditor})
		if errors.Is(err, subscribers.ErrNotFound) {
			return notFound(ctx, store, pos[0])
		}
		if err != nil {
			return err
		}
		e.log.Info("erased", "subscriber", res.SubscriberID)
		fmt.Fprintf(e.stdout, "erased subscriber %d: address and name removed, %d mailed link(s) deleted, "+
			"%d consent record entries kept without IP and user agent, %d address(es) added to the suppression list\n",
			res.SubscriberID, res.TokensDeleted, res.ConsentsKept, res.SuppressedKeys)
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

// notFound says that nobody has the address, and whether it was erased.
func notFound(ctx context.Context, store *subscribers.Store, email string) error {
	if gone, err := store.Suppressed(ctx, email); err == nil && gone {
		return fmt.Errorf("no subscriber has that address; it was erased on request and is on the suppression list")
	}
	return fmt.Errorf("no subscriber has that address")
}
