package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"time"

	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/templates"
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
			st, err := a.editionArg(ctx, args[0])
			if err != nil {
				return err
			}
			if asJSON {
				return json.NewEncoder(a.stdout).Encode(st.Edition)
			}
			return writeEdition(ctx, a, st)
		}
	},
}

// editionArg is the edition of the DATE argument.
func (a *app) editionArg(ctx context.Context, arg string) (*edition.Stored, error) {
	date, err := edition.ParseDate(arg)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return a.edition(ctx, date)
}

// writeEdition prints the edition for an editor, its related headlines
// numbered as `edition edit` takes them.
func writeEdition(ctx context.Context, a *app, st *edition.Stored) error {
	state, err := (&edition.Store{DB: a.db}).SendState(ctx, st.ID)
	if err != nil {
		return err
	}
	e, w := st.Edition, a.stdout
	fmt.Fprintf(w, "edition %s: %s\n", e.DateString(), state.State())
	fmt.Fprintf(w, "subject:   %s%s\n", e.Subject(), editedMark(e.Edits.Subject != ""))
	fmt.Fprintf(w, "preheader: %s%s\n", templates.Preheader(e), editedMark(e.Edits.Preheader != ""))
	fmt.Fprintf(w, "imported:  %s from %s\n", st.ImportedAt.Format(time.RFC3339), st.Format)
	if st.EditedAt != nil {
		fmt.Fprintf(w, "edited:    %s\n", st.EditedAt.Format(time.RFC3339))
	}
	if state.StartedAt != nil {
		fmt.Fprintf(w, "send:      started %s\n", state.StartedAt.Format(time.RFC3339))
	}
	if e.Site.URL != "" {
		fmt.Fprintf(w, "site:      %s %s\n", e.Site.Name, e.Site.URL)
	}
	fmt.Fprintf(w, "lead:      %s (%d paragraphs) %s\n", e.Lead.Title, len(e.Lead.Body), e.Lead.URL)
	fmt.Fprintf(w, "related:   %d%s\n", len(e.Related), editedMark(e.Edits.Related != nil))
	// Numbered as `edition edit --related` takes them.
	for i, r := range e.Related {
		fmt.Fprintf(w, "  %2d  %s %s\n", i, r.Title, r.URL)
	}
	return nil
}

// editedMark marks what an editor set with `edition edit`.
func editedMark(edited bool) string {
	if !edited {
		return ""
	}
	return " (edited)"
}

var editionEdit = &command{
	usage: "edition edit DATE [--subject S] [--preheader P] [--related 3,0,1]\n\nChanges the edition of DATE (YYYY-MM-DD) before its send: its subject line, its preheader (the inbox\n" +
		"preview text; \"\" goes back to the start of the lead story) and which related headlines it shows in what\n" +
		"order, by the numbers `edition show` gives them (those left out are dropped; \"\" drops them all). Refused\n" +
		"once the send started. Importing the same content again keeps the edits; importing other content\n" +
		"replaces the edition and discards them.",
	args:  []string{"DATE"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var ed edition.Edit
		fs.Func("subject", "the subject line (at most "+strconv.Itoa(edition.MaxSubject)+" characters, one line)", func(v string) error {
			ed.Subject = &v
			return nil
		})
		fs.Func("preheader", "the preheader (at most "+strconv.Itoa(edition.MaxPreheader)+" characters, one line; \"\": the lead's)", func(v string) error {
			ed.Preheader = &v
			return nil
		})
		fs.Func("related", "the related headlines to show, in order, by their numbers in `edition show` (\"\": none)", func(v string) error {
			var err error
			ed.Related, err = parseIndexes(v)
			return err
		})
		return func(ctx context.Context, a *app, args []string) error {
			st, err := a.editionArg(ctx, args[0])
			if err != nil {
				return err
			}
			if st, err = a.room(nil).Edit(ctx, newsroom.CLI, st, ed); err != nil {
				return err
			}
			return writeEdition(ctx, a, st)
		}
	},
}

// parseIndexes reads "3,0,1"; "" is none.
func parseIndexes(v string) ([]int, error) {
	out := []int{}
	if strings.TrimSpace(v) == "" {
		return out, nil
	}
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, fmt.Errorf("want headline numbers separated by commas, like 3,0,1; got %q", f)
		}
		out = append(out, n)
	}
	return out, nil
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
