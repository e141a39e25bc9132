package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/edition"
)

func cmdEdition(ctx context.Context, e *env) error {
	if len(e.args) == 0 || e.args[0] != "import" {
		fmt.Fprintln(e.stdout, "Usage: newsletter edition import FILE [--date YYYY-MM-DD] [--site-url URL]")
		if len(e.args) > 0 && (e.args[0] == "-h" || e.args[0] == "--help") {
			return nil
		}
		return usageErr("name a subcommand: import")
	}
	fs := flagSet(e, "edition import", "edition import FILE [flags]\n\nReads a news page (plain text), an RSS 2.0 or Atom feed, or edition JSON; prints the edition's date.")
	c := newConfig(fs, envDatabaseURL)
	var date, siteURL string
	fs.StringVar(&date, "date", "", "the edition's date, YYYY-MM-DD (default: the date the source gives)")
	fs.StringVar(&siteURL, "site-url", "", "the site's address, for story links the source does not give (env NEWSLETTER_SITE_URL)")
	pos, err := parseArgs(fs, e.args[1:])
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("edition import takes one FILE, got %d", len(pos))
	}
	if siteURL == "" {
		siteURL = os.Getenv("NEWSLETTER_SITE_URL")
	}
	opts := edition.ParseOptions{SiteURL: siteURL}
	if date != "" {
		if opts.Date, err = edition.ParseDate(date); err != nil {
			return usageErr("--date: %v", err)
		}
	}
	if err := c.load(e.log); err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("read %s: %w", pos[0], err)
	}
	ed, format, err := edition.Parse(data, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", pos[0], err)
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return err
	}
	defer db.Close()
	_, replaced, err := (&edition.Store{DB: db}).Save(ctx, ed, format)
	if err != nil {
		return err
	}
	verb := "imported"
	if replaced {
		verb = "replaced"
	}
	e.log.Info(verb+" edition", "date", ed.DateString(), "format", format, "related", len(ed.Related))
	fmt.Fprintln(e.stdout, ed.DateString())
	return nil
}

// editionFor loads the edition of the date flag, or of today in the
// configured time zone.
func editionFor(ctx context.Context, db *sqlx.DB, date string, loc *time.Location) (*edition.Stored, error) {
	var d time.Time
	var err error
	if date == "" {
		now := time.Now().In(loc)
		d = time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
	} else if d, err = edition.ParseDate(date); err != nil {
		return nil, usageErr("--date: %v", err)
	}
	st, err := (&edition.Store{DB: db}).Get(ctx, d)
	if errors.Is(err, edition.ErrNotFound) {
		return nil, fmt.Errorf("no edition for %s: import one with `newsletter edition import FILE`", d.Format(edition.DateLayout))
	}
	return st, err
}
