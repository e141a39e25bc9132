package web_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"newsletter/edition"
	"newsletter/internal/smtptest"
	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/templates"
)

// The reader pages in a real browser: Debian's Chromium, headless, driven
// over the DevTools protocol. Every page the journeys pass is photographed
// at phone and desktop width into the artefacts folder.

// chromium finds the browser; a machine without it fails the test (CI
// installs it: .ci/run).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("Chromium is not installed: apt-get install chromium (.ci/run does)")
	return ""
}

// newBrowser starts a headless Chromium with a profile of its own and
// returns a tab, at phone width.
func newBrowser(t *testing.T) context.Context {
	t.Helper()
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium(t)),
		chromedp.Headless,
		chromedp.NoSandbox, // Chromium refuses to sandbox as root
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("force-color-profile", "srgb"),
		chromedp.Flag("password-store", "basic"),
		chromedp.UserDataDir(t.TempDir()),
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	ctx, cancel := context.WithTimeout(tab, 3*time.Minute)
	t.Cleanup(func() { cancel(); cancelTab(); cancelAlloc() })
	if err := chromedp.Do(ctx, phone()); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

func phone() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulatePortrait)
}

func desktop() chromedp.Action[chromedp.Void] {
	return chromedp.EmulateViewport(1280, 900)
}

// artefacts is where the screenshots go: $TEST_ARTIFACTS_DIR, or the
// repository's .artifacts/screenshots (ignored by git).
func artefacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("TEST_ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join("..", ".artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, "screenshots"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shoot photographs the page at phone and desktop width, checks that it
// fits a phone's width without sideways scrolling, and leaves the tab at
// phone width.
func shoot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := artefacts(t)
	overflow, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > document.documentElement.clientWidth`))
	if err != nil {
		t.Fatal(err)
	}
	if overflow {
		t.Errorf("%s: the page is wider than a phone's screen", name)
	}
	for _, v := range []struct {
		suffix string
		size   chromedp.Action[chromedp.Void]
	}{{"phone", phone()}, {"desktop", desktop()}} {
		if err := chromedp.Do(ctx, v.size); err != nil {
			t.Fatal(err)
		}
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		p := filepath.Join(dir, name+"-"+v.suffix+".png")
		if err := os.WriteFile(p, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := chromedp.Do(ctx, phone()); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots of %s in %s", name, dir)
}

// click presses the element and waits for the page it leads to; it returns
// that page's HTTP status.
func click(t *testing.T, ctx context.Context, selector string) int64 {
	t.Helper()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("click %s: %v", selector, err)
	}
	return resp.Status
}

func open(t *testing.T, ctx context.Context, url string) int64 {
	t.Helper()
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(url))
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	return resp.Status
}

func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("text of %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

func typeInto(t *testing.T, ctx context.Context, selector, s string) {
	t.Helper()
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.CSS(selector), s)); err != nil {
		t.Fatalf("type into %s: %v", selector, err)
	}
}

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
