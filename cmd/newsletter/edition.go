package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"newsletter/edition"
)

var editionImport = &command{
	usage: "edition import FILE [--date YYYY-MM-DD] [--site-url URL]\n\nReads a news page (plain text), an RSS 2.0 or Atom feed, or edition JSON; prints the edition's date.",
	args:  []string{"FILE"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: the date the source gives)")
		return func(ctx context.Context, a *app, args []string) error {
			return importEdition(ctx, a, args[0], edition.ParseOptions{Date: date, SiteURL: a.cfg.siteURL})
		}
	},
}

func importEdition(ctx context.Context, a *app, file string, opts edition.ParseOptions) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("read %s: %w", file, err)
	}
	ed, format, err := edition.Parse(data, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	_, replaced, err := (&edition.Store{DB: a.db}).Save(ctx, ed, format)
	if err != nil {
		return err
	}
	verb := "imported"
	if replaced {
		verb = "replaced"
	}
	a.log.Info(verb+" edition", "date", ed.DateString(), "format", format, "related", len(ed.Related))
	fmt.Fprintln(a.stdout, ed.DateString())
	return nil
}

// dateFlag is the --date flag of the subcommands that work on one edition,
// checked as it is parsed.
func dateFlag(fs *flag.FlagSet, dst *time.Time, usage string) {
	fs.Func("date", usage, func(s string) error {
		d, err := edition.ParseDate(s)
		*dst = d
		return err
	})
}

// edition loads the edition of date, or of today in NEWSLETTER_TZ when date
// is zero.
func (a *app) edition(ctx context.Context, date time.Time) (*edition.Stored, error) {
	if date.IsZero() {
		now := time.Now().In(a.cfg.location)
		date = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	}
	st, err := (&edition.Store{DB: a.db}).Get(ctx, date)
	if errors.Is(err, edition.ErrNotFound) {
		return nil, fmt.Errorf("no edition for %s: import one with `newsletter edition import FILE`", date.Format(edition.DateLayout))
	}
	return st, err
}
