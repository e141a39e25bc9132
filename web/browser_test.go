package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"newsletter/edition"
	"newsletter/internal/browsertest"
	"newsletter/internal/smtptest"
	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/templates"
)

// The reader pages in a real browser: Debian's Chromium, headless, driven
// over the DevTools protocol. Every page the journeys pass is photographed
// at phone and desktop width into the artefacts folder.

// The helpers are package browsertest's, shared with the desk's tests.
func newBrowser(t *testing.T) context.Context { return browsertest.New(t) }

func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	browsertest.Shoot(t, ctx, browsertest.Artefacts(t, ".."), name)
}

var (
	click    = browsertest.Click
	open     = browsertest.Open
	text     = browsertest.Text
	typeInto = browsertest.TypeInto
)

// Sign up on the form, read the confirmation email from the SMTP server,
// open its link, press the button: the person is confirmed.
func TestBrowserSignUpAndConfirm(t *testing.T) {
	f := newFixture(t)
	ctx := newBrowser(t)

	if code := open(t, ctx, f.base+"/subscribe"); code != 200 {
		t.Fatalf("sign-up page: %d", code)
	}
	shoot(t, ctx, "01-subscribe")
	// The keyboard goes address, name, button: the honeypot is out of the
	// tab order.
	if err := chromedp.Do(ctx, chromedp.Focus(chromedp.CSS("#name"))); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement.tagName + ":" + document.activeElement.type`)); got != "BUTTON:submit" {
		t.Errorf("Tab from the name field goes to %s, want the Subscribe button", got)
	}
	// Every field has a label.
	if unlabelled, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll('input:not([type=hidden])')].filter(i => i.labels.length === 0).length`)); unlabelled != 0 {
		t.Errorf("%d fields without a label", unlabelled)
	}

	// A typo first: the form comes back with the error beside the field.
	typeInto(t, ctx, "#email", "reader@example")
	if code := click(t, ctx, "button[type=submit]"); code != 400 {
		t.Fatalf("a bad address: %d, want 400", code)
	}
	if msg := text(t, ctx, "#email-error"); !strings.Contains(msg, "no dot") {
		t.Fatalf("error message %q", msg)
	}
	shoot(t, ctx, "02-subscribe-error")

	// The form kept what was typed; the reader clears it and types again.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('#email').value = ''`)); err != nil {
		t.Fatal(err)
	}
	typeInto(t, ctx, "#email", "reader@example.com")
	typeInto(t, ctx, "#name", "Rosalind Franklin")
	if code := click(t, ctx, "button[type=submit]"); code != 200 {
		t.Fatalf("sign-up: %d", code)
	}
	if h := text(t, ctx, "h1"); h != "Check your inbox" {
		t.Fatalf("after signing up: %q", h)
	}
	shoot(t, ctx, "03-check-inbox")
	sub := f.byEmail(t, "reader@example.com")
	if sub.Status != subscribers.Pending || sub.Name != "Rosalind Franklin" {
		t.Fatalf("after sign-up: %+v", sub)
	}

	msgs := f.smtp.WaitFor(t, 1, 30*time.Second)
	link := confirmLink(t, msgs[0])
	// The email itself, as a reader sees it.
	f.showEmail(t, ctx, msgs[0], "04-confirmation-email")
	if code := open(t, ctx, link); code != 200 {
		t.Fatalf("confirmation page: %d", code)
	}
	shoot(t, ctx, "05-confirm")
	if st := f.status(t, sub.ID); st != subscribers.Pending {
		t.Fatalf("opening the link changed the status to %s", st)
	}
	if code := click(t, ctx, "button[type=submit]"); code != 200 {
		t.Fatalf("confirm: %d", code)
	}
	if h := text(t, ctx, "h1"); h != "You are subscribed" {
		t.Fatalf("after confirming: %q", h)
	}
	shoot(t, ctx, "06-confirmed")
	if st := f.status(t, sub.ID); st != subscribers.Confirmed {
		t.Fatalf("status %s after confirming in the browser, want confirmed", st)
	}
}

// showEmail puts a received message's HTML part on a page of its own (a
// stand-in for a webmail) and opens it, so the email is seen as a reader
// sees it and its links can be clicked.
func (f *fixture) showEmail(t *testing.T, ctx context.Context, m smtptest.Message, shot string) {
	t.Helper()
	html := htmlPart(t, m)
	mailbox := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(html))
	}))
	t.Cleanup(mailbox.Close)
	if code := open(t, ctx, mailbox.URL); code != 200 {
		t.Fatalf("mailbox: %d", code)
	}
	shoot(t, ctx, shot)
}

// Unsubscribe from the link in a newsletter sent over SMTP, then ask to
// come back; and the web edition the email links to.
func TestBrowserUnsubscribeFromNewsletter(t *testing.T) {
	f := newFixture(t)
	ctx := newBrowser(t)
	bg := context.Background()
	sub, err := f.subs.Add(bg, "ada@example.com", "Ada Lovelace", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	data, err := readSeed()
	if err != nil {
		t.Fatal(err)
	}
	ed, format, err := edition.Parse(data, edition.ParseOptions{SiteURL: "https://london-daily.example"})
	if err != nil {
		t.Fatal(err)
	}
	id, _, err := f.eds.Save(bg, ed, format)
	if err != nil {
		t.Fatal(err)
	}
	if err := edition.MarkSendStarted(bg, f.eds.DB, id, 0, ""); err != nil {
		t.Fatal(err)
	}
	// The newsletter as the send builds it: rendered once, the reader's
	// name and links spliced in, List-Unsubscribe pointing at the reader
	// pages, sent through real SMTP.
	tpl, err := templates.Load("")
	if err != nil {
		t.Fatal(err)
	}
	webURL := f.base + "/editions/" + ed.DateString()
	r, err := tpl.RenderEdition(ed, templates.EditionData{BaseURL: f.base, WebURL: webURL})
	if err != nil {
		t.Fatal(err)
	}
	unsubURL := f.subs.UnsubscribeURL(f.base, sub.UUID)
	rc := templates.Recipient{Name: sub.Name, Email: sub.Email, UnsubscribeURL: unsubURL}
	msg, err := mailer.Build(mailer.Message{
		From: &mail.Address{Name: "London Daily", Address: "newsletter@london-daily.example"},
		To:   &mail.Address{Name: sub.Name, Address: sub.Email}, Subject: r.Subject(), Text: r.Text(rc), HTML: r.HTML(rc),
		UnsubscribeURL: unsubURL, UnsubscribeMailto: "mailto:newsletter@london-daily.example?subject=unsubscribe",
	})
	if err != nil {
		t.Fatal(err)
	}
	conn, err := smtpclient.DialMsg(bg, smtpclient.Config{Host: f.smtp.Host(), Port: f.smtp.Port(), TLS: smtpclient.TLSNone})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Send(bg, msg); err != nil {
		t.Fatal(err)
	}
	conn.Close()
	sent := f.smtp.WaitFor(t, 1, 30*time.Second)[0]
	_, hdr := textPart(t, sent)
	if lu := hdr.Header.Get("List-Unsubscribe"); !strings.Contains(lu, "<"+unsubURL+">") {
		t.Fatalf("List-Unsubscribe %q lacks %s", lu, unsubURL)
	}

	// The reader opens the newsletter and clicks "Unsubscribe" in its
	// footer.
	f.showEmail(t, ctx, sent, "10-newsletter-email")
	if code := click(t, ctx, `a[href^="`+f.base+`/u/"]`); code != 200 {
		t.Fatalf("unsubscribe page: %d", code)
	}
	if h := text(t, ctx, "h1"); !strings.Contains(h, "Unsubscribe a***@example.com") {
		t.Fatalf("unsubscribe page heading %q", h)
	}
	shoot(t, ctx, "11-unsubscribe")
	if st := f.status(t, sub.ID); st != subscribers.Confirmed {
		t.Fatalf("opening the link changed the status to %s", st)
	}
	if code := click(t, ctx, `form[action$="`+unsubURL[len(f.base):]+`"] button`); code != 200 {
		t.Fatalf("unsubscribe: %d", code)
	}
	if h := text(t, ctx, "h1"); h != "You are unsubscribed" {
		t.Fatalf("after unsubscribing: %q", h)
	}
	shoot(t, ctx, "12-unsubscribed")
	if st := f.status(t, sub.ID); st != subscribers.Unsubscribed {
		t.Fatalf("status %s after unsubscribing in the browser", st)
	}
	// The page offers to come back, through a confirmation.
	if code := click(t, ctx, `form[action$="/resubscribe"] button`); code != 200 {
		t.Fatalf("subscribe again: %d", code)
	}
	if n := text(t, ctx, ".notice"); !strings.Contains(n, "confirmation link") {
		t.Fatalf("notice %q", n)
	}
	shoot(t, ctx, "13-resubscribe-requested")
	if st := f.status(t, sub.ID); st != subscribers.Unsubscribed {
		t.Fatalf("asking to come back changed the status to %s before the confirmation", st)
	}
	confirm := f.smtp.WaitFor(t, 2, 30*time.Second)[1]
	if code := open(t, ctx, confirmLink(t, confirm)); code != 200 {
		t.Fatalf("confirmation page: %d", code)
	}
	if code := click(t, ctx, "button[type=submit]"); code != 200 || f.status(t, sub.ID) != subscribers.Confirmed {
		t.Fatalf("confirming the return: %d, %s", code, f.status(t, sub.ID))
	}

	// The subscription's page, where the name and the address change.
	if code := open(t, ctx, unsubURL); code != 200 {
		t.Fatal(code)
	}
	shoot(t, ctx, "14-manage")

	// "View in browser": the web edition and the archive.
	f.showEmail(t, ctx, sent, "10-newsletter-email")
	if code := click(t, ctx, `a[href="`+webURL+`"]`); code != 200 {
		t.Fatalf("web edition: %d", code)
	}
	if h := text(t, ctx, "h1"); !strings.Contains(h, "Russia and Belarus") {
		t.Fatalf("web edition heading %q", h)
	}
	shoot(t, ctx, "20-web-edition")
	if code := open(t, ctx, f.base+"/editions"); code != 200 {
		t.Fatal(code)
	}
	shoot(t, ctx, "21-archive")
	if code := open(t, ctx, f.base+"/confirm/"+strings.Repeat("x", 43)); code != 404 {
		t.Fatalf("unknown link: %d", code)
	}
	shoot(t, ctx, "22-link-not-valid")
}
