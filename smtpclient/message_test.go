package smtpclient

// Messages for the tests, built with package mailer: the client sends what
// mailer builds.

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"testing"
	"time"

	"newsletter/internal/rendertest"
	"newsletter/mailer"
	"newsletter/templates"
)

var testDate = time.Date(2025, 11, 13, 6, 30, 0, 0, time.FixedZone("GMT", 0))

func demo(t testing.TB) *templates.Rendered { return rendertest.Demo(t) }

func renderCustom(t testing.TB, paras ...string) *templates.Rendered {
	return rendertest.Custom(t, paras...)
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
