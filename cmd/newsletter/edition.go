package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"newsletter/edition"
	"newsletter/templates"
)

var editionImport = &command{
	usage: "edition import FILE [--date YYYY-MM-DD] [--site-url URL]\n\nReads a news page (plain text), an RSS 2.0 or Atom feed, or edition JSON from FILE (- for standard\n" +
		"input); prints the edition's date, and logs how many paragraphs the lead story kept and how many\n" +
		"elements with text (scripts, frames, SVG) its HTML lost. An input over " + strconv.Itoa(edition.MaxInputBytes>>20) + " MiB, a lead story over\n" +
		strconv.Itoa(edition.MaxParagraphs) + " paragraphs, over " + strconv.Itoa(edition.MaxRelated) + " related stories or a mail whose HTML is over " + strconv.Itoa(edition.MaxRenderedHTML>>20) + " MiB is refused.",
	args:  []string{"FILE"},
	needs: needDB | needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: the date the source gives)")
		return func(ctx context.Context, a *app, args []string) error {
			return importEdition(ctx, a, args[0], edition.ParseOptions{Date: date, SiteURL: a.cfg.siteURL})
		}
	},
}

// importEdition reads and stores an edition. It is refused, and nothing
// stored changes, when the input or the mail it makes is over a limit
// (edition/limits.go).
func importEdition(ctx context.Context, a *app, file string, opts edition.ParseOptions) error {
	in := io.Reader(os.Stdin)
	if file != "-" {
		f, err := os.Open(file)
		if err != nil {
			return fmt.Errorf("read %s: %w", file, err)
		}
		defer f.Close()
		in = f
	}
	im, err := edition.Read(in, opts)
	if err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	ed := im.Edition
	rendered, err := a.tpl.RenderEdition(ed, a.cfg.editionData(ed))
	if err != nil {
		return fmt.Errorf("%s: render edition %s: %w", file, ed.DateString(), err)
	}
	html, _ := rendered.Parts()
	if n := partSize(html); n > edition.MaxRenderedHTML {
		return fmt.Errorf("%s: %w", file, edition.RenderedTooLarge(n))
	}
	_, replaced, err := (&edition.Store{DB: a.db}).Save(ctx, ed, im.Format)
	if err != nil {
		return err
	}
	verb := "imported"
	if replaced {
		verb = "replaced"
	}
	a.log.Info(verb+" edition", "date", ed.DateString(), "format", im.Format, "related", len(ed.Related),
		"paragraphs", im.Kept, "dropped", im.Dropped)
	if im.Dropped > 0 {
		a.log.Warn("the lead story's HTML had elements with text that the newsletter leaves out (scripts, frames, SVG, forms...)",
			"date", ed.DateString(), "kept_paragraphs", im.Kept, "dropped_elements", im.Dropped)
	}
	fmt.Fprintln(a.stdout, ed.DateString())
	return nil
}

// partSize is the size of a rendered part without its recipient fields,
// which are short.
func partSize(p templates.Part) int {
	n := 0
	for _, l := range p.Lits() {
		n += len(l)
	}
	return n
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
