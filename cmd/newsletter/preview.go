package main

import (
	"bytes"
	"context"
	"fmt"
	"net/mail"
	"os"

	"newsletter/mailer"
	"newsletter/subscribers"
)

// previewRecipient stands in for a subscriber: the preview is what a
// subscriber gets, with a made-up reader and a placeholder unsubscribe link.
var previewRecipient = mail.Address{Name: "Ada Lovelace", Address: "reader@example.com"}

func cmdPreview(ctx context.Context, e *env) error {
	fs := flagSet(e, "preview", "preview [--date YYYY-MM-DD] [--format html|text|eml] [--out FILE]\n\nRenders the edition exactly as a subscriber gets it (eml: the whole MIME message).")
	c := newConfig(fs, envDatabaseURL, envFrom, envBaseURL, envTZ, envTemplates, envListID)
	var date, format, out string
	fs.StringVar(&date, "date", "", "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
	fs.StringVar(&format, "format", "html", "html, text, or eml (the whole message with headers)")
	fs.StringVar(&out, "out", "", "write to this file instead of standard output")
	pos, err := parseArgs(fs, e.args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageErr("preview takes no arguments")
	}
	if format != "html" && format != "text" && format != "eml" {
		return usageErr("--format must be html, text or eml")
	}
	tpl, db, err := start(ctx, c, e.log)
	if err != nil {
		return err
	}
	defer db.Close()
	st, err := editionFor(ctx, db, date, c.location)
	if err != nil {
		return err
	}
	// No secret is needed: the preview's unsubscribe link belongs to nobody.
	comp, err := composer(c, tpl, st.Edition, &subscribers.Store{DB: db})
	if err != nil {
		return err
	}
	msg := comp.Message(&previewRecipient, "preview@"+c.fromDomain(), c.baseURL+"/u/preview")
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
		_, err = e.stdout.Write(buf.Bytes())
		return err
	}
	if err := os.WriteFile(out, buf.Bytes(), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", out, err)
	}
	fmt.Fprintf(e.stdout, "wrote %s (%d bytes)\n", out, buf.Len())
	return nil
}
