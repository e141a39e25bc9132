package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/mail"
	"os"
	"time"

	"newsletter/mailer"
	"newsletter/subscribers"
)

// previewRecipient stands in for a subscriber: the preview is what a
// subscriber gets, with a made-up reader and a placeholder unsubscribe link.
var previewRecipient = mail.Address{Name: "Ada Lovelace", Address: "reader@example.com"}

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
	// No secret is needed: the preview's unsubscribe link belongs to nobody.
	_, comp, err := a.render(ctx, date, &subscribers.Store{DB: a.db})
	if err != nil {
		return err
	}
	msg := comp.Message(&previewRecipient, "preview@"+a.cfg.fromDomain(), a.cfg.baseURL+"/u/preview")
	var buf bytes.Buffer
	switch format {
	case "html":
		buf.WriteString(msg.HTML)
	case "text":
		buf.WriteString(msg.Text)
	case "eml":
		if err := mailer.BuildTo(&buf, msg); err != nil {
			return fmt.Errorf("build message: %w", err)
		}
	}
	if out == "" {
		_, err = a.stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(a.stdout, "wrote %s (%d bytes)\n", out, buf.Len())
	return nil
}
