// Package rendertest renders editions for the tests of the packages that
// turn them into mail (mailer, smtpclient): the demo edition through the
// built-in templates, and editions of chosen paragraphs through minimal
// templates whose lines the tests control.
package rendertest

import (
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"newsletter/edition"
	"newsletter/templates"
)

// root is the module's root folder, found from this file's place in it, so
// the demo edition is found whichever package's tests ask.
func root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// demoRendered is the demo edition rendered with the built-in templates, once.
var demoRendered = sync.OnceValues(func() (*templates.Rendered, error) {
	data, err := os.ReadFile(filepath.Join(root(), "demo", "london-daily-2025-11-13.txt"))
	if err != nil {
		return nil, err
	}
	e, _, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://news.example.com"})
	if err != nil {
		return nil, err
	}
	set, err := templates.Load("")
	if err != nil {
		return nil, err
	}
	return set.RenderEdition(e, templates.EditionData{
		BaseURL:       "https://news.example.com/newsletter",
		WebURL:        "https://news.example.com/newsletter/editions/2025-11-13",
		PostalAddress: "1 Fleet Street, London EC4Y 1AA",
	})
})

// Demo is the demo edition rendered with the built-in templates.
func Demo(t testing.TB) *templates.Rendered {
	t.Helper()
	r, err := demoRendered()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The minimal email templates of Custom put the content on lines of its own
// and the recipient's fields both on lines of their own and in the middle of
// content lines, so the tests control exactly what the lines look like
// (leading dots, trailing spaces, "=", long lines).
const (
	customText = `{{.Recipient.Greeting}}
{{range .Lead.Body}}{{.Text}}
{{.Text}} {{$.Recipient.Name}} <{{$.Recipient.Email}}> {{.Text}}
{{end}}.{{.Recipient.Name}}
Unsubscribe: {{.Recipient.UnsubscribeURL}}
`
	customHTML = `<!doctype html><p>{{.Recipient.Greeting}} hi</p>
{{range .Lead.Body}}<p>{{.Text}}</p>
<p title="{{$.Recipient.Name}}">{{.Text}} {{$.Recipient.Name}}</p>
{{end}}<a href="{{.Recipient.UnsubscribeURL}}">Unsubscribe {{.Recipient.Email}}</a>`
)

var customSet = sync.OnceValues(func() (*templates.Set, error) {
	dir, err := os.MkdirTemp("", "rendertest-templates")
	if err != nil {
		return nil, err
	}
	// Load reads the files once; they are not needed afterwards.
	defer os.RemoveAll(dir)
	if err := os.MkdirAll(filepath.Join(dir, "email"), 0o755); err != nil {
		return nil, err
	}
	for name, body := range map[string]string{"edition.txt": customText, "edition.html": customHTML} {
		if err := os.WriteFile(filepath.Join(dir, "email", name), []byte(body), 0o644); err != nil {
			return nil, err
		}
	}
	return templates.Load(dir)
})

// Custom renders an edition whose lead story is the paragraphs paras
// through the minimal templates above.
func Custom(t testing.TB, paras ...string) *templates.Rendered {
	t.Helper()
	set, err := customSet()
	if err != nil {
		t.Fatal(err)
	}
	e := &edition.Edition{
		Date: time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC),
		Site: edition.Site{Name: "London Daily", URL: "https://news.example.com"},
		Lead: edition.Story{Title: "Lead"},
	}
	for _, p := range paras {
		e.Lead.Body = append(e.Lead.Body, edition.Block{Kind: edition.Paragraph, Text: p})
	}
	r, err := set.RenderEdition(e, templates.EditionData{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}
