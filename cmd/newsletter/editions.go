package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"time"

	"newsletter/edition"
)

var editionList = &command{
	usage: "edition list [--json]\n\nEvery stored edition, newest first: date, send state, recipients sent, failed, pending and skipped,\nand the subject; tab-separated, or --json.",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var asJSON bool
		fs.BoolVar(&asJSON, "json", false, "print a JSON array")
		return func(ctx context.Context, a *app, _ []string) error {
			list, err := a.room(nil).List(ctx)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(list)
			}
			fmt.Fprintln(a.stdout, "date\tstate\tsent\tfailed\tpending\tskipped\tsubject")
			for _, e := range list {
				fmt.Fprintf(a.stdout, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", e.Date, e.State, e.Sent, e.Failed, e.Pending, e.Skipped, e.Subject)
			}
			return nil
		}
	},
}

var editionShow = &command{
	usage: "edition show DATE [--json]\n\nThe edition of DATE (YYYY-MM-DD): its subject, source format, import time, send state, lead story\nand related headlines; --json prints the edition as JSON, which `edition import` reads back.",
	args:  []string{"DATE"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var asJSON bool
		fs.BoolVar(&asJSON, "json", false, "print the edition's JSON")
		return func(ctx context.Context, a *app, args []string) error {
			date, err := edition.ParseDate(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			st, err := a.edition(ctx, date)
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(st.Edition)
			}
			state, err := (&edition.Store{DB: a.db}).SendState(ctx, st.ID)
			if err != nil {
				return err
			}
			writeEdition(a, st, state)
			return nil
		}
	},
}

func writeEdition(a *app, st *edition.Stored, state edition.SendState) {
	e, w := st.Edition, a.stdout
	fmt.Fprintf(w, "edition %s: %s\n", e.DateString(), state.State())
	fmt.Fprintf(w, "subject:   %s\n", e.Subject())
	fmt.Fprintf(w, "imported:  %s from %s\n", st.ImportedAt.Format(time.RFC3339), st.Format)
	if state.StartedAt != nil {
		fmt.Fprintf(w, "send:      started %s\n", state.StartedAt.Format(time.RFC3339))
	}
	if e.Site.URL != "" {
		fmt.Fprintf(w, "site:      %s %s\n", e.Site.Name, e.Site.URL)
	}
	fmt.Fprintf(w, "lead:      %s (%d paragraphs) %s\n", e.Lead.Title, len(e.Lead.Body), e.Lead.URL)
	fmt.Fprintf(w, "related:   %d\n", len(e.Related))
	for _, r := range e.Related {
		fmt.Fprintf(w, "  %s %s\n", r.Title, r.URL)
	}
}

var editionDelete = &command{
	usage: "edition delete DATE\n\nDeletes the edition of DATE (YYYY-MM-DD) if its send never started; one whose send started stays,\nwith the record of who got it.",
	args:  []string{"DATE"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			date, err := edition.ParseDate(args[0])
			if err != nil {
				return usageErr("%v", err)
			}
			if _, err := a.edition(ctx, date); err != nil {
				return err
			}
			if err := (&edition.Store{DB: a.db}).Delete(ctx, date); err != nil {
				return err
			}
			a.log.Info("deleted edition", "date", args[0])
			fmt.Fprintf(a.stdout, "deleted %s\n", args[0])
			return nil
		}
	},
}
