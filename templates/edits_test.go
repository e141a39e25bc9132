package templates

import (
	"strings"
	"testing"

	"newsletter/edition"
)

// An editor's subject and preheader stand in for the derived ones in the
// Subject and the HTML's preheader; without them the derived ones are
// used.
func TestEditedSubjectAndPreheader(t *testing.T) {
	s := builtin(t)
	e := demoEdition(t)
	plain := render(t, s, e, demoData)
	derived := Preheader(e)
	if derived == "" || !strings.Contains(plain.HTML(Recipient{}), derived) {
		t.Fatalf("the derived preheader %q is not in the HTML", derived)
	}

	e.Edits = edition.Edits{Subject: "Storm <warning> & more", Preheader: "Read this before the 9 o'clock briefing"}
	r := render(t, s, e, demoData)
	if r.Subject() != "Storm <warning> & more" {
		t.Errorf("Subject = %q", r.Subject())
	}
	html := r.HTML(Recipient{Email: "a@example.com"})
	if !strings.Contains(html, "Read this before the 9 o&#39;clock briefing") || strings.Contains(html, derived) {
		t.Errorf("the HTML's preheader is not the editor's:\n%.2000s", html)
	}
	if Preheader(e) != e.Edits.Preheader {
		t.Errorf("Preheader = %q", Preheader(e))
	}
}
