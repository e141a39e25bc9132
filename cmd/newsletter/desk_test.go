package main

import (
	"bytes"
	"context"
	"net/mail"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	bt "newsletter/internal/browsertest"
)

// The desk in a real Chromium against serve --worker: sign in, upload the
// seed edition, preview it at both widths, send a test copy and read it
// back, send it to a few hundred subscribers, watch the count rise, pause
// and see it stand still, resume and see it finish.
func TestDeskInBrowser(t *testing.T) {
	h := newHarness(t)
	const n = 300
	h.readers(n)
	orig := passwordInput
	t.Cleanup(func() { passwordInput = orig })
	passwordInput = strings.NewReader("a long enough password\n")
	h.must("editors", "add", "chief@news.example", "--role", "admin")
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	// Small batches, so a pause stops the send after the few leased.
	t.Setenv("NEWSLETTER_BATCH", "10")
	base, _ := h.serve(t, "--worker")
	ctx := bt.New(t)
	shots := bt.Artefacts(t, filepath.Join("..", ".."))
	shoot := func(name string) { bt.Shoot(t, ctx, shots, "desk-"+name) }

	if code := bt.Open(t, ctx, base+"/desk"); code != 200 || bt.Text(t, ctx, "h1") != "Sign in to the desk" {
		t.Fatalf("/desk without a session: %d %q", code, bt.Text(t, ctx, "h1"))
	}
	shoot("01-sign-in")
	bt.TypeInto(t, ctx, "#email", "chief@news.example")
	bt.TypeInto(t, ctx, "#password", "a long enough password")
	if code := bt.Click(t, ctx, "form button[type=submit]"); code != 200 || bt.Text(t, ctx, "h1") != "Editions" {
		t.Fatalf("sign in: %d %q", code, bt.Text(t, ctx, "h1"))
	}
	if unlabelled, _ := chromedp.Run(ctx, chromedp.Evaluate[int](
		`[...document.querySelectorAll('input:not([type=hidden]), textarea')].filter(i => i.labels.length === 0).length`)); unlabelled != 0 {
		t.Errorf("%d fields without a label", unlabelled)
	}
	shoot("02-editions")

	seed, err := filepath.Abs(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.CSS("#file"), []string{seed})); err != nil {
		t.Fatal(err)
	}
	if code := bt.Click(t, ctx, `button[value=file]`); code != 200 || !strings.Contains(bt.Text(t, ctx, "h1"), "London Daily") {
		t.Fatalf("upload: %d %q", code, bt.Text(t, ctx, "h1"))
	}
	// The previews: the edition's HTML in two sandboxed frames.
	frames, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`[...document.querySelectorAll('iframe')].map(f => f.getAttribute('sandbox') + ':' + f.clientWidth).join(',')`))
	if err != nil || !strings.HasPrefix(frames, ":") || strings.Count(frames, ":") != 2 {
		t.Fatalf("preview frames %q %v", frames, err)
	}
	shoot("03-edition-preview")

	// A test copy, read back from the SMTP server.
	bt.TypeInto(t, ctx, "#to", "desk@news.example")
	if code := bt.Click(t, ctx, "#test-send"); code != 200 || !strings.Contains(bt.Text(t, ctx, ".notice"), "Test copy sent") {
		t.Fatalf("test send: %d", code)
	}
	msgs := h.smtp.WaitFor(t, 1, 30*time.Second)
	m, err := mail.ReadMessage(bytes.NewReader(msgs[0].Data))
	if err != nil || !strings.HasPrefix(m.Header.Get("Subject"), "[TEST] London Daily") || msgs[0].To[0] != "desk@news.example" {
		t.Fatalf("test copy: %v %v", msgs[0].To, err)
	}

	// The send: the confirmation says how many get it; the count rises
	// on the page without a reload.
	release := h.smtp.HoldNth(1 + n/3)
	if code := bt.Click(t, ctx, "#send-link"); code != 200 || !strings.Contains(bt.Text(t, ctx, "#confirm-count"), strconv.Itoa(n)+" confirmed subscribers") {
		t.Fatalf("confirmation: %d %q", code, bt.Text(t, ctx, "#confirm-count"))
	}
	shoot("04-confirm-send")
	if code := bt.Click(t, ctx, "#send-now"); code != 200 {
		t.Fatalf("send: %d", code)
	}
	waitText(t, ctx, "#sent", func(s string) bool { v, _ := strconv.Atoi(s); return v > 0 })
	shoot("05-sending")
	if code := bt.Click(t, ctx, "#pause"); code != 200 || bt.Text(t, ctx, "#state") != "paused" {
		t.Fatalf("pause: %d %q", code, bt.Text(t, ctx, "#state"))
	}
	release()
	time.Sleep(2 * time.Second) // the batches under way end
	first := bt.Text(t, ctx, "#sent")
	time.Sleep(3 * time.Second)
	if second := bt.Text(t, ctx, "#sent"); first != second || first == strconv.Itoa(n) {
		t.Fatalf("paused, the count went %s -> %s", first, second)
	}
	shoot("06-paused")
	if code := bt.Click(t, ctx, "#resume"); code != 200 {
		t.Fatalf("resume: %d", code)
	}
	waitText(t, ctx, "#state", func(s string) bool { return s == "finished" })
	if sent := bt.Text(t, ctx, "#sent"); sent != strconv.Itoa(n) {
		t.Fatalf("finished with %s sent", sent)
	}
	shoot("07-finished")
	audit := h.must("audit")
	for _, want := range []string{"chief@news.example\tsign-in", "import\t2025-11-13", "test-send\t2025-11-13", "send\t2025-11-13", "pause\t2025-11-13", "resume\t2025-11-13"} {
		if !strings.Contains(audit, want) {
			t.Errorf("the audit record has no %q:\n%s", want, audit)
		}
	}
}

// waitText waits until the element's text, as the page's script updates
// it, satisfies ok.
func waitText(t *testing.T, ctx context.Context, selector string, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		s := bt.Text(t, ctx, selector)
		if ok(s) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s is still %q", selector, s)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
