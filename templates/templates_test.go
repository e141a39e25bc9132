package templates

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"newsletter/edition"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata from the current templates")

// The demo rendering the golden files hold.
var (
	demoData = EditionData{
		BaseURL: "https://news.example.com/newsletter",
		WebURL:  "https://news.example.com/newsletter/editions/2025-11-13",
	}
	ada = Recipient{
		Name:           "Ada Lovelace",
		Email:          "ada@example.com",
		UnsubscribeURL: "https://news.example.com/newsletter/u/TOKEN",
	}
)

// loaded is the built-in set, loaded once: Load runs every template, and
// most tests only read the set.
var loaded = sync.OnceValues(func() (*Set, error) { return Load("") })

func builtin(t testing.TB) *Set {
	t.Helper()
	s, err := loaded()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func render(t testing.TB, s *Set, e *edition.Edition, d EditionData) *Rendered {
	t.Helper()
	r, err := s.RenderEdition(e, d)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestGolden pins the demo edition's rendering byte for byte, so that any
// change to a template or to the rendering code shows up as a diff in
// review. Run `go test ./templates -update` to accept a change.
func TestGolden(t *testing.T) {
	r := render(t, builtin(t), demoEdition(t), demoData)
	for _, g := range []struct{ file, got string }{
		{"testdata/demo-edition.html", r.HTML(ada)},
		{"testdata/demo-edition.txt", r.Text(ada)},
	} {
		if *update {
			if err := os.WriteFile(g.file, []byte(g.got), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g.file)
		if err != nil {
			t.Fatalf("%v (run go test ./templates -update to create it)", err)
		}
		if g.got != string(want) {
			t.Errorf("%s differs from the rendering (run go test ./templates -update to accept it):\n%s", g.file, firstDiff(string(want), g.got))
		}
	}
	if got, want := r.Subject(), "London Daily: Russia and Belarus hold military drills as migrant crisis on EU border grows"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

// firstDiff shows the first differing line, which is usually enough to see
// what changed.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(wl), len(gl)); i++ {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return "line " + strconv.Itoa(i+1) + ":\nwant: " + w + "\n got: " + g
		}
	}
	return ""
}

func TestDemoHTML(t *testing.T) {
	e := demoEdition(t)
	r := render(t, builtin(t), e, demoData)
	h := r.HTML(ada)

	for _, want := range []string{
		`<html lang="en">`,
		`<meta charset="utf-8">`,
		`<meta name="viewport" content="width=device-width, initial-scale=1">`,
		`<title>London Daily: Russia and Belarus hold military drills`,
		`role="presentation"`,
		`max-width:600px`,
		`London Daily`, `Focus on the big picture.`, `Thursday, 13 November 2025`,
		`<a href="https://news.example.com/newsletter/editions/2025-11-13"`,
		`<a href="https://news.example.com/newsletter/u/TOKEN"`,
		`ada@example.com`,
		`Hello Ada Lovelace,`,
		`You are receiving this because you subscribed to the London Daily newsletter.`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	for _, bad := range []string{"<script", "<link", "@import", "javascript:", "zqNLR"} {
		if strings.Contains(strings.ToLower(h), strings.ToLower(bad)) {
			t.Errorf("HTML contains %q", bad)
		}
	}

	// The preheader: hidden, first, and the start of the first paragraph.
	pre := regexp.MustCompile(`<div style="display:none;max-height:0;[^"]*overflow:hidden;[^"]*">([^<&]*)`).FindStringSubmatch(h)
	if pre == nil {
		t.Fatal("no hidden preheader")
	}
	if pre[1] != preheader(&e.Lead) || !strings.HasPrefix(pre[1], "Russia and Belarus flexed their military might") {
		t.Errorf("preheader %q (want %q)", pre[1], preheader(&e.Lead))
	}
	if n := utf8.RuneCountInString(pre[1]); n > preheaderLen+1 || n < preheaderLen/2 {
		t.Errorf("preheader is %d runes", n)
	}

	// Only the phone-width rule may live in <style>: everything else must
	// be inline, since many clients drop <style>.
	for _, m := range regexp.MustCompile(`(?s)<style>(.*?)</style>`).FindAllStringSubmatch(h, -1) {
		if css := strings.TrimSpace(m[1]); !strings.HasPrefix(css, "@media") || strings.Count(css, "@media") != 1 {
			t.Errorf("<style> holds more than a @media rule: %q", css)
		}
	}

	// Every body block, styled as what it is.
	for _, b := range e.Lead.Body {
		text := string(appendHTMLEscaped(nil, b.Text))
		var want string
		switch b.Kind {
		case edition.Caption:
			want = `<p class="caption" style="[^"]*font-style:italic;[^"]*color:#555555;[^"]*">.*` + regexp.QuoteMeta(text) + `</p>`
		case edition.Heading:
			want = `<h2 class="subhead"[^>]*>` + regexp.QuoteMeta(text) + `</h2>`
		default:
			want = `<p style="[^"]*">` + regexp.QuoteMeta(text) + `</p>`
		}
		if !regexp.MustCompile(want).MatchString(h) {
			t.Errorf("%s %q not rendered as one", b.Kind, b.Text)
		}
	}
	if got := strings.Count(h, `class="caption"`); got != 3 {
		t.Errorf("%d captions, want 3", got)
	}
	if !strings.Contains(h, `<a href="`+e.Lead.URL+`" style="color:#1f1f1f;text-decoration:none;">`+string(appendHTMLEscaped(nil, e.Lead.Title))+`</a></h1>`) {
		t.Error("the headline isn't linked to the story")
	}
	for _, st := range e.Related {
		if st.URL == "" {
			t.Fatalf("related %q has no link: the demo should have them all linked", st.Title)
		}
		want := `<li style="margin:0 0 10px;"><a href="` + st.URL + `" style="color:#0b57d0;text-decoration:underline;">` + string(appendHTMLEscaped(nil, st.Title)) + `</a></li>`
		if !strings.Contains(h, want) {
			t.Errorf("related headline %q missing", st.Title)
		}
	}
	// And without a link, a headline is plain text.
	e.Related = []edition.Story{{Title: "No link & no URL"}}
	if h := render(t, builtin(t), e, demoData).HTML(ada); !strings.Contains(h, `<li style="margin:0 0 10px;">No link &amp; no URL</li>`) {
		t.Error("an unlinked related headline isn't plain text")
	}
}

func TestDemoText(t *testing.T) {
	e := demoEdition(t)
	r := render(t, builtin(t), e, demoData)
	txt := r.Text(ada)

	for _, want := range []string{
		"London Daily\nFocus on the big picture.\nThursday, 13 November 2025\n",
		"View in browser: https://news.example.com/newsletter/editions/2025-11-13\n",
		"Hello Ada Lovelace,\n",
		"Russia and Belarus hold military drills as migrant crisis on EU border\ngrows\n" + strings.Repeat("=", 70) + "\n",
		"'This will not succeed'\n-----------------------\n",
		"The human cost\n--------------\n",
		"Related headlines\n-----------------\n",
		"This email was sent to ada@example.com.\n",
		"Unsubscribe: https://news.example.com/newsletter/u/TOKEN\n",
	} {
		if !strings.Contains(txt, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(txt, "<") || strings.Contains(txt, "&#") || strings.Contains(txt, "&amp;") {
		t.Error("text part has HTML in it")
	}
	checkLines(t, txt, 78)

	// Compare as text with whitespace collapsed, since wrapping moves the
	// line breaks.
	flat := oneLine(txt)
	if got := strings.Count(flat, "[Photo: "); got != 3 {
		t.Errorf("%d captions, want 3", got)
	}
	for _, b := range e.Lead.Body {
		want := b.Text
		if b.Kind == edition.Caption {
			want = "[Photo: " + want + "]"
		}
		if !strings.Contains(flat, want) {
			t.Errorf("%s %q missing", b.Kind, b.Text)
		}
	}
	if len(e.Related) != 50 {
		t.Fatalf("%d related headlines", len(e.Related))
	}
	for _, st := range e.Related {
		// The URL on a line of its own, unbroken, under the title.
		if !strings.Contains(flat, "- "+st.Title+" "+st.URL) || !strings.Contains(txt, "\n  "+st.URL+"\n") {
			t.Errorf("related headline %q missing", st.Title)
		}
	}
	if !strings.Contains(txt, "\nRead the full story: "+e.Lead.URL+"\n") && !strings.Contains(txt, "\nRead the full story:\n") {
		t.Error("no link to the full story")
	}
}

// checkLines checks the plain-text limits: RFC 5322's 998 octets always,
// and width columns for prose, that is for lines without a URL: a URL is
// never broken, so a long one makes a long line.
func checkLines(t *testing.T, txt string, width int) {
	t.Helper()
	if !utf8.ValidString(txt) {
		t.Error("text part is not valid UTF-8")
	}
	for i, line := range strings.Split(txt, "\n") {
		if len(line) > 998 {
			t.Errorf("line %d is %d bytes", i+1, len(line))
		}
		if width > 0 && utf8.RuneCountInString(line) > width && !hasURL(line) {
			t.Errorf("line %d is %d columns: %q", i+1, utf8.RuneCountInString(line), line)
		}
	}
}

func hasURL(line string) bool {
	for _, f := range strings.Fields(line) {
		if strings.HasPrefix(f, "https://") || strings.HasPrefix(f, "http://") {
			return true
		}
	}
	return false
}

// hostile is an edition written by an attacker who controls the news page.
func hostile() *edition.Edition {
	return &edition.Edition{
		Date: time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC),
		Site: edition.Site{Name: `Daily <script>alert("site")</script>`, Tagline: `"><img src=x onerror=alert(1)>`, URL: "javascript:alert('site')"},
		Lead: edition.Story{
			Title: `<script>alert(1)</script>`,
			URL:   "JaVaScRiPt:alert(1)",
			Body: []edition.Block{
				{Kind: edition.Paragraph, Text: `"><img src=x onerror=alert(1)>`},
				{Kind: edition.Caption, Text: `</p><script>alert(2)</script>`},
				{Kind: edition.Heading, Text: `<style>body{display:none}</style>`},
			},
		},
		Related: []edition.Story{
			{Title: `<b onmouseover="alert(3)">bold</b>`, URL: "javascript:alert(3)"},
			{Title: "tab", URL: "java\tscript:alert(4)"},
			{Title: "space", URL: " javascript:alert(5)"},
			{Title: "data", URL: "data:text/html;base64,PHNjcmlwdD5hbGVydCg2KTwvc2NyaXB0Pg=="},
			{Title: "vbscript", URL: "vbscript:msgbox(7)"},
			{Title: "fine", URL: "https://news.example.com/ok?a=1&b=2"},
		},
	}
}

// noActiveContent checks that nothing from hostile() became markup or a
// live link.
func noActiveContent(t *testing.T, what, h string) {
	t.Helper()
	lower := strings.ToLower(h)
	for _, bad := range []string{"<script", "<img", "<b ", "<style>body", "onmouseover=\""} {
		if strings.Contains(lower, bad) {
			t.Errorf("%s contains %q", what, bad)
		}
	}
	for _, m := range regexp.MustCompile(`(?i)href\s*=\s*"([^"]*)"`).FindAllStringSubmatch(h, -1) {
		u := strings.ToLower(strings.Join(strings.Fields(m[1]), ""))
		if !strings.HasPrefix(u, "https://") && !strings.HasPrefix(u, "#") {
			t.Errorf("%s has a link to %q", what, m[1])
		}
	}
	for _, bad := range []string{"javascript:", "vbscript:", "data:text"} {
		if strings.Contains(strings.ReplaceAll(lower, "\t", ""), bad) {
			t.Errorf("%s contains %q", what, bad)
		}
	}
	if !strings.Contains(h, "&lt;script&gt;alert(1)&lt;/script&gt;") || !strings.Contains(h, "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;") {
		t.Errorf("%s doesn't show the hostile text escaped", what)
	}
}

func TestEscaping(t *testing.T) {
	s := builtin(t)
	r := render(t, s, hostile(), demoData)
	noActiveContent(t, "HTML part", r.HTML(ada))
	if !strings.Contains(r.HTML(ada), `<a href="https://news.example.com/ok?a=1&amp;b=2"`) {
		t.Error("a safe link was lost")
	}
	var web bytes.Buffer
	if err := s.WebEdition(&web, hostile(), demoData); err != nil {
		t.Fatal(err)
	}
	noActiveContent(t, "web edition", web.String())

	// Unsafe links are dropped from the plain text too: it has no
	// escaping, and some clients make URLs clickable.
	txt := strings.ToLower(r.Text(ada))
	for _, bad := range []string{"javascript:", "java\tscript:", "vbscript:", "data:text"} {
		if strings.Contains(txt, bad) {
			t.Errorf("text part contains %q", bad)
		}
	}
	if !strings.Contains(r.Text(ada), "<script>alert(1)</script>\n") {
		t.Error("text part should carry the title as the plain text it is")
	}
	if strings.ContainsAny(r.Subject(), "\r\n") {
		t.Error("subject has a line break")
	}
}

// TestEscapingByHTMLTemplate checks the second line of defence: if a
// javascript: URL reached the templates, html/template's URL filter would
// still make the link dead.
func TestEscapingByHTMLTemplate(t *testing.T) {
	s := builtin(t)
	e := hostile()
	v := View{Edition: e, EditionData: demoData, SiteName: e.Site.Name, DateText: longDate(e.Date)} // URLs not cleaned
	v.Recipient = recipientFields(ada)
	var b bytes.Buffer
	if err := s.emailHTML.ExecuteTemplate(&b, s.name[fileEmailHTML], v); err != nil {
		t.Fatal(err)
	}
	h := b.String()
	if !strings.Contains(h, `href="#ZgotmplZ"`) {
		t.Error("no #ZgotmplZ: html/template didn't see the javascript: links?")
	}
	if regexp.MustCompile(`(?i)href="\s*(java|vb)`).MatchString(h) {
		t.Error("a script link survived html/template")
	}
}

func TestSubject(t *testing.T) {
	s := builtin(t)
	e := demoEdition(t)
	e.Site.Name = "London\r\nDaily"
	e.Lead.Title = "  Two\nlines\r\nBcc: evil@example.com  "
	r := render(t, s, e, demoData)
	if got, want := r.Subject(), "London Daily: Two lines Bcc: evil@example.com"; got != want {
		t.Errorf("subject %q, want %q", got, want)
	}
}

func TestPreheader(t *testing.T) {
	for _, c := range []struct {
		lead edition.Story
		want string
	}{
		{edition.Story{Title: "T", Body: []edition.Block{{Kind: edition.Caption, Text: "A caption."}, {Kind: edition.Paragraph, Text: "Short first\nparagraph."}}}, "Short first paragraph."},
		{edition.Story{Title: "T", Summary: "The summary."}, "The summary."},
		{edition.Story{Title: "Only a title"}, "Only a title"},
		{edition.Story{Body: []edition.Block{{Kind: edition.Paragraph, Text: strings.Repeat("word ", 40)}}}, strings.TrimSpace(strings.Repeat("word ", 20)) + "…"},
	} {
		if got := preheader(&c.lead); got != c.want {
			t.Errorf("preheader(%+v) = %q, want %q", c.lead, got, c.want)
		}
	}
}

func TestDefaultReasonAndOptionalParts(t *testing.T) {
	s := builtin(t)
	e := demoEdition(t)
	r := render(t, s, e, EditionData{Reason: "You asked for it.", PostalAddress: "1 Fleet Street, London EC4A 1AA"})
	h, txt := r.HTML(ada), r.Text(ada)
	for _, part := range []string{h, txt} {
		if !strings.Contains(part, "You asked for it.") || !strings.Contains(part, "1 Fleet Street, London EC4A 1AA") {
			t.Error("reason or postal address missing")
		}
		if strings.Contains(part, "View in browser") {
			t.Error("a view-in-browser link without a WebURL")
		}
	}
}

func TestLongContentLineLimits(t *testing.T) {
	s := builtin(t)
	e := demoEdition(t)
	longURL := "https://news.example.com/" + strings.Repeat("a", 950)
	e.Lead.URL = longURL
	e.Lead.Body = append(e.Lead.Body,
		edition.Block{Kind: edition.Paragraph, Text: "before " + strings.Repeat("x", 5000) + " after"},
		edition.Block{Kind: edition.Paragraph, Text: strings.Repeat("é", 3000)},
		edition.Block{Kind: edition.Caption, Text: strings.Repeat("y", 2000)},
		edition.Block{Kind: edition.Heading, Text: strings.Repeat("z", 1000)},
	)
	e.Related = append(e.Related, edition.Story{Title: strings.Repeat("w", 1200), URL: "https://news.example.com/" + strings.Repeat("u", 3000)})
	e.Site.Name = strings.Repeat("S", 1500)
	rc := ada
	rc.Name = strings.Repeat("N", 5000)
	txt := render(t, s, e, demoData).Text(rc)
	checkLines(t, txt, 0)
	// A URL that fits is never broken, even when longer than a line.
	mid := "https://news.example.com/" + strings.Repeat("m", 120)
	e.Related = []edition.Story{{Title: "Long link", URL: mid}}
	if txt := render(t, s, e, demoData).Text(ada); !strings.Contains(txt, "\n  "+mid+"\n") {
		t.Error("a 145-character URL was broken")
	}
}

func TestOverrides(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, body := range files {
			p := filepath.Join(dir, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}

	t.Run("replaces", func(t *testing.T) {
		dir := write(t, map[string]string{
			"email/subject.txt": "{{.Site.Name}} for {{.DateText}}\n",
			".git/config":       "not a template",
			"email/.swp":        "editor file",
		})
		s, err := Load(dir)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := render(t, s, demoEdition(t), demoData).Subject(), "London Daily for Thursday, 13 November 2025"; got != want {
			t.Errorf("subject %q, want %q", got, want)
		}
		// The rest is still built in.
		if got := render(t, s, demoEdition(t), demoData).HTML(ada); got != render(t, builtin(t), demoEdition(t), demoData).HTML(ada) {
			t.Error("the HTML changed with only the subject overridden")
		}
	})

	t.Run("empty dir", func(t *testing.T) {
		if _, err := Load(t.TempDir()); err != nil {
			t.Fatal(err)
		}
	})

	for _, c := range []struct {
		name  string
		files map[string]string
		want  []string // in the error
	}{
		{"unknown file", map[string]string{"email/subjet.txt": "x"}, []string{"subjet.txt", "unknown template file"}},
		{"unknown dir", map[string]string{"mail/subject.txt": "x"}, []string{filepath.Join("mail", "subject.txt")}},
		{"parse error", map[string]string{"email/subject.txt": "{{.Site.Name"}, []string{filepath.Join("email", "subject.txt")}},
		{"missing field", map[string]string{"email/edition.txt": "{{.Site.Nmae}}"}, []string{filepath.Join("email", "edition.txt"), "Nmae"}},
		{"missing field in a branch", map[string]string{"email/edition.txt": "{{if .PostalAddress}}{{.PostalAdress}}{{end}}"}, []string{"edition.txt", "PostalAdress"}},
		{"missing field in shared content", map[string]string{"email/content.html": `{{define "lead"}}{{.Lead.Titel}}{{end}}{{define "related"}}{{end}}`}, []string{filepath.Join("email", "content.html"), "Titel"}},
		{"missing field in a page", map[string]string{"web/unsubscribe.html": `{{template "base" .}}{{define "title"}}x{{end}}{{define "main"}}{{if .Done}}{{.Resubscribe}}{{end}}{{end}}`}, []string{filepath.Join("web", "unsubscribe.html"), "Resubscribe"}},
		{"undefined template", map[string]string{"web/message.html": `{{template "bass" .}}`}, []string{filepath.Join("web", "message.html"), "bass"}},
		{"recipient in subject", map[string]string{"email/subject.txt": "{{.Recipient.Name}}, {{.Lead.Title}}"}, []string{"subject.txt", "subject"}},
		{"recipient in a script", map[string]string{"email/edition.html": `<script>var n = "{{.Recipient.Name}}";</script>`}, []string{"edition.html", "Name", "script"}},
		{"recipient in a style", map[string]string{"email/edition.html": `<p style="font-family: {{.Recipient.Name}}">x</p>`}, []string{"edition.html", "Name"}},
		{"recipient in an unquoted attribute", map[string]string{"email/edition.html": `<p title={{.Recipient.Name}}>x</p>`}, []string{"edition.html", "Name"}},
		{"recipient through a function", map[string]string{"email/edition.txt": `{{printf "%q" .Recipient.Email}}`}, []string{"edition.txt", "Email"}},
		{"recipient wrapped", map[string]string{"email/edition.txt": `{{wrap 10 .Recipient.Greeting}}`}, []string{"edition.txt", "Greeting"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := write(t, c.files)
			_, err := Load(dir)
			if err == nil {
				t.Fatal("Load succeeded")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q doesn't mention %q", err, w)
				}
			}
			if !strings.Contains(err.Error(), dir) {
				t.Errorf("error %q doesn't name the override directory", err)
			}
		})
	}

	t.Run("missing dir", func(t *testing.T) {
		_, err := Load(filepath.Join(t.TempDir(), "nope"))
		if err == nil || !strings.Contains(err.Error(), EnvVar) {
			t.Errorf("error %v doesn't name %s", err, EnvVar)
		}
	})
	t.Run("not a dir", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o644)
		if _, err := Load(f); err == nil || !strings.Contains(err.Error(), EnvVar) {
			t.Errorf("error %v doesn't name %s", err, EnvVar)
		}
	})
}

func TestDefaultsAreOverridable(t *testing.T) {
	// Copying every built-in file into an override directory is the
	// documented way to start customising, so it must load.
	dir := t.TempDir()
	if err := os.CopyFS(dir, embedded); err != nil {
		t.Fatal(err)
	}
	s, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if render(t, s, demoEdition(t), demoData).HTML(ada) != render(t, builtin(t), demoEdition(t), demoData).HTML(ada) {
		t.Error("a copy of the defaults renders differently")
	}
}

func TestPages(t *testing.T) {
	s := builtin(t)
	page := func(name string, data any) string {
		t.Helper()
		var b bytes.Buffer
		if err := s.Page(&b, name, data); err != nil {
			t.Fatal(err)
		}
		h := b.String()
		for _, want := range []string{`<html lang="en">`, `<meta charset="utf-8">`, `name="viewport"`, `<title>`, `<main id="main">`, `:focus-visible`} {
			if !strings.Contains(h, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
		if strings.Contains(strings.ToLower(h), "<script") {
			t.Errorf("%s has a script", name)
		}
		return h
	}

	h := page("unsubscribe.html", UnsubscribePage{SiteName: "London Daily", Action: "/newsletter/u/TOKEN", MaskedEmail: MaskEmail("ada@example.com")})
	for _, want := range []string{
		`Unsubscribe a***@example.com from London Daily?`,
		`<form method="post" action="/newsletter/u/TOKEN">`,
		`<input type="hidden" name="List-Unsubscribe" value="One-Click">`,
		`<button type="submit">Unsubscribe</button>`,
		`<meta name="robots" content="noindex">`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("unsubscribe page lacks %q", want)
		}
	}
	if strings.Contains(h, "ada@") {
		t.Error("unsubscribe page shows the address")
	}
	h = page("unsubscribe.html", UnsubscribePage{SiteName: "London Daily", Done: true})
	if !strings.Contains(h, "You are unsubscribed") || !strings.Contains(h, "You will not receive further editions") || strings.Contains(h, "<form") {
		t.Error("the done page is wrong")
	}

	h = page("message.html", MessagePage{SiteName: "London Daily", Title: "This link is not valid", Message: "It may have expired <or> been mistyped."})
	if !strings.Contains(h, "<h1>This link is not valid</h1>") || !strings.Contains(h, "expired &lt;or&gt; been") {
		t.Error("message page is wrong")
	}

	d := time.Date(2025, 11, 13, 0, 0, 0, 0, time.UTC)
	h = page("archive.html", ArchivePage{SiteName: "London Daily", BaseURL: "https://news.example.com/newsletter", Editions: []ArchiveEntry{
		{Date: d, Title: "Russia & Belarus"},
		{Date: d.AddDate(0, 0, -1), Title: "Yesterday"},
	}})
	for _, want := range []string{
		`<time datetime="2025-11-13">Thursday, 13 November 2025</time> <a href="https://news.example.com/newsletter/editions/2025-11-13">Russia &amp; Belarus</a>`,
		`<a href="https://news.example.com/newsletter/editions/2025-11-12">Yesterday</a>`,
	} {
		if !strings.Contains(h, want) {
			t.Errorf("archive lacks %q", want)
		}
	}
	if h := page("archive.html", ArchivePage{SiteName: "London Daily", Editions: []ArchiveEntry{{Date: d, Title: "T"}}}); !strings.Contains(h, `href="/editions/2025-11-13"`) {
		t.Error("archive links with no BaseURL aren't root-relative")
	}

	var b bytes.Buffer
	if err := s.WebEdition(&b, demoEdition(t), demoData); err != nil {
		t.Fatal(err)
	}
	h = b.String()
	e := demoEdition(t)
	for _, want := range []string{"<title>" + e.Lead.Title + " – London Daily</title>", "Thursday, 13 November 2025", "Related headlines", `class="caption"`, string(appendHTMLEscaped(nil, e.Related[49].Title))} {
		if !strings.Contains(h, want) {
			t.Errorf("web edition lacks %q", want)
		}
	}
	for _, personal := range []string{"Hello", "Unsubscribe", "sent to", "zqNLR"} {
		if strings.Contains(h, personal) {
			t.Errorf("web edition has %q in it", personal)
		}
	}
	if got := page("edition.html", newView(e, demoData)); got != h {
		t.Error(`Page("edition.html") and WebEdition differ`)
	}

	b.Reset()
	if err := s.Page(&b, "base.html", MessagePage{}); err == nil {
		t.Error("the layout rendered as a page")
	}
	if err := s.Page(&b, "message.html", 42); err == nil {
		t.Error("a page rendered with the wrong data")
	}
	if b.Len() != 0 {
		t.Error("a failed page wrote output")
	}
}

func TestMaskEmail(t *testing.T) {
	for in, want := range map[string]string{
		"ada@example.com":       "a***@example.com",
		"Ørsted@example.dk":     "Ø***@example.dk",
		"a@b":                   "a***@b",
		"no-at-sign":            "***",
		"@example.com":          "***",
		`"odd@local"@example.c`: `"***@example.c`,
	} {
		if got := MaskEmail(in); got != want {
			t.Errorf("MaskEmail(%q) = %q, want %q", in, got, want)
		}
	}
}
