package mailer

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"testing"
	"time"
)

var testDate = time.Date(2025, 11, 13, 6, 30, 0, 0, time.FixedZone("GMT", 0))

func sampleMessage() Message {
	return Message{
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
		FeedbackID:        "2025-11-13:edition:london-daily:news.example.com",
		Headers:           map[string]string{"X-Edition": "2025-11-13", "x-campaign": "Édition du jour"},
	}
}

func render(t testing.TB, m Message) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := BuildTo(&buf, m); err != nil {
		t.Fatalf("BuildTo: %v", err)
	}
	return buf.Bytes()
}

func TestBuildStructure(t *testing.T) {
	m := sampleMessage()
	raw := render(t, m)

	// Wire format: CRLF only, no line over 998 octets (RFC 5322 section 2.1.1).
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i, len(line))
		}
		if len(line) > 78 && !bytes.HasPrefix(line, []byte("List-")) {
			t.Errorf("line %d is %d characters (> 78): %q", i, len(line), line)
		}
	}

	parsed, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("net/mail cannot parse the message: %v", err)
	}
	h := parsed.Header
	exact := map[string]string{
		"Message-Id":            "<20251113.zoe@news.example.com>",
		"Mime-Version":          "1.0",
		"List-Unsubscribe":      "<https://news.example.com/u/one-click?t=abc123>, <mailto:unsubscribe@news.example.com?subject=unsubscribe>",
		"List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
		"List-Id":               "London Daily <london-daily.news.example.com>",
		"Precedence":            "bulk",
		"X-Edition":             "2025-11-13",
	}
	for k, want := range exact {
		if got := h[k]; len(got) != 1 || got[0] != want {
			t.Errorf("%s = %q, want exactly [%q]", k, got, want)
		}
	}
	for _, k := range []string{"User-Agent", "X-Mailer"} {
		if v := h.Get(k); v != "" {
			t.Errorf("unexpected %s: %q", k, v)
		}
	}

	date, err := h.Date()
	if err != nil || !date.Equal(testDate) {
		t.Errorf("Date = %v (%v), want %v", date, err, testDate)
	}

	// RFC 2047: non-ASCII only as encoded-words on the wire, decoding back.
	var dec mime.WordDecoder
	rawSubject := h.Get("Subject")
	if !strings.Contains(rawSubject, "=?UTF-8?") || strings.ContainsFunc(rawSubject, func(r rune) bool { return r > 127 }) {
		t.Errorf("Subject is not RFC 2047 encoded: %q", rawSubject)
	}
	if got, err := dec.DecodeHeader(rawSubject); err != nil || got != m.Subject {
		t.Errorf("Subject decodes to %q (%v), want %q", got, err, m.Subject)
	}
	if got, _ := dec.DecodeHeader(h.Get("X-Campaign")); got != "Édition du jour" {
		t.Errorf("X-Campaign decodes to %q", got)
	}
	if strings.ContainsFunc(h.Get("To"), func(r rune) bool { return r > 127 }) {
		t.Errorf("To has raw non-ASCII: %q", h.Get("To"))
	}
	to, err := h.AddressList("To")
	if err != nil || len(to) != 1 || to[0].Name != m.To.Name || to[0].Address != m.To.Address {
		t.Errorf("To = %v (%v)", to, err)
	}
	from, err := h.AddressList("From")
	if err != nil || len(from) != 1 || *from[0] != *m.From {
		t.Errorf("From = %v (%v)", from, err)
	}

	// MIME structure: multipart/alternative with text/plain then text/html.
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", h.Get("Content-Type"), err)
	}
	mr := multipart.NewReader(parsed.Body, params["boundary"])
	wantParts := []struct{ typ, body string }{
		{"text/plain", m.Text},
		{"text/html", m.HTML},
	}
	for i, want := range wantParts {
		// NextRawPart keeps Content-Transfer-Encoding visible.
		p, err := mr.NextRawPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		pt, pp, err := mime.ParseMediaType(p.Header.Get("Content-Type"))
		if err != nil || pt != want.typ || !strings.EqualFold(pp["charset"], "utf-8") {
			t.Errorf("part %d Content-Type = %q", i, p.Header.Get("Content-Type"))
		}
		if cte := p.Header.Get("Content-Transfer-Encoding"); cte != "quoted-printable" {
			t.Errorf("part %d Content-Transfer-Encoding = %q", i, cte)
		}
		body, err := io.ReadAll(quotedprintable.NewReader(p))
		if err != nil {
			t.Fatalf("part %d: decoding quoted-printable: %v", i, err)
		}
		wantBody := strings.ReplaceAll(want.body, "\n", "\r\n")
		if string(body) != wantBody {
			t.Errorf("part %d body mismatch:\n got %q\nwant %q", i, body, wantBody)
		}
	}
	if _, err := mr.NextRawPart(); err != io.EOF {
		t.Errorf("more than two parts (err %v)", err)
	}
}

func TestBuildDefaultsAndVariants(t *testing.T) {
	m := sampleMessage()
	m.MessageID, m.Date, m.HTML = "", time.Time{}, ""
	m.UnsubscribeURL = "http://localhost:8080/u/abc"
	m.ListID = "london-daily.example.com"
	before := time.Now().Add(-time.Second)
	parsed, err := mail.ReadMessage(bytes.NewReader(render(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	h := parsed.Header
	if id := h.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@news.example.com>") {
		t.Errorf("generated Message-Id = %q", id)
	}
	if d, err := h.Date(); err != nil || d.Before(before) {
		t.Errorf("default Date = %v (%v)", d, err)
	}
	// No HTML: a single text/plain part.
	if mt, _, _ := mime.ParseMediaType(h.Get("Content-Type")); mt != "text/plain" {
		t.Errorf("Content-Type = %q", h.Get("Content-Type"))
	}
	// http is allowed for development and keeps one-click announced.
	if v := h.Get("List-Unsubscribe-Post"); v != "List-Unsubscribe=One-Click" {
		t.Errorf("List-Unsubscribe-Post with an http URL: %q", v)
	}
	if v := h.Get("List-Id"); v != "<london-daily.example.com>" {
		t.Errorf("List-Id = %q", v)
	}

	// Only a mailto.
	m = sampleMessage()
	m.UnsubscribeURL = ""
	h = mustParse(t, m).Header
	if got := h.Get("List-Unsubscribe"); got != "<mailto:unsubscribe@news.example.com?subject=unsubscribe>" || h.Get("List-Unsubscribe-Post") != "" {
		t.Errorf("mailto only: List-Unsubscribe %q, -Post %q", got, h.Get("List-Unsubscribe-Post"))
	}

	// Long URIs fold between the URIs, never inside one.
	m = sampleMessage()
	m.UnsubscribeURL = "https://news.example.com/unsubscribe/one-click?token=" + strings.Repeat("a1b2c3d4", 20)
	raw := render(t, m)
	if !bytes.Contains(raw, []byte(">,\r\n <mailto:")) {
		t.Errorf("long List-Unsubscribe not folded after the comma")
	}
	want := "<" + m.UnsubscribeURL + ">, <" + m.UnsubscribeMailto + ">"
	if got := mustParse(t, m).Header.Get("List-Unsubscribe"); got != want {
		t.Errorf("unfolded List-Unsubscribe = %q, want %q", got, want)
	}

	// Non-ASCII and special characters in the List-Id description.
	for desc, wantRaw := range map[string]string{
		"Londres Quotidien":    "Londres Quotidien <l.example.com>",
		"Daily, \"London\"":    `"Daily, \"London\"" <l.example.com>`,
		"Lündon Daily":         "=?UTF-8?q?L=C3=BCndon_Daily?= <l.example.com>",
		"Lündon (Daily) \\":    "=?UTF-8?q?L=C3=BCndon_=28Daily=29_=5C?= <l.example.com>",
		"  <l.example.com>   ": "<l.example.com>",
	} {
		m = sampleMessage()
		m.ListID = desc + " <l.example.com>"
		if strings.HasPrefix(desc, " ") {
			m.ListID = desc
		}
		if got := mustParse(t, m).Header.Get("List-Id"); got != wantRaw {
			t.Errorf("ListID %q -> %q, want %q", m.ListID, got, wantRaw)
		}
	}
}

func mustParse(t *testing.T, m Message) *mail.Message {
	t.Helper()
	parsed, err := mail.ReadMessage(bytes.NewReader(render(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	return parsed
}

// TestBuildToNames: display names net/mail's Address.String writes as an
// invalid phrase (a non-ASCII name with a bare backslash) still reach the To
// field whole, and the address still reaches the envelope.
func TestBuildToNames(t *testing.T) {
	for _, name := range []string{"Zoë \\ Ørsted", "\x11\\", "Zoë (Editor)", "Zoë", `back\slash`, ""} {
		m := sampleMessage()
		m.To.Name = name
		msg, err := Build(m)
		if err != nil {
			t.Fatalf("%q: %v", name, err)
		}
		// go-mail's form, as for any To it holds.
		if rcpts, err := msg.GetRecipients(); err != nil || len(rcpts) != 1 || rcpts[0] != "<"+m.To.Address+">" {
			t.Errorf("%q: envelope recipients %q (%v), want [<%s>]", name, rcpts, err, m.To.Address)
		}
		parsed := mustParse(t, m)
		if n := len(parsed.Header["To"]); n != 1 {
			t.Fatalf("%q: %d To fields", name, n)
		}
		to, err := parsed.Header.AddressList("To")
		if err != nil || len(to) != 1 || to[0].Name != name || to[0].Address != m.To.Address {
			t.Errorf("%q: To %q parses to %v (%v)", name, parsed.Header.Get("To"), to, err)
		}
	}
}

func TestBuildRejects(t *testing.T) {
	tests := map[string]func(*Message){
		"CR in subject":             func(m *Message) { m.Subject = "Hello\rBcc: victim@example.com" },
		"LF in subject":             func(m *Message) { m.Subject = "Hello\nBcc: victim@example.com" },
		"CRLF in subject":           func(m *Message) { m.Subject = "Hello\r\n\r\nbody" },
		"NUL in subject":            func(m *Message) { m.Subject = "a\x00b" },
		"empty subject":             func(m *Message) { m.Subject = "  " },
		"LF in To name":             func(m *Message) { m.To.Name = "Zoe\nBcc: x@example.com" },
		"CR in From name":           func(m *Message) { m.From.Name = "Daily\r" },
		"From name net/mail breaks": func(m *Message) { m.From.Name = "Lündon \\ Daily" },
		"LF in To address":          func(m *Message) { m.To.Address = "zoe@example.org\nBcc: x@example.com" },
		"bad To address":            func(m *Message) { m.To.Address = "not an address" },
		"nil From":                  func(m *Message) { m.From = nil },
		"nil To":                    func(m *Message) { m.To = nil },
		"LF in URL":                 func(m *Message) { m.UnsubscribeURL = "https://x.example/u\nBcc: y@example.com" },
		"CR in URL":                 func(m *Message) { m.UnsubscribeURL = "https://x.example/u\r" },
		"javascript URL":            func(m *Message) { m.UnsubscribeURL = "javascript:alert(1)" },
		"ftp URL":                   func(m *Message) { m.UnsubscribeURL = "ftp://x.example/u" },
		"relative URL":              func(m *Message) { m.UnsubscribeURL = "/u/abc" },
		"URL with >":                func(m *Message) { m.UnsubscribeURL = "https://x.example/u>, <https://evil.example/" },
		"URL with comma":            func(m *Message) { m.UnsubscribeURL = "https://x.example/u?a=1,2" },
		"URL with space":            func(m *Message) { m.UnsubscribeURL = "https://x.example/u a" },
		"URL with userinfo":         func(m *Message) { m.UnsubscribeURL = "https://user:pw@x.example/u" },
		"mailto not mailto":         func(m *Message) { m.UnsubscribeMailto = "https://x.example/u" },
		"mailto without address":    func(m *Message) { m.UnsubscribeMailto = "mailto:" },
		"mailto with LF":            func(m *Message) { m.UnsubscribeMailto = "mailto:u@example.com\nBcc: x@example.com" },
		"mailto bad address":        func(m *Message) { m.UnsubscribeMailto = "mailto:nobody" },
		"LF in list id":             func(m *Message) { m.ListID = "Daily\n <daily.example.com>" },
		"list id without dot":       func(m *Message) { m.ListID = "Daily <daily>" },
		"list id unterminated":      func(m *Message) { m.ListID = "Daily <daily.example.com" },
		"CRLF in extra value":       func(m *Message) { m.Headers = map[string]string{"X-A": "ok\r\nBcc: x@example.com"} },
		"colon in extra name":       func(m *Message) { m.Headers = map[string]string{"X-A: b": "c"} },
		"LF in extra name":          func(m *Message) { m.Headers = map[string]string{"X-A\nBcc": "c"} },
		"reserved extra":            func(m *Message) { m.Headers = map[string]string{"bcc": "x@example.com"} },
		"reserved content type":     func(m *Message) { m.Headers = map[string]string{"Content-Type": "text/html"} },
		"message id with brackets":  func(m *Message) { m.MessageID = "<a@b.example>" },
		"message id with LF":        func(m *Message) { m.MessageID = "a@b\n.example" },
		"message id without @":      func(m *Message) { m.MessageID = "abc" },
		"no text":                   func(m *Message) { m.Text = "" },
		"invalid UTF-8 body":        func(m *Message) { m.HTML = "\xff\xfe" },
		"unfoldable subject word":   func(m *Message) { m.Subject = strings.Repeat("x", 1000) },
	}
	for name, mutate := range tests {
		t.Run(name, func(t *testing.T) {
			m := sampleMessage()
			from, to := *m.From, *m.To
			m.From, m.To = &from, &to
			mutate(&m)
			msg, err := Build(m)
			if err == nil {
				t.Fatalf("Build accepted it: %v", msg)
			}
			if !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("error does not wrap ErrInvalidMessage: %v", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Errorf("error text contains a line break: %q", err)
			}
			if err := BuildTo(io.Discard, m); err == nil {
				t.Errorf("BuildTo accepted it")
			}
		})
	}
}

// BenchmarkBuildAndWrite measures one recipient's message: ~45 KB HTML and ~15 KB
// text, built and serialised (what happens per subscriber per edition).
func BenchmarkBuildAndWrite(b *testing.B) {
	m := sampleMessage()
	var html strings.Builder
	html.WriteString("<!doctype html><html><body>")
	for html.Len() < 45_000 {
		html.WriteString(`<p style="margin:0 0 16px;font-family:Georgia,serif">Rain over the Thames, café queues on the Strand — the day’s stories in brief.</p>` + "\n")
	}
	html.WriteString("</body></html>")
	var text strings.Builder
	for text.Len() < 15_000 {
		text.WriteString("Rain over the Thames, café queues on the Strand — the day’s stories in brief.\n")
	}
	m.HTML, m.Text = html.String(), text.String()
	b.ReportAllocs()
	b.SetBytes(int64(len(m.HTML) + len(m.Text)))
	for b.Loop() {
		msg, err := Build(m)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := msg.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
	}
}

// A transactional message (a confirmation) is not marked as bulk mail; the
// newsletter is.
func TestTransactionalIsNotBulk(t *testing.T) {
	m := sampleMessage()
	m.UnsubscribeURL, m.UnsubscribeMailto, m.ListID = "", "", ""
	m.Transactional = true
	h, err := mail.ReadMessage(bytes.NewReader(render(t, m)))
	if err != nil {
		t.Fatal(err)
	}
	if v := h.Header.Get("Precedence") + h.Header.Get("X-Auto-Response-Suppress"); v != "" {
		t.Errorf("transactional message marked as bulk: %q", v)
	}
	m.Transactional = false
	if h, _ = mail.ReadMessage(bytes.NewReader(render(t, m))); h.Header.Get("Precedence") != "bulk" {
		t.Errorf("newsletter Precedence = %q, want bulk", h.Header.Get("Precedence"))
	}
}
