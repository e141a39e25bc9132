package mailer

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"newsletter/internal/rendertest"
	"newsletter/templates"
)

func demo(t testing.TB) *templates.Rendered { return rendertest.Demo(t) }

func renderCustom(t testing.TB, paras ...string) *templates.Rendered {
	return rendertest.Custom(t, paras...)
}

func prepareInput(r *templates.Rendered) PrepareInput {
	html, text := r.Parts()
	return PrepareInput{
		From:              &mail.Address{Name: "London Daily", Address: "daily@news.example.com"},
		Subject:           r.Subject(),
		ListID:            "London Daily <london-daily.news.example.com>",
		UnsubscribeMailto: "mailto:unsubscribe@news.example.com?subject=unsubscribe",
		UnsubscribeDomain: "bounces.news.example.com",
		FeedbackID:        FeedbackID("2025-11-13", "edition", "london-daily", "news.example.com"),
		Headers:           map[string]string{"X-Edition": "2025-11-13", "x-campaign": "Édition du jour"},
		Text:              text,
		HTML:              html,
	}
}

func mustPrepare(t testing.TB, in PrepareInput) *Prepared {
	t.Helper()
	p, err := Prepare(in)
	if err != nil {
		t.Fatalf("Prepare: %v", err)
	}
	return p
}

// buildEquivalent is the Message Build gets for the same recipient.
func buildEquivalent(in PrepareInput, r *templates.Rendered, rc Recipient) Message {
	trc := templates.Recipient{Name: rc.Name, Email: rc.Email, UnsubscribeURL: rc.UnsubscribeURL}
	m := Message{
		From: in.From, To: &mail.Address{Name: rc.Name, Address: rc.Email},
		Subject: in.Subject, Text: r.Text(trc), MessageID: rc.MessageID, Date: rc.Date,
		ListID: in.ListID, UnsubscribeURL: rc.UnsubscribeURL, UnsubscribeMailto: in.UnsubscribeMailto,
		Headers: in.Headers, FeedbackID: in.FeedbackID,
	}
	if rc.UnsubscribeToken != "" && in.UnsubscribeDomain != "" {
		m.UnsubscribeMailto = UnsubscribeMailtoFor(in.UnsubscribeDomain, rc.UnsubscribeToken)
	}
	if !in.HTML.IsZero() {
		m.HTML = r.HTML(trc)
	}
	return m
}

var testRecipients = []Recipient{
	{Name: "Ada Lovelace", Email: "ada@example.com", MessageID: "20251113.1@news.example.com", UnsubscribeURL: "https://news.example.com/newsletter/u/Xy3_-kQ9zR2mN8pL4vB7cD1eF6gH0jK5tU2wA9sE3qY", UnsubscribeToken: "Xy3_-kQ9zR2mN8pL4vB7cD1eF6gH0jK5tU2wA9sE3qY"},
	{Name: "", Email: "nobody@example.com", MessageID: "20251113.2@news.example.com", UnsubscribeURL: "https://news.example.com/u/x"},
	{Name: "Zoë Ångström-Łukasiewicz", Email: "zoe@example.org", MessageID: "a.b-c_d+e@news.example.com", UnsubscribeURL: "https://news.example.com/u/z?t=1&x=2"},
	{Name: `O'Brien <&"'+=.> \ Jr.`, Email: "o'brien+news@example.com", MessageID: "x@y", UnsubscribeURL: "https://news.example.com/u/a+b&c=d;e"},
	{Name: "山田 太郎 🙂 (Tokyo), \"quoted\"", Email: "yamada@example.jp", MessageID: "y@z", UnsubscribeURL: "http://localhost:8080/u/%41%42"},
	{Name: ".Dot Leading", Email: "dot@example.com", MessageID: "d@e", UnsubscribeURL: "https://news.example.com/u/" + strings.Repeat("long-", 120)},
	{Name: strings.Repeat("Ω", 200), Email: "long@example.com", MessageID: "l@m", UnsubscribeToken: "only-a-token"},
	{Name: strings.Repeat("averyveryverylongbutasciiname ", 5), Email: "ascii-long@" + strings.Repeat("sub.", 40) + "example.com", MessageID: "n@o"},
	{Name: "  Line   spaced\tand tab ", Email: "UPPER.case@Example.COM", MessageID: "p@q", UnsubscribeURL: "https://news.example.com/u/p#frag"},
	{Name: "Trailing = sign =", Email: "jörg@[127.0.0.1]", MessageID: "r@s", UnsubscribeURL: "https://news.example.com/u?t=%zz&v=(1)*"},
}

// unstuff removes the SMTP transparency dots (RFC 5321 section 4.5.2) and checks
// the wire format on the way: CRLF only, no line over 998 octets, every line
// that starts with "." stuffed.
func unstuff(t testing.TB, raw []byte) []byte {
	t.Helper()
	if !bytes.HasSuffix(raw, []byte("\r\n")) {
		t.Fatalf("message does not end in CRLF: ...%q", raw[max(0, len(raw)-20):])
	}
	lines := bytes.Split(raw[:len(raw)-2], []byte("\r\n"))
	var out bytes.Buffer
	for i, l := range lines {
		if bytes.ContainsAny(l, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i, l)
		}
		if len(l) > 998 {
			t.Fatalf("line %d is %d octets", i, len(l))
		}
		if len(l) > 0 && l[0] == '.' && (len(l) < 2 || l[1] != '.') {
			t.Fatalf("line %d starts with a single dot: it is not stuffed", i)
		}
		if len(l) > 0 && l[0] == '.' {
			l = l[1:]
		}
		out.Write(l)
		out.WriteString("\r\n")
	}
	return out.Bytes()
}

// decodedHeader is a header with every field decoded to what a reader sees.
func decodedHeader(t testing.TB, h mail.Header) map[string]string {
	t.Helper()
	out := map[string]string{}
	var dec mime.WordDecoder
	for k, vs := range h {
		if len(vs) != 1 {
			t.Errorf("field %s appears %d times", k, len(vs))
		}
		v := vs[0]
		switch k {
		case "From", "To":
			a, err := mail.ParseAddress(v)
			if err != nil {
				t.Errorf("%s: %q: %v", k, v, err)
				continue
			}
			v = fmt.Sprintf("%q <%s>", a.Name, a.Address)
		case "Date":
			d, err := mail.ParseDate(v)
			if err != nil {
				t.Errorf("Date %q: %v", v, err)
			}
			v = d.UTC().Format(time.RFC3339Nano)
		case "Content-Type":
			mt, params, err := mime.ParseMediaType(v)
			if err != nil {
				t.Errorf("Content-Type %q: %v", v, err)
			}
			delete(params, "boundary")
			v = mime.FormatMediaType(mt, params)
		default:
			d, err := dec.DecodeHeader(v)
			if err != nil {
				t.Errorf("%s %q: %v", k, v, err)
			}
			v = d
		}
		out[k] = v
	}
	return out
}

// parsedMessage is a message's decoded header and text/html parts.
type parsedMessage struct {
	header     map[string]string
	text, html string
}

func parseMessage(t testing.TB, raw []byte) parsedMessage {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("ReadMessage: %v", err)
	}
	pm := parsedMessage{header: decodedHeader(t, msg.Header)}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil {
		t.Fatalf("Content-Type: %v", err)
	}
	if mt == "text/plain" {
		body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
		if err != nil {
			t.Fatalf("text body: %v", err)
		}
		pm.text = string(body)
		return pm
	}
	if mt != "multipart/alternative" {
		t.Fatalf("Content-Type %s", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for i := 0; ; i++ {
		// NextPart decodes quoted-printable (and drops that header).
		part, err := mr.NextPart()
		if err == io.EOF {
			if i != 2 {
				t.Fatalf("%d parts, want 2", i)
			}
			return pm
		}
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		body, err := io.ReadAll(part)
		if err != nil {
			t.Fatalf("part %d body: %v", i, err)
		}
		switch ct := part.Header.Get("Content-Type"); {
		case i == 0 && ct == "text/plain; charset=UTF-8":
			pm.text = string(body)
		case i == 1 && ct == "text/html; charset=UTF-8":
			pm.html = string(body)
		default:
			t.Fatalf("part %d has Content-Type %q", i, ct)
		}
	}
}

// crlf turns the rendered part's line breaks into the CRLF a decoder gives.
func crlf(s string) string {
	s = strings.ReplaceAll(s, "\r\n", "\n")
	s = strings.ReplaceAll(s, "\r", "\n")
	return strings.ReplaceAll(s, "\n", "\r\n")
}

// checkQPLines checks the encoded body lines against RFC 2045 section 6.7 rule
// (5): at most 76 characters (after unstuffing), and no white space at the
// end (rule (3)).
func checkQPLines(t testing.TB, raw []byte) {
	t.Helper()
	_, body, ok := bytes.Cut(raw, []byte("\r\n\r\n"))
	if !ok {
		t.Fatal("no header/body separator")
	}
	for i, l := range bytes.Split(body, []byte("\r\n")) {
		if bytes.HasPrefix(l, []byte("--")) || bytes.HasPrefix(l, []byte("Content-")) {
			continue
		}
		if len(l) > qpMaxLine {
			t.Errorf("body line %d is %d characters: %q", i, len(l), l)
		}
		if len(l) > 0 && (l[len(l)-1] == ' ' || l[len(l)-1] == '\t') {
			t.Errorf("body line %d ends in white space: %q", i, l)
		}
	}
}

// checkAgainstBuild sends rc through Prepared and through Build and compares
// what a reader would see.
func checkAgainstBuild(t testing.TB, p *Prepared, in PrepareInput, r *templates.Rendered, rc Recipient) {
	t.Helper()
	raw, err := p.AppendMessage(nil, rc)
	if err != nil {
		t.Fatalf("AppendMessage(%q): %v", rc.Name, err)
	}
	plain := unstuff(t, raw)
	checkQPLines(t, plain)
	got := parseMessage(t, plain)

	var ref bytes.Buffer
	if err := BuildTo(&ref, buildEquivalent(in, r, rc)); err != nil {
		t.Fatalf("BuildTo: %v", err)
	}
	want := parseMessage(t, ref.Bytes())

	trc := templates.Recipient{Name: rc.Name, Email: rc.Email, UnsubscribeURL: rc.UnsubscribeURL}
	if got.text != crlf(r.Text(trc)) {
		t.Errorf("text part for %q differs from the rendered one:\n%s", rc.Name, firstDiff(crlf(r.Text(trc)), got.text))
	}
	if !in.HTML.IsZero() && got.html != crlf(r.HTML(trc)) {
		t.Errorf("HTML part for %q differs from the rendered one:\n%s", rc.Name, firstDiff(crlf(r.HTML(trc)), got.html))
	}
	if got.text != want.text || got.html != want.html {
		t.Errorf("parts for %q differ from Build's", rc.Name)
	}
	keys := slices.Sorted(func(yield func(string) bool) {
		for k := range got.header {
			if !yield(k) {
				return
			}
		}
	})
	wantKeys := slices.Sorted(func(yield func(string) bool) {
		for k := range want.header {
			if !yield(k) {
				return
			}
		}
	})
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("header fields for %q:\n got %v\nwant %v", rc.Name, keys, wantKeys)
	}
	for k, v := range want.header {
		if got.header[k] != v {
			t.Errorf("%s for %q:\n got %q\nwant %q", k, rc.Name, got.header[k], v)
		}
	}
	// Header lines keep to 78 characters where the words allow (RFC 5322
	// section 2.1.1); what can't be broken is a URI, an address or a
	// Message-ID.
	head, _, _ := bytes.Cut(plain, []byte("\r\n\r\n"))
	for _, l := range bytes.Split(head, []byte("\r\n")) {
		if len(l) > maxHeaderLine && !bytes.Contains(l, []byte("://")) && !bytes.Contains(l, []byte("@")) && !bytes.HasPrefix(l, []byte("List-Id:")) {
			t.Errorf("header line of %d characters: %q", len(l), l)
		}
	}
}

func firstDiff(want, got string) string {
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-40)
	return fmt.Sprintf("at byte %d:\nwant %q\n got %q", i, want[from:min(len(want), i+40)], got[from:min(len(got), i+40)])
}

func TestPreparedMatchesBuild(t *testing.T) {
	date := time.Date(2025, 11, 13, 6, 30, 0, 0, time.FixedZone("BST", 3600))
	for _, tc := range []struct {
		name string
		r    *templates.Rendered
	}{
		{"demo", demo(t)},
		{"custom", renderCustom(t,
			".starts with a dot",
			"..two dots",
			".",
			"trailing space ",
			"trailing tab\t",
			"= equals =3D and ?= =?utf-8?q?not_encoded?=",
			strings.Repeat("long line with café and naïve words ", 30),
			strings.Repeat("x", 200)+"."+strings.Repeat("y", 74)+"\n.next line starts with a dot",
			"multi\nline\r\nwith\rbreaks",
			"\x00nul \x7f del \x01",
			"")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := prepareInput(tc.r)
			p := mustPrepare(t, in)
			for _, rc := range testRecipients {
				rc.Date = date
				checkAgainstBuild(t, p, in, tc.r, rc)
			}
		})
	}
}

func TestPreparedTextOnly(t *testing.T) {
	for _, r := range []*templates.Rendered{demo(t), renderCustom(t, "no newline at the end")} {
		in := prepareInput(r)
		in.HTML = templates.Part{}
		p := mustPrepare(t, in)
		for _, rc := range testRecipients[:4] {
			rc.Date = testDate
			checkAgainstBuild(t, p, in, r, rc)
		}
	}
}

func TestPreparedDotStuffing(t *testing.T) {
	r := renderCustom(t, ".starts with a dot", strings.Repeat("a", 75)+".after a soft break")
	p := mustPrepare(t, prepareInput(r))
	raw, err := p.AppendMessage(nil, Recipient{Name: ".Dotty", Email: "dot@example.com", MessageID: "a@b"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"\r\n..starts with a dot\r\n", // a content line (static)
		"\r\n..starts with a dot ",    // the same with a hole on the line
		"\r\n..after a soft break",    // the dot that a soft break put first
		"\r\n...Dotty\r\n",            // ".{{.Recipient.Name}}" (text part)
		"\r\nHello .Dotty,\r\n",       // not at the start: untouched
		"<p>Hello .Dotty, hi</p>\r\n", // nor here
	} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("output lacks %q", want)
		}
	}
	if bytes.Contains(raw, []byte("\r\n.starts")) {
		t.Error("a line starting with a dot was not stuffed")
	}
}

func TestPreparedRejects(t *testing.T) {
	r := demo(t)
	in := prepareInput(r)
	p := mustPrepare(t, in)
	good := Recipient{Name: "Ann", Email: "ann@example.com", MessageID: "a@b", UnsubscribeURL: "https://x.example/u", Date: testDate}
	for name, mod := range map[string]func(*Recipient){
		"CR in name":           func(r *Recipient) { r.Name = "Ann\rBcc: x@evil" },
		"LF in name":           func(r *Recipient) { r.Name = "Ann\nBcc: x@evil" },
		"NUL in name":          func(r *Recipient) { r.Name = "A\x00" },
		"bad UTF-8 name":       func(r *Recipient) { r.Name = "A\xff" },
		"long token in name":   func(r *Recipient) { r.Name = strings.Repeat("a", maxToken+1) },
		"empty email":          func(r *Recipient) { r.Email = "" },
		"CRLF in email":        func(r *Recipient) { r.Email = "ann@example.com\r\nBcc: x@evil" },
		"no at":                func(r *Recipient) { r.Email = "ann.example.com" },
		"two addresses":        func(r *Recipient) { r.Email = "a@b.c, d@e.f" },
		"angle in email":       func(r *Recipient) { r.Email = "<ann@example.com>" },
		"long email":           func(r *Recipient) { r.Email = strings.Repeat("a", 250) + "@example.com" },
		"bracketed message id": func(r *Recipient) { r.MessageID = "<a@b>" },
		"message id CRLF":      func(r *Recipient) { r.MessageID = "a@b\r\nX: y" },
		"message id no at":     func(r *Recipient) { r.MessageID = "ab" },
		"javascript URL":       func(r *Recipient) { r.UnsubscribeURL = "javascript:alert(1)" },
		"relative URL":         func(r *Recipient) { r.UnsubscribeURL = "/u/x" },
		"URL with CRLF":        func(r *Recipient) { r.UnsubscribeURL = "https://x.example/u\r\nBcc: x@evil" },
		"URL with comma":       func(r *Recipient) { r.UnsubscribeURL = "https://x.example/u,<mailto:x@evil>" },
		"URL with user":        func(r *Recipient) { r.UnsubscribeURL = "https://user@x.example/u" },
		"URL with space":       func(r *Recipient) { r.UnsubscribeURL = "https://x.example/u x" },
	} {
		t.Run(name, func(t *testing.T) {
			rc := good
			mod(&rc)
			dst := []byte("prefix")
			out, err := p.AppendMessage(dst, rc)
			if err == nil {
				t.Fatalf("accepted")
			}
			if !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("error %v does not wrap ErrInvalidMessage", err)
			}
			if string(out) != "prefix" {
				t.Errorf("dst changed to %q", out)
			}
			if _, berr := Build(buildEquivalent(in, r, rc)); berr == nil {
				t.Errorf("Build accepts what AppendMessage rejects")
			}
		})
	}
}

func TestPrepareRejects(t *testing.T) {
	r := demo(t)
	for name, mod := range map[string]func(*PrepareInput){
		"no text":          func(in *PrepareInput) { in.Text = templates.Part{} },
		"no from":          func(in *PrepareInput) { in.From = nil },
		"empty subject":    func(in *PrepareInput) { in.Subject = " " },
		"CRLF subject":     func(in *PrepareInput) { in.Subject = "a\r\nBcc: x@evil" },
		"bad list id":      func(in *PrepareInput) { in.ListID = "not a list id" },
		"bad mailto":       func(in *PrepareInput) { in.UnsubscribeMailto = "https://x" },
		"reserved header":  func(in *PrepareInput) { in.Headers = map[string]string{"To": "x@y"} },
		"CRLF header":      func(in *PrepareInput) { in.Headers = map[string]string{"X-A": "a\r\nb"} },
		"bad header name":  func(in *PrepareInput) { in.Headers = map[string]string{"X A": "a"} },
		"invalid UTF-8":    func(in *PrepareInput) { _, in.Text = renderCustom(t, "bad \xff utf-8").Parts() },
		"CRLF from name":   func(in *PrepareInput) { in.From = &mail.Address{Name: "a\nb", Address: "a@b.c"} },
		"invalid from adr": func(in *PrepareInput) { in.From = &mail.Address{Address: "not an address"} },
	} {
		t.Run(name, func(t *testing.T) {
			in := prepareInput(r)
			mod(&in)
			if _, err := Prepare(in); !errors.Is(err, ErrInvalidMessage) {
				t.Errorf("Prepare: %v, want ErrInvalidMessage", err)
			}
		})
	}
}

func TestPreparedRandomMessageIDAndDate(t *testing.T) {
	p := mustPrepare(t, prepareInput(demo(t)))
	before := time.Now().Add(-time.Second)
	raw, err := p.AppendMessage(nil, Recipient{Email: "a@example.com"})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(unstuff(t, raw)))
	if err != nil {
		t.Fatal(err)
	}
	id := msg.Header.Get("Message-Id")
	if !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@news.example.com>") || len(id) < 20 {
		t.Errorf("Message-ID %q", id)
	}
	d, err := msg.Header.Date()
	if err != nil || d.Before(before) || d.After(time.Now().Add(time.Second)) {
		t.Errorf("Date %v (%v), want now", d, err)
	}
}

func TestPreparedConcurrentUse(t *testing.T) {
	r := demo(t)
	in := prepareInput(r)
	p := mustPrepare(t, in)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for j := range 20 {
				rc := testRecipients[(i+j)%len(testRecipients)]
				var err error
				buf, err = p.AppendMessage(buf[:0], rc)
				if err != nil {
					t.Error(err)
					return
				}
				want, _ := p.AppendMessage(nil, rc)
				// Date differs only when zero; all test recipients have
				// none, so compare without the Date line.
				if !bytes.Equal(withoutDate(buf), withoutDate(want)) {
					t.Error("concurrent output differs")
					return
				}
			}
		}()
	}
	wg.Wait()
}

func withoutDate(b []byte) []byte {
	_, rest, _ := bytes.Cut(b, []byte("\r\n"))
	return rest
}

func TestAppendMessageDoesNotAllocate(t *testing.T) {
	p := mustPrepare(t, prepareInput(demo(t)))
	rc := Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com", MessageID: "20251113.42@news.example.com",
		UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate}
	buf, err := p.AppendMessage(nil, rc)
	if err != nil {
		t.Fatal(err)
	}
	allocs := testing.AllocsPerRun(200, func() {
		buf, _ = p.AppendMessage(buf[:0], rc)
	})
	if allocs != 0 {
		t.Errorf("%v allocations per message, want 0", allocs)
	}
}

// The fast, allocation-free checks may only accept what Build's checks accept.
func TestFastChecksAgreeWithBuild(t *testing.T) {
	texts := []string{"", "Ann", "Zoë Ørsted", "a\tb", "a\u00a0b", "a\u2028b", "a\x00", "a\r", "\xff", "\u0085",
		strings.Repeat("a", maxToken), strings.Repeat("a", maxToken+1), strings.Repeat("é", maxToken/2+1),
		strings.Repeat("a", maxToken) + " " + strings.Repeat("a", maxToken), strings.Repeat("a", maxToken) + "\u00a0b"}
	for _, s := range texts {
		if got, want := headerTextOK(s), checkHeaderText("x", s) == nil; got != want {
			t.Errorf("headerTextOK(%q) = %v, checkHeaderText says %v", s, got, want)
		}
	}
	addrs := []string{"a@b", "a@b.c", "a.b@c.d", ".a@b.c", "a.@b.c", "a..b@c.d", "a@b..c", "a@.b", "a@b.", "a@-b.c",
		"o'brien+x@example.com", "a@b@c.d", `"a b"@c.d`, "ü@b.c", "a@ü.c", "a@[127.0.0.1]", "@b.c", "a@", "a b@c.d",
		"a@b_c.d", "A@B.C", strings.Repeat("a", 240) + "@example.com", strings.Repeat("a", 250) + "@example.com"}
	for _, a := range addrs {
		if addrFast(a) && checkAddress("To", &mail.Address{Address: a}) != nil {
			t.Errorf("addrFast(%q) accepts what checkAddress rejects", a)
		}
	}
	urls := []string{"https://x", "https://x.example/u", "http://x:80/u?a=b&c#f", "https://x:/u", "https://x:8a/u",
		"https:///u", "https://x/%zz", "https://x/%4", "https://x/u#%zz", "https://x?%zz", "https://u@x/", "https://x/u@v",
		"https://[::1]/u", "HTTPS://x/u", "https://x/ü", "https://x/u,v", "https://x/'()*", "https://-/", "https://x/a b",
		"https://x/" + strings.Repeat("a", maxToken)}
	for _, u := range urls {
		if unsubURLFast(u) {
			if _, err := checkUnsubURL(u); err != nil {
				t.Errorf("unsubURLFast(%q) accepts what checkUnsubURL rejects: %v", u, err)
			}
		}
	}
}

func TestQuotedPrintableEncoder(t *testing.T) {
	inputs := []string{
		"", "a", " ", "a ", "a\t", "a \n", "=", ".", "..", "\n.", strings.Repeat("=", 80), strings.Repeat(" ", 100),
		strings.Repeat("a", 75) + " ", strings.Repeat("a", 74) + " ", strings.Repeat("a", 73) + "é",
		strings.Repeat("a", 75) + ".b", "a\r\nb\rc\nd\r\n\r\n", strings.Repeat("日本語", 40), "tab\tend\t",
	}
	for _, in := range inputs {
		var q qpLine
		enc := qpAppend(&q, nil, in)
		enc = q.end(enc, false)
		enc = append(enc, '\r', '\n')
		plain := unstuff(t, enc)
		checkQPLines(t, append([]byte("\r\n\r\n"), plain...))
		dec, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(plain)))
		if err != nil {
			t.Errorf("%q: decoding %q: %v", in, plain, err)
			continue
		}
		if want := crlf(in) + "\r\n"; string(dec) != want {
			t.Errorf("%q: encoded %q decodes to %q", in, enc, dec)
		}
	}
}

func TestEncodedWords(t *testing.T) {
	var dec mime.WordDecoder
	for _, s := range []string{"a", "Zoë", strings.Repeat("Ω", 100), strings.Repeat("🙂", 30), "a_b=c?d \"e\" (f)", "tab\there"} {
		for _, col := range []int{0, 4, 9, 60, 70, 76} {
			out := appendEncodedWords(nil, s, col)
			for i, l := range strings.Split(string(out), "\r\n") {
				limit := maxEncodedLine
				if i == 0 {
					limit -= col
				}
				if len(l) > limit {
					t.Errorf("%q at %d: line %d is %d long: %q", s, col, i, len(l), l)
				}
			}
			// Unfolded as a reader would.
			got, err := dec.DecodeHeader(strings.TrimPrefix(strings.ReplaceAll(string(out), "\r\n", ""), " "))
			if err != nil || got != s {
				t.Errorf("%q at %d: decodes to %q (%v)", s, col, got, err)
			}
		}
	}
}

// FuzzPrepared renders random content lines and names through Prepared and
// checks the message parses and round-trips.
func FuzzPrepared(f *testing.F) {
	f.Add(".dot\nline ", "Zoë", "zoe@example.com", "https://x.example/u?a=b")
	f.Add(strings.Repeat("=x ", 40), `"<&'+=.>"`, "a.b+c@example.org", "http://localhost/u")
	f.Add("a\r\n.b\r.c", strings.Repeat("Ω", 70), "x@y.z", "")
	f.Add("", "", "q@example.com", "https://x/%41")
	f.Fuzz(func(t *testing.T, content, name, email, unsub string) {
		if !utf8Valid(content) {
			return // not an input: Prepare rejects it, as Build would
		}
		r := renderCustom(t, strings.Split(content, "\n\n")...)
		in := prepareInput(r)
		p, err := Prepare(in)
		if err != nil {
			t.Fatalf("Prepare: %v", err)
		}
		rc := Recipient{Name: name, Email: email, MessageID: "f@z", UnsubscribeURL: unsub, Date: testDate}
		_, buildErr := Build(buildEquivalent(in, r, rc))
		raw, err := p.AppendMessage(nil, rc)
		if (err == nil) != (buildErr == nil) {
			t.Fatalf("AppendMessage error %v, Build error %v", err, buildErr)
		}
		if err != nil {
			return
		}
		unstuff(t, raw)
		checkAgainstBuild(t, p, in, r, rc)
	})
}

func utf8Valid(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// BenchmarkAppendMessage is the per-recipient cost of the bulk path's message:
// the demo edition (about 45 KB of HTML and text), personalised into a reused
// buffer. Compare with BenchmarkBuildAndWrite (go-mail, per recipient).
func BenchmarkAppendMessage(b *testing.B) {
	p := mustPrepare(b, prepareInput(demo(b)))
	rc := Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com", MessageID: "20251113.42@news.example.com",
		UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate}
	buf, err := p.AppendMessage(nil, rc)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf, _ = p.AppendMessage(buf[:0], rc)
	}
}

// BenchmarkBuildAndWriteDemo is BenchmarkBuildAndWrite on the same demo edition
// and recipient as BenchmarkAppendMessage, including the splicing Composer
// does: the per-recipient cost of the go-mail path it replaces.
func BenchmarkBuildAndWriteDemo(b *testing.B) {
	r := demo(b)
	in := prepareInput(r)
	rc := Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com", MessageID: "20251113.42@news.example.com",
		UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate}
	b.ReportAllocs()
	for b.Loop() {
		if err := BuildTo(io.Discard, buildEquivalent(in, r, rc)); err != nil {
			b.Fatal(err)
		}
	}
}
