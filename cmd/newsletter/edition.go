package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"newsletter/edition"
	"newsletter/newsroom"
)

var editionImport = &command{
	usage: "edition import FILE|URL [--date YYYY-MM-DD] [--site-url URL]\n\nReads a news page (plain text), an RSS 2.0 or Atom feed, or edition JSON from FILE (- for standard\n" +
		"input) or from an http(s) URL; prints the edition's date, and logs how many paragraphs the lead story\n" +
		"kept and how many elements with text (scripts, frames, SVG) its HTML lost. An input over " + strconv.Itoa(edition.MaxInputBytes>>20) + " MiB, a lead\n" +
		"story over " + strconv.Itoa(edition.MaxParagraphs) + " paragraphs, over " + strconv.Itoa(edition.MaxRelated) + " related stories or a mail whose HTML is over " + strconv.Itoa(edition.MaxRenderedHTML>>20) + " MiB is refused.\n\n" +
		"A FILE's edition is for the date the source gives; a URL's is today's in NEWSLETTER_TZ. A URL is fetched\n" +
		"within " + edition.FetchTimeout.String() + ", following at most " + strconv.Itoa(edition.MaxRedirects) + " redirects, conditionally on what the last fetch of it for that day\n" +
		"answered (an unchanged page stores nothing). An answer other than 2xx, a page that is not an edition or a\n" +
		"lead story the same as the previous edition's is refused. The same content again, even once its send has\n" +
		"started, is unchanged and not an error.",
	args:  []string{"FILE|URL"},
	needs: needDB | needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: the date a file gives, today in NEWSLETTER_TZ for a URL)")
		return func(ctx context.Context, a *app, args []string) error {
			if isURL(args[0]) {
				if date.IsZero() {
					date = a.today()
				}
				d, _, err := a.importURL(ctx, args[0], date)
				if err != nil {
					return err
				}
				fmt.Fprintln(a.stdout, d.Format(edition.DateLayout))
				return nil
			}
			return importFile(ctx, a, args[0], edition.ParseOptions{Date: date, SiteURL: a.cfg.siteURL})
		}
	},
}

func isURL(s string) bool {
	l := strings.ToLower(s)
	return strings.HasPrefix(l, "http://") || strings.HasPrefix(l, "https://")
}

// importFile reads and stores an edition from a file or standard input.
// It is refused, and nothing stored changes, when the input or the mail it
// makes is over a limit (edition/limits.go).
func importFile(ctx context.Context, a *app, file string, opts edition.ParseOptions) error {
	in := io.Reader(os.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		defer f.Close()
		in = f
	}
	im, err := a.room(nil).Import(ctx, newsroom.CLI, in, opts, file)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	a.logImported(im.Imported, im.Saved, "file", file)
	a.warnEditsDiscarded(im.Edition, im.EditsDiscarded)
	fmt.Fprintln(a.stdout, im.Edition.DateString())
	return nil
}

// importURL fetches the edition of day from url and stores it, unless the
// page is unchanged since the fetch that stored day's edition (a 304) or
// its content is the one stored: then unchanged is set and nothing stored
// changes. The schedule runs it for each day's digest.
func (a *app) importURL(ctx context.Context, url string, day time.Time) (date time.Time, unchanged bool, err error) {
	day = time.Date(day.Year(), day.Month(), day.Day(), 0, 0, 0, 0, time.UTC)
	eds := &edition.Store{DB: a.db}
	cond, err := eds.Validators(ctx, url, day)
	if err != nil {
		return day, false, err
	}
	got, err := edition.NewFetcher(a.userAgent()).Fetch(ctx, url, cond, edition.ParseOptions{Date: day, SiteURL: a.cfg.siteURL})
	if err != nil {
		return day, false, err
	}
	if got.NotModified {
		a.log.Info("edition unchanged: the page is the one already imported", "date", day.Format(edition.DateLayout), "url", url)
		return day, true, nil
	}
	if err := a.room(nil).CheckRendered(got.Edition); err != nil {
		return day, false, fmt.Errorf("%s: %w", url, err)
	}
	before, err := eds.Version(ctx, got.Edition.Date)
	if err != nil && !errors.Is(err, edition.ErrNotFound) {
		return day, false, err
	}
	_, saved, err := eds.SaveFetched(ctx, got.Edition, got.Format, edition.Source{URL: url, Validators: got.Validators})
	if err != nil {
		return day, false, fmt.Errorf("%s: %w", url, err)
	}
	a.logImported(got.Imported, saved, "url", url)
	a.warnEditsDiscarded(got.Edition, before.EditedAt != nil && saved == edition.Replaced)
	return day, saved == edition.Unchanged, nil
}

// userAgent names the newsletter to the sites it fetches from (RFC 9110
// section 10.1.5): the program, and in its comment the sender's name and
// the reader pages' address when this process has them, so the site's
// operators know whose fetches they see and where to look.
func (a *app) userAgent() string {
	var about []string
	if a.cfg.fromAddr != nil && a.cfg.fromAddr.Name != "" {
		about = append(about, a.cfg.fromAddr.Name)
	}
	if a.cfg.baseURL != "" {
		about = append(about, "+"+a.cfg.baseURL)
	}
	if len(about) == 0 {
		return "newsletter"
	}
	// A comment may not hold unbalanced parentheses (section 5.6.5).
	clean := strings.NewReplacer("(", "", ")", "", "\\", "").Replace(oneLine(strings.Join(about, "; ")))
	return "newsletter (" + clean + ")"
}

// logImported says what an import did, and what the cleaner left out.
func (a *app) logImported(im *edition.Imported, saved edition.Saved, kind, from string) {
	ed := im.Edition
	msg := map[edition.Saved]string{edition.Inserted: "imported edition", edition.Replaced: "replaced edition",
		edition.Unchanged: "edition unchanged: the same content is stored"}[saved]
	a.log.Info(msg, "date", ed.DateString(), kind, from, "format", im.Format, "related", len(ed.Related),
		"paragraphs", im.Kept, "dropped", im.Dropped)
	if im.Dropped > 0 {
		a.log.Warn("the lead story's HTML had elements with text that the newsletter leaves out (scripts, frames, SVG, forms...)",
			"date", ed.DateString(), "kept_paragraphs", im.Kept, "dropped_elements", im.Dropped)
	}
}

// warnEditsDiscarded says that an import replaced an edition an editor
// had edited, and so discarded the edits (edition.Edits).
func (a *app) warnEditsDiscarded(ed *edition.Edition, discarded bool) {
	if discarded {
		a.log.Warn("the import replaced the edition's content and discarded the editor's edits (subject, preheader, related headlines); make them again with `newsletter edition edit`",
			"date", ed.DateString())
	}
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

// today is today's civil date in NEWSLETTER_TZ.
func (a *app) today() time.Time {
	now := time.Now().In(a.cfg.location)
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// edition loads the edition of date, or of today in NEWSLETTER_TZ when date
// is zero. When there is none, the error names the nearest days that have
// one.
func (a *app) edition(ctx context.Context, date time.Time) (*edition.Stored, error) {
	if date.IsZero() {
		date = a.today()
	}
	eds := &edition.Store{DB: a.db}
	st, err := eds.Get(ctx, date)
	if !errors.Is(err, edition.ErrNotFound) {
		return st, err
	}
	day := date.Format(edition.DateLayout)
	before, after, err := eds.Nearest(ctx, date)
	if err != nil {
		return nil, err
	}
	var near []string
	for _, d := range []time.Time{before, after} {
		if !d.IsZero() {
			near = append(near, fmt.Sprintf("%s (--date %[1]s)", d.Format(edition.DateLayout)))
		}
	}
	if len(near) == 0 {
		return nil, fmt.Errorf("no edition for %s, nor any other day: import one with `newsletter edition import FILE|URL`", day)
	}
	return nil, fmt.Errorf("no edition for %s; nearest: %s", day, strings.Join(near, ", "))
}
