package templates

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"newsletter/edition"
)

// recipientFields is rc as a template executed with the real values would
// see it: the oracle the splicing is checked against.
func recipientFields(rc Recipient) RecipientFields {
	rc = cleanRecipient(rc)
	return RecipientFields{Name: rc.Name, Email: rc.Email, UnsubscribeURL: rc.UnsubscribeURL, Greeting: greeting(rc.Name)}
}

// direct is the reference the splicing is checked against: the templates
// executed the ordinary way, with the recipient's real values.
func direct(t testing.TB, s *Set, e *edition.Edition, d EditionData, rc Recipient) (html, text string) {
	t.Helper()
	v := newView(e, d)
	v.Recipient = recipientFields(rc)
	var hb, tb bytes.Buffer
	if err := s.emailHTML.ExecuteTemplate(&hb, s.name[fileEmailHTML], v); err != nil {
		t.Fatal(err)
	}
	if err := s.emailText.ExecuteTemplate(&tb, s.name[fileEmailText], v); err != nil {
		t.Fatal(err)
	}
	return hb.String(), tb.String()
}

// awkward are recipients whose values need escaping, or cleaning, or are
// missing.
var awkward = []Recipient{
	ada,
	{Name: `<b>&"'</b>`, Email: `o'brien+news@example.com`, UnsubscribeURL: "https://news.example.com/newsletter/u/a+b&c=d"},
	{Name: "Zoë Ørsted-Nakamura 山田 太郎 🙂", Email: "zoë@exämple.com", UnsubscribeURL: "https://news.example.com/newsletter/u/ünï cödé?x=\"y\""},
	{Name: "", Email: "nobody@example.com", UnsubscribeURL: "https://news.example.com/newsletter/u/x"},
	{Name: "  Line\r\nBreak\tand   spaces ", Email: " spaced@example.com\r\n", UnsubscribeURL: "https://news.example.com/newsletter/u/%41%zz"},
	{Name: "nul\x00byte and bad utf8 \xff\xfe", Email: "x@example.com", UnsubscribeURL: "javascript:alert(1)"},
	{Name: strings.Repeat("Ω", 200), Email: "long@example.com", UnsubscribeURL: "/relative/u/x"},
	{Name: "zqNLR0zq", Email: "zqNLR" + strings.Repeat("0", 2*nonceBytes) + "1zq", UnsubscribeURL: "https://x/#ZgotmplZ"},
}

func TestSpliceMatchesDirectRendering(t *testing.T) {
	s := builtin(t)
	for _, e := range []*edition.Edition{demoEdition(t), hostile()} {
		for _, d := range append(sampleEditionData(), demoData) {
			r := render(t, s, e, d)
			for _, rc := range awkward {
				wantHTML, wantText := direct(t, s, e, d, rc)
				if got := r.HTML(rc); got != wantHTML {
					t.Errorf("HTML for %q:\n%s", rc.Name, firstDiff(wantHTML, got))
				}
				if got := r.Text(rc); got != wantText {
					t.Errorf("text for %q:\n%s", rc.Name, firstDiff(wantText, got))
				}
				// The Append forms add to what is there.
			}
		}
	}
}

func TestSpliceEscapes(t *testing.T) {
	r := render(t, builtin(t), demoEdition(t), demoData)
	rc := Recipient{Name: `<b>&"'`, Email: `a+b@example.com`, UnsubscribeURL: "https://news.example.com/u/1?a=1&b=2"}
	h, txt := r.HTML(rc), r.Text(rc)
	if !strings.Contains(h, "Hello &lt;b&gt;&amp;&#34;&#39;,") || strings.Contains(h, "<b>&") {
		t.Error("name not HTML-escaped in the HTML part")
	}
	if !strings.Contains(h, `href="https://news.example.com/u/1?a=1&amp;b=2"`) {
		t.Error("unsubscribe URL not attribute-escaped")
	}
	if !strings.Contains(txt, "Hello <b>&\"',\n") || !strings.Contains(txt, "Unsubscribe: https://news.example.com/u/1?a=1&b=2\n") {
		t.Error("text part isn't raw")
	}
	if h := r.HTML(Recipient{Email: "e@example.com", UnsubscribeURL: "javascript:alert(1)"}); strings.Contains(h, "javascript") || !strings.Contains(h, `href="#ZgotmplZ"`) {
		t.Error("a javascript: unsubscribe URL was spliced as a link")
	}
}

// TestSpliceContexts checks splicing against direct rendering in every
// context a recipient field may be used in, with an override that uses them
// all.
func TestSpliceContexts(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "email"), 0o755)
	os.WriteFile(filepath.Join(dir, "email", "edition.html"), []byte(`<!DOCTYPE html>
<html lang="en"><head><title>{{.Recipient.Name}} – {{.Lead.Title}}</title></head><body>
<p title="{{.Recipient.Name}}" data-x='{{.Recipient.Email}}'>{{.Recipient.Greeting}}</p>
<a href="{{.Recipient.UnsubscribeURL}}">start</a>
<a href='{{.Recipient.UnsubscribeURL}}'>start, single quotes</a>
<a href="{{.Recipient.Email}}">an address as a URL</a>
<a href="https://news.example.com/n/{{.Recipient.Name}}/{{.Recipient.Email}}">path</a>
<a href="mailto:{{.Recipient.Email}}">mailto</a>
<a href="https://news.example.com/p?e={{.Recipient.Email}}&amp;n={{.Recipient.Name}}#{{.Recipient.Greeting}}">query and fragment</a>
<img alt="{{.Recipient.Name}}" src="https://news.example.com/px?e={{.Recipient.Email}}">
<textarea>{{.Recipient.Name}}</textarea>
{{template "lead" .}}
</body></html>
`), 0o644)
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	e := demoEdition(t)
	r := render(t, s, e, demoData)
	want := map[escClass]bool{escHTML: true, escURLStart: true, escURL: true, escURLQuery: true}
	for _, h := range r.html.holes {
		delete(want, h.class)
	}
	if len(want) != 0 {
		t.Errorf("the override didn't exercise escaping classes %v", want)
	}
	more := append(awkward,
		Recipient{Name: "a b=c\"d'e<f>g&h+i%j#k?l/m:n", Email: "mailto:x@example.com", UnsubscribeURL: "HTTPS://EXAMPLE.COM/U"},
		Recipient{Name: "x", Email: "javascript:alert(1)", UnsubscribeURL: " javascript:alert(1)"},
		Recipient{Name: "x", Email: "/path:with:colons", UnsubscribeURL: "java\nscript:alert(1)"},
	)
	for _, rc := range more {
		wantHTML, _ := direct(t, s, e, demoData, rc)
		if got := r.HTML(rc); got != wantHTML {
			t.Errorf("HTML for %+v:\n%s", rc, firstDiff(wantHTML, got))
		}
	}
}

// TestMarkersCantBeForged puts marker-like text, including the exact
// markers of an earlier render, into the edition: it must come out as the
// text it is, and the recipient's values only where the template puts them.
func TestMarkersCantBeForged(t *testing.T) {
	s := builtin(t)
	first := render(t, s, demoEdition(t), demoData)

	var forged []string
	for f := range numFields {
		forged = append(forged, marker(first.nonce, f), markerPrefix+string(rune('0'+f))+markerSuffix)
	}
	forged = append(forged, "zqNLR0zq", "zqNLR1zq", "zqNLR2zq")
	e := demoEdition(t)
	e.Lead.Title = strings.Join(forged, " ")
	for _, f := range forged {
		e.Lead.Body = append(e.Lead.Body, edition.Block{Kind: edition.Paragraph, Text: "Quoting " + f + "."})
		e.Related = append(e.Related, edition.Story{Title: f, URL: "https://news.example.com/" + f})
	}
	second := render(t, s, e, demoData)
	if second.nonce == first.nonce {
		t.Fatal("two renders share a marker nonce")
	}
	rc := Recipient{Name: "Mallory", Email: "mallory@example.com", UnsubscribeURL: "https://news.example.com/u/MALLORY"}
	for part, out := range map[string]string{"HTML": second.HTML(rc), "text": second.Text(rc)} {
		for _, f := range forged {
			if !strings.Contains(out, "Quoting "+f+".") {
				t.Errorf("%s part: content %q was altered", part, f)
			}
		}
		// Exactly as many values as the clean edition has.
		clean := render(t, s, demoEdition(t), demoData)
		cleanOut := map[string]string{"HTML": clean.HTML(rc), "text": clean.Text(rc)}[part]
		for _, v := range []string{"Mallory", "mallory@example.com", "MALLORY"} {
			if got, want := strings.Count(out, v), strings.Count(cleanOut, v); got != want {
				t.Errorf("%s part: %q appears %d times, want %d", part, v, got, want)
			}
		}
	}
	if strings.Contains(second.Subject(), "Mallory") {
		t.Error("the subject was spliced")
	}
}

func TestNonceVariesOutputDoesNot(t *testing.T) {
	s := builtin(t)
	seen := map[string]bool{}
	var html string
	for i := range 5 {
		r := render(t, s, demoEdition(t), demoData)
		if seen[r.nonce] {
			t.Fatalf("nonce %s repeated", r.nonce)
		}
		seen[r.nonce] = true
		if i == 0 {
			html = r.HTML(ada)
		} else if r.HTML(ada) != html {
			t.Fatal("the output depends on the nonce")
		}
	}
}

func TestRecipientCleaning(t *testing.T) {
	f := recipientFields(Recipient{Name: " Ada\r\n  Lovelace ", Email: "ada@example.com"})
	if f.Name != "Ada Lovelace" || f.Greeting != "Hello Ada Lovelace," {
		t.Errorf("%+v", f)
	}
	if f := recipientFields(Recipient{Name: "   "}); f.Greeting != "Hello," {
		t.Errorf("blank name greets %q", f.Greeting)
	}
	if f := recipientFields(Recipient{Name: strings.Repeat("é", 100)}); len(f.Name) > maxNameBytes || !strings.HasPrefix(strings.Repeat("é", 100), f.Name) {
		t.Errorf("long name cut badly: %d bytes", len(f.Name))
	}
	// Clean values are passed through without copying.
	if allocs := testing.AllocsPerRun(100, func() { clean("Ada Lovelace", maxNameBytes) }); allocs != 0 {
		t.Errorf("clean allocates %v times for a clean value", allocs)
	}
}

// TestConcurrentUse is for -race: a Rendered and a Set are shared by every
// sending worker and HTTP handler.
func TestConcurrentUse(t *testing.T) {
	s := builtin(t)
	r := render(t, s, demoEdition(t), demoData)
	want := r.HTML(ada)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			rc := ada
			rc.Name = fmt.Sprint("Reader ", i)
			if r.HTML(ada) != want || !strings.Contains(r.Text(rc), rc.Name) {
				t.Error("concurrent splice differs")
			}
			if _, err := s.RenderEdition(demoEdition(t), demoData); err != nil {
				t.Error(err)
			}
			if err := s.Page(&bytes.Buffer{}, "message.html", MessagePage{Title: "t"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func BenchmarkRenderEdition(b *testing.B) {
	s := builtin(b)
	e := demoEdition(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.RenderEdition(e, demoData); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSpliceRecipient is the per-recipient cost of both parts as
// strings.
func BenchmarkSpliceRecipient(b *testing.B) {
	r := render(b, builtin(b), demoEdition(b), demoData)
	rc := Recipient{Name: "Zoë <Ørsted>", Email: "zoe+news@example.com", UnsubscribeURL: ada.UnsubscribeURL}
	b.ReportAllocs()
	for b.Loop() {
		_ = r.HTML(rc)
		_ = r.Text(rc)
	}
}
