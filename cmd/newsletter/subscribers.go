package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"newsletter/subscribers"
)

var subscribersImport = &command{
	usage: "subscribers import FILE [--status S]\n\nImports a CSV with a header row: email required, name and status optional. All or nothing.",
	args:  []string{"FILE"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		status := subscribers.Pending
		statusFlag(fs, &status, false, "status for rows without one: pending (the default), confirmed or unsubscribed")
		return func(ctx context.Context, a *app, args []string) error {
			return importSubscribers(ctx, a, args[0], status)
		}
	},
}

var subscribersAdd = &command{
	usage: "subscribers add EMAIL [--name N] [--status S]\n\nAdds one person; refused if the address was erased on request.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		status := subscribers.Pending
		var name string
		statusFlag(fs, &status, false, "pending (the default), confirmed or unsubscribed")
		fs.StringVar(&name, "name", "", "the person's name")
		return func(ctx context.Context, a *app, args []string) error {
			s, err := a.subscribers().Add(ctx, args[0], name, status)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added subscriber %d (%s)\n", s.ID, s.Status)
			return nil
		}
	},
}

var subscribersList = &command{
	usage: "subscribers list [--status S]\n\nLists the subscribers as tab-separated lines. A spreadsheet opens them, so a cell that\n" +
		"starts with = + - @, a tab or a carriage return is written with a ' in front, which keeps a\n" +
		"spreadsheet from running it as a formula (OWASP: CSV injection).",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var status subscribers.Status
		statusFlag(fs, &status, true, "only this status: pending, confirmed, unsubscribed or bounced")
		return func(ctx context.Context, a *app, _ []string) error { return listSubscribers(ctx, a, status) }
	},
}

var subscribersExport = &command{
	usage: "subscribers export EMAIL\n\nPrints everything kept about the person as JSON: the subscriber, the consent record,\n" +
		"the links mailed to them, their deliveries, whether the address is suppressed.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc { return exportSubscriber },
}

var subscribersErase = &command{
	usage: "subscribers erase EMAIL\n\nRemoves the person's personal data (GDPR art. 17): address and name, mailed links, the\n" +
		"IP and user agent in the consent record. Keeps the consent record's entries (proof of\n" +
		"consent, with addresses only as keyed hashes) and puts the address on the suppression\n" +
		"list, so that no import adds it back. Asks nothing: it prints what it did.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc { return eraseSubscriber },
}

// statusFlag is --status, checked as it is parsed; bounced is a status to
// list, never one to set.
func statusFlag(fs *flag.FlagSet, dst *subscribers.Status, bounced bool, usage string) {
	fs.Func("status", usage, func(s string) error {
		if bounced && s == string(subscribers.Bounced) {
			*dst = subscribers.Bounced
			return nil
		}
		st, err := subscribers.ParseStatus(s)
		*dst = st
		return err
	})
}

// subscribers is the store, with the secret when the subcommand reads it
// (every one but list).
func (a *app) subscribers() *subscribers.Store {
	return &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens}
}

func importSubscribers(ctx context.Context, a *app, file string, status subscribers.Status) error {
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("open %s: %w", file, err)
	}
	defer f.Close()
	res, err := a.subscribers().Import(ctx, f, status)
	var ie *subscribers.ImportError
	if errors.As(err, &ie) {
		fmt.Fprintf(a.stderr, "%s: %v\n", file, ie)
		return fmt.Errorf("%s has %d bad row(s); nothing was imported", file, len(ie.Rows))
	}
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	fmt.Fprintf(a.stdout, "imported %d rows: %d added, %d updated, %d unchanged, %d kept unsubscribed, %d suppressed (erased on request)\n",
		res.Rows, res.Added, res.Updated, res.Unchanged, res.KeptUnsubscribed, res.Suppressed)
	return nil
}

// listSubscribers prints tab-separated lines, streamed a page at a time: a
// list of any size prints without being held in memory.
func listSubscribers(ctx context.Context, a *app, status subscribers.Status) error {
	w := bufio.NewWriter(a.stdout)
	fmt.Fprintln(w, "id\temail\tname\tstatus\tcreated")
	err := a.subscribers().Each(ctx, status, func(s subscribers.Subscriber) error {
		_, err := fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\n", s.ID, spreadsheetCell(s.Email), spreadsheetCell(s.Name), s.Status, s.CreatedAt.UTC().Format(time.RFC3339))
		return err
	})
	if err != nil {
		return err
	}
	return w.Flush()
}

func exportSubscriber(ctx context.Context, a *app, args []string) error {
	store := a.subscribers()
	x, err := store.ExportPerson(ctx, args[0])
	if errors.Is(err, subscribers.ErrNotFound) {
		return notFound(ctx, store, args[0])
	}
	if err != nil {
		return err
	}
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(x)
}

func eraseSubscriber(ctx context.Context, a *app, args []string) error {
	store := a.subscribers()
	res, err := store.Erase(ctx, args[0], subscribers.Source{Method: subscribers.MethodEditor})
	if errors.Is(err, subscribers.ErrNotFound) {
		return notFound(ctx, store, args[0])
	}
	if err != nil {
		return err
	}
	a.log.Info("erased", "subscriber", res.SubscriberID)
	fmt.Fprintf(a.stdout, "erased subscriber %d: address and name removed, %d mailed link(s) deleted, "+
		"%d consent record entries kept without IP and user agent, %d address(es) added to the suppression list, "+
		"%d SMTP replies and %d pause reasons quoting them removed\n",
		res.SubscriberID, res.TokensDeleted, res.ConsentsKept, res.SuppressedKeys, res.RepliesRemoved, res.PauseReasons)
	return nil
}

// notFound says that nobody has the address, and whether it was erased.
func notFound(ctx context.Context, store *subscribers.Store, email string) error {
	switch r, err := store.SuppressedFor(ctx, email); {
	case err != nil || r == "":
	case r == subscribers.ReasonErased:
		return fmt.Errorf("no subscriber has that address; it was erased on request and is on the suppression list")
	default:
		return fmt.Errorf("no subscriber has that address; it is on the suppression list (%s)", r)
	}
	return fmt.Errorf("no subscriber has that address")
}

// spreadsheetCell neutralises a cell a spreadsheet would take for a formula
// (=HYPERLINK(...), +cmd|..., @SUM(...)): a leading ' makes it text, as
// OWASP's advice on CSV injection has it. The cells of an export are what
// people typed in the form, so any of them may be one.
func spreadsheetCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
