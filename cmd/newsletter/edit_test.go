package main

import (
	"bytes"
	"encoding/json"
	"net/mail"
	"strings"
	"testing"
	"time"
)

// editState is what a refused edit must leave as it was: the editions with
// their edits, and the audit record.
func (h *harness) editState() string {
	h.t.Helper()
	var s string
	err := h.db.Get(&s, `SELECT concat_ws(' | ',
		(SELECT string_agg(concat_ws(' ', date, md5(content::text), subject, preheader, related_order::text, edited_at, send_started_at), ', ' ORDER BY date) FROM editions),
		(SELECT count(*) FROM audit_log))`)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// relatedTitles are the related headlines of an API edition, in order.
func relatedTitles(ed map[string]any) []string {
	var out []string
	for _, r := range ed["related"].([]any) {
		out = append(out, r.(map[string]any)["title"].(string))
	}
	return out
}

// inOrder tells whether each of want appears in s, one after the other.
func inOrder(s string, want ...string) bool {
	for _, w := range want {
		i := strings.Index(s, w)
		if i < 0 {
			return false
		}
		s = s[i+len(w):]
	}
	return true
}

// Editing an edition before its send, from the command line and over the
// API: the preview and the mail sent carry the edited subject, preheader
// and headlines; a bad value is refused naming its field, and once the send
// started every edit is refused, each leaving PostgreSQL as it was.
func TestEditEdition(t *testing.T) {
	h := newHarness(t)
	h.setup()
	orig := passwordInput
	t.Cleanup(func() { passwordInput = orig })
	passwordInput = strings.NewReader("a long enough password\n")
	h.must("editors", "add", "ed@news.example", "--role", "editor")
	out := strings.TrimSpace(h.must("editors", "token", "ed@news.example", "--name", "cms"))
	token := out[strings.LastIndex(out, "\n")+1:]
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	base, _ := h.serve(t)
	c := &apiClient{t: t, base: base}

	ed := c.json(200, "GET", "/editions/2025-11-13", token, "", "")
	heads := relatedTitles(ed)
	if len(heads) < 3 || ed["preheader"] == "" || ed["edited_subject"] != false {
		t.Fatalf("the seed edition: %v", ed)
	}
	show := h.must("edition", "show", "2025-11-13")
	for i, want := range []string{"   0  " + heads[0], "   1  " + heads[1], "   2  " + heads[2], "preheader: " + ed["preheader"].(string)} {
		if !strings.Contains(show, want) {
			t.Errorf("edition show lacks %d %q:\n%s", i, want, show)
		}
	}

	// The command line: a new subject, the third headline first, then the
	// first; the rest dropped.
	show = h.must("edition", "edit", "2025-11-13", "--subject", "Storm warning: what to expect", "--related", "2,0")
	for _, want := range []string{"subject:   Storm warning: what to expect (edited)", "related:   2 (edited)", "   0  " + heads[2], "   1  " + heads[0]} {
		if !strings.Contains(show, want) {
			t.Errorf("edition edit printed no %q:\n%s", want, show)
		}
	}

	before := h.editState()
	for _, c := range []struct {
		args  []string
		field string
	}{
		{[]string{"--subject", ""}, "subject: "},
		{[]string{"--subject", "two\nlines"}, "subject: "},
		{[]string{"--preheader", strings.Repeat("x", 251)}, "preheader: "},
		{[]string{"--related", "0,5"}, "related: "},
		{[]string{"--related", "1,1"}, "related: "},
	} {
		code, _, errs := h.run(append([]string{"edition", "edit", "2025-11-13"}, c.args...)...)
		if code != 1 || !strings.Contains(errs, c.field) {
			t.Errorf("edition edit %q: exit %d, %q; want the field %q named", c.args, code, errs, c.field)
		}
	}
	if code, _, _ := h.run("edition", "edit", "2025-11-13", "--related", "one"); code != 2 {
		t.Errorf("--related one: exit %d, want a usage error", code)
	}
	// Over the API, with the error's field.
	for body, field := range map[string]string{
		`{"subject": "Bcc: x\r\nTo: y"}`:      "subject",
		`{"subject": "   "}`:                  "subject",
		`{"preheader": "tab\there"}`:          "preheader",
		`{"related": [0, 0]}`:                 "related",
		`{"related": [-1]}`:                   "related",
		`{"subject": "fine", "related": [2]}`: "related",
		`{"sbject": "misspelt"}`:              "body",
		`{}`:                                  "body",
	} {
		code, b, _ := c.call("PATCH", "/editions/2025-11-13", token, "application/json", body)
		var e struct {
			Error struct{ Code, Message, Field string }
		}
		if code != 400 || json.Unmarshal(b, &e) != nil || e.Error.Code != "invalid" || e.Error.Field != field || e.Error.Message == "" {
			t.Errorf("PATCH %s: %d %s; want 400 invalid on the field %q", body, code, b, field)
		}
	}
	c.refused(401, "unauthorized", "PATCH", "/editions/2025-11-13", "", "application/json", `{"subject": "x"}`)
	c.refused(415, "unsupported_media_type", "PATCH", "/editions/2025-11-13", token, "text/plain", `{"subject": "x"}`)
	c.refused(404, "not_found", "PATCH", "/editions/2025-11-12", token, "application/json", `{"subject": "x"}`)
	if after := h.editState(); after != before {
		t.Fatalf("refused edits changed PostgreSQL:\nbefore %s\nafter  %s", before, after)
	}

	// The API: swap the two left and set the preheader.
	ed = c.json(200, "PATCH", "/editions/2025-11-13", token, "application/json", `{"preheader": "Before the nine o'clock briefing", "related": [1, 0]}`)
	if got := relatedTitles(ed); len(got) != 2 || got[0] != heads[0] || got[1] != heads[2] ||
		ed["subject"] != "Storm warning: what to expect" || ed["preheader"] != "Before the nine o'clock briefing" {
		t.Fatalf("PATCH answered %v", ed)
	}

	// The preview is what the edit made.
	_, html, _ := c.call("GET", "/editions/2025-11-13/preview?format=html", token, "", "")
	_, text, _ := c.call("GET", "/editions/2025-11-13/preview?format=text", token, "", "")
	_, eml, _ := c.call("GET", "/editions/2025-11-13/preview?format=eml", token, "", "")
	htmlEsc := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "'", "&#39;"), "&", "&amp;") }
	if !inOrder(string(html), "Before the nine o&#39;clock briefing", htmlEsc(heads[0]), htmlEsc(heads[2])) || strings.Contains(string(html), htmlEsc(heads[1])) {
		t.Errorf("the HTML preview lacks the edits:\n%s", html)
	}
	// The text part wraps lines: compare with whitespace collapsed.
	if flat := strings.Join(strings.Fields(string(text)), " "); !inOrder(flat, heads[0], heads[2]) || strings.Contains(flat, heads[1]) {
		t.Errorf("the text preview lacks the edits:\n%s", text)
	}
	if m, err := mail.ReadMessage(bytes.NewReader(eml)); err != nil || m.Header.Get("Subject") != "Storm warning: what to expect" {
		t.Errorf("the eml preview's subject: %v, %v", m, err)
	}

	// The same page again keeps the edits.
	if code, _, errs := h.run("edition", "import", seedPath, "--site-url", "https://london-daily.example"); code != 0 ||
		!strings.Contains(errs, "edition unchanged") || strings.Contains(errs, "discarded") {
		t.Errorf("re-import: exit %d, %s", code, errs)
	}
	if ed := c.json(200, "GET", "/editions/2025-11-13", token, "", ""); ed["subject"] != "Storm warning: what to expect" || len(relatedTitles(ed)) != 2 {
		t.Errorf("the re-import lost the edits: subject %v, related %q", ed["subject"], relatedTitles(ed))
	}

	// The send carries them, and freezes them.
	h.must("send", "--date", "2025-11-13")
	msgs := h.smtp.WaitFor(t, len(confirmedAddrs), 30*time.Second)
	hd, parts := checkMessageParts(t, msgs[0].Data, false)
	if hd.Get("Subject") != "Storm warning: what to expect" {
		t.Errorf("the mail sent has the Subject %q", hd.Get("Subject"))
	}
	if sent := parts["text/html"]; !inOrder(sent, "Before the nine o&#39;clock briefing", htmlEsc(heads[0]), htmlEsc(heads[2])) || strings.Contains(sent, htmlEsc(heads[1])) {
		t.Errorf("the mail's HTML lacks the edits:\n%s", sent)
	}
	if sent := strings.Join(strings.Fields(parts["text/plain"]), " "); !inOrder(sent, heads[0], heads[2]) || strings.Contains(sent, heads[1]) {
		t.Errorf("the mail's text lacks the edits:\n%s", sent)
	}
	before = h.editState()
	c.refused(409, "conflict", "PATCH", "/editions/2025-11-13", token, "application/json", `{"subject": "Too late"}`)
	if code, _, errs := h.run("edition", "edit", "2025-11-13", "--related", "0"); code != 1 || !strings.Contains(errs, "can no longer be edited") {
		t.Errorf("edition edit after the send: exit %d, %q", code, errs)
	}
	if after := h.editState(); after != before {
		t.Fatalf("refused edits changed PostgreSQL:\nbefore %s\nafter  %s", before, after)
	}
	audit := h.must("audit")
	for _, want := range []string{`edit	2025-11-13	subject "Storm warning: what to expect"; related headlines [2,0] of `,
		`related headlines [1,0] of 2 shown (0 dropped)`, `token cms; preheader "Before the nine o'clock briefing"`} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit record lacks %q:\n%s", want, audit)
		}
	}
}

// Other content for an edited edition replaces it and discards the edits,
// and says so.
func TestEditDiscardedByReimport(t *testing.T) {
	h := newHarness(t)
	h.setup()
	before := h.must("edition", "show", "2025-11-13", "--json")
	h.must("edition", "edit", "2025-11-13", "--subject", "Edited", "--related", "")
	code, _, errs := h.run("edition", "import", h.file("changed.json", strings.Replace(before, `"title":"`, `"title":"Corrected: `, 1)))
	if code != 0 || !strings.Contains(errs, "discarded the editor's edits") {
		t.Fatalf("import of other content: exit %d, %q", code, errs)
	}
	show := h.must("edition", "show", "2025-11-13")
	if strings.Contains(show, "Edited") || strings.Contains(show, "(edited)") || !strings.Contains(show, "Corrected: ") {
		t.Errorf("after the import:\n%s", show)
	}
}
