package smtpclient

// Messages for the tests, built with package mailer: the client sends what
// mailer builds.

import (
	"bytes"
	"fmt"
	"net/mail"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"newsletter/edition"
	"newsletter/mailer"
	"newsletter/templates"
)

var testDate = time.Date(2025, 11, 13, 6, 30, 0, 0, time.FixedZone("GMT", 0))

// demoRendered is the demo edition rendered with the built-in templates, once.
var demoRendered = sync.OnceValues(func() (*templates.Rendered, error) {
	data, err := os.ReadFile("../demo/london-daily-2025-11-13.txt")
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

func demo(t testing.TB) *templates.Rendered {
	t.Helper()
	r, err := demoRendered()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// customTemplates renders an edition whose lead body is paras through minimal
// email templates that put the content on lines of its own and recipient
// fields both on lines of their own and in the middle of content lines, so
// the tests control exactly what the lines look like (leading dots, trailing
// spaces, "=", long lines).
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
	dir, err := os.MkdirTemp("", "prepared-templates")
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

func renderCustom(t testing.TB, paras ...string) *templates.Rendered {
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

func prepareInput(r *templates.Rendered) mailer.PrepareInput {
	html, text := r.Parts()
	return mailer.PrepareInput{
		From:              &mail.Address{Name: "London Daily", Address: "daily@news.example.com"},
		Subject:           r.Subject(),
		ListID:            "London Daily <london-daily.news.example.com>",
		UnsubscribeMailto: "mailto:unsubscribe@news.example.com?subject=unsubscribe",
		Headers:           map[string]string{"X-Edition": "2025-11-13", "x-campaign": "Édition du jour"},
		Text:              text,
		HTML:              html,
	}
}

func mustPrepare(t testing.TB, in mailer.PrepareInput) *mailer.Prepared {
	t.Helper()
	p, err := mailer.Prepare(in)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

// buildEquivalent is the mailer.Message mailer.Build gets for the same recipient.
func buildEquivalent(in mailer.PrepareInput, r *templates.Rendered, rc mailer.Recipient) mailer.Message {
	trc := templates.Recipient{Name: rc.Name, Email: rc.Email, UnsubscribeURL: rc.UnsubscribeURL}
	m := mailer.Message{
		From: in.From, To: &mail.Address{Name: rc.Name, Address: rc.Email},
		Subject: in.Subject, Text: r.Text(trc), MessageID: rc.MessageID, Date: rc.Date,
		ListID: in.ListID, UnsubscribeURL: rc.UnsubscribeURL, UnsubscribeMailto: in.UnsubscribeMailto,
		Headers: in.Headers,
	}
	if !in.HTML.IsZero() {
		m.HTML = r.HTML(trc)
	}
	return m
}

// unstuff removes the SMTP transparency dots (RFC 5321 section 4.5.2), as a
// server does, checking the stuffing on the way.
func unstuff(t testing.TB, raw []byte) []byte {
	t.Helper()
	lines := bytes.SplitAfter(raw, []byte("\r\n"))
	for i, l := range lines {
		if len(l) > 0 && l[0] == '.' {
			if len(l) < 2 || l[1] != '.' {
				t.Fatalf("line %d starts with a single dot: %q", i, l)
			}
			lines[i] = l[1:]
		}
	}
	return bytes.Join(lines, nil)
}

func firstDiff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Sprintf("at byte %d:\nwant %q\n got %q", i, want[from:min(len(want), i+40)], got[from:min(len(got), i+40)])
}

func sampleMessage() mailer.Message {
	return mailer.Message{
		From:              &mail.Address{Name: "London Daily", Address: "daily@news.example.com"},
		To:                &mail.Address{Name: "Zoë Ångström-Łukasiewicz", Address: "zoe@example.org"},
		Subject:           "Londres ☂ Daily — jeudi 13 novembre: pluie, grève et café ☕",
		Text:              "Good morning Zoë!\n\nToday: rain ☂.\n" + strings.Repeat("A very long line of text without breaks ", 40) + "\n.\n.starts with a dot\nFrom the editor\n",
		HTML:              "<!doctype html><html><body><h1>Good morning Zoë!</h1><p>" + strings.Repeat("Long paragraph café ", 100) + "</p>\n<p>=3D not an escape</p></body></html>",
		MessageID:         "20251113.zoe@news.example.com",
		Date:              testDate,
		ListID:            "London Daily <london-daily.news.example.com>",
		UnsubscribeURL:    "https://news.example.com/u/one-click?t=abc123",
		UnsubscribeMailto: "mailto:unsubscribe@news.example.com?subject=unsubscribe",
		Headers:           map[string]string{"X-Edition": "2025-11-13", "x-campaign": "Édition du jour"},
	}
}
