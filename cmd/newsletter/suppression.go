package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"newsletter/subscribers"
)

var suppressionList = &command{
	usage: "suppression list [--json]\n\nLists the addresses never to mail, oldest first, tab-separated: when, why (erased, bounced,\n" +
		"complained, manual), the address (an erasure keeps only the start of a keyed hash) and the note.\n" +
		"Subscribers a send marked bounced are on it too.",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "one JSON object per line")
		return func(ctx context.Context, a *app, _ []string) error { return listSuppressions(ctx, a, *asJSON) }
	},
}

var suppressionAdd = &command{
	usage: "suppression add EMAIL [--reason manual|bounced|complained] [--note TEXT]\n\nPuts the address on the suppression list: no send, import or `subscribers add` mails or adds\n" +
		"it again, and its subscriber, if any, leaves every send (bounced, or unsubscribed for the other\n" +
		"reasons), the change kept in their consent record. Only the person can come back, by signing up\n" +
		"on the form and confirming.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		reason := subscribers.ReasonManual
		fs.Func("reason", "why: manual (default), bounced or complained", func(s string) error {
			r, err := subscribers.ParseReason(s)
			reason = r
			return err
		})
		note := fs.String("note", "", "a note kept with the entry (one line, at most 180 bytes)")
		return func(ctx context.Context, a *app, args []string) error {
			return addSuppression(ctx, a, args[0], reason, *note)
		}
	},
}

var suppressionRemove = &command{
	usage: "suppression remove EMAIL\n\nTakes the address off the suppression list, an erasure's entry included. It does not mail the\n" +
		"person or subscribe them again: an import or `subscribers add` may now add them, and they can\n" +
		"confirm a sign-up on the form.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			removed, err := a.subscribers().Unsuppress(ctx, args[0], subscribers.Source{Method: subscribers.MethodEditor})
			if err != nil {
				return err
			}
			if !removed {
				return fmt.Errorf("that address is not on the suppression list")
			}
			fmt.Fprintln(a.stdout, "removed from the suppression list; not subscribed again until they confirm a sign-up")
			return nil
		}
	},
}

func addSuppression(ctx context.Context, a *app, email string, reason subscribers.Reason, note string) error {
	res, err := a.subscribers().Suppress(ctx, email, reason, note, subscribers.Source{Method: subscribers.MethodEditor})
	if err != nil {
		return err
	}
	if res.Subscriber != 0 {
		a.log.Info("suppressed", "subscriber", res.Subscriber, "reason", reason)
	}
	switch {
	case !res.Added:
		fmt.Fprint(a.stdout, "already on the suppression list")
	default:
		fmt.Fprintf(a.stdout, "added to the suppression list (%s)", reason)
	}
	switch {
	case res.Stopped:
		fmt.Fprintf(a.stdout, "; subscriber %d taken out of every send\n", res.Subscriber)
	case res.Subscriber != 0:
		fmt.Fprintf(a.stdout, "; subscriber %d was not being mailed\n", res.Subscriber)
	default:
		fmt.Fprintln(a.stdout, "; no subscriber has that address")
	}
	return nil
}

func listSuppressions(ctx context.Context, a *app, asJSON bool) error {
	w := bufio.NewWriter(a.stdout)
	enc := json.NewEncoder(w)
	if !asJSON {
		fmt.Fprintln(w, "at\treason\taddress\tnote")
	}
	err := a.subscribers().EachSuppression(ctx, func(e subscribers.Suppression) error {
		if asJSON {
			return enc.Encode(e)
		}
		addr := spreadsheetCell(e.Email)
		if addr == "" {
			addr = "(erased) " + e.Hash
		}
		_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), e.Reason, addr, spreadsheetCell(e.Note))
		return err
	})
	if err != nil {
		return err
	}
	return w.Flush()
}
