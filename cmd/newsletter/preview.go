package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"time"

	"newsletter/subscribers"
)

var previewCommand = &command{
	usage: "preview [--date YYYY-MM-DD] [--format html|text|eml] [--out FILE]\n\nRenders the edition exactly as a subscriber gets it (eml: the whole MIME message).",
	needs: needDB | needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		format, out := "html", ""
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
		fs.Func("format", "html (the default), text, or eml (the whole message with headers)", func(s string) error {
			if s != "html" && s != "text" && s != "eml" {
				return fmt.Errorf("want html, text or eml")
			}
			format = s
			return nil
		})
		fs.StringVar(&out, "out", "", "write to this file instead of standard output")
		return func(ctx context.Context, a *app, _ []string) error { return preview(ctx, a, date, format, out) }
	},
}

func preview(ctx context.Context, a *app, date time.Time, format, out string) error {
	st, err := a.edition(ctx, date)
	if err != nil {
		return err
	}
	// No secret is needed: the preview's unsubscribe link belongs to nobody.
	body, err := a.room(&subscribers.Store{DB: a.db}).Preview(st.Edition, format)
	if err != nil {
		return err
	}
	if out == "" {
		_, err = a.stdout.Write(body)
		return err
	}
	if err := os.WriteFile(out, body, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(a.stdout, "wrote %s (%d bytes)\n", out, len(body))
	return nil
}
