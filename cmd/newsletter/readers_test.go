package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"newsletter/internal/logtest"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestSubscribersExportAndErase(t *testing.T) {
	h := newHarness(t)
	h.setup()
	out := h.must("subscribers", "export", "Ada@Example.com")
	var x struct {
		Subscriber struct {
			ID     int64  `json:"id"`
			Email  string `json:"email"`
			Name   string `json:"name"`
			Status string `json:"status"`
		} `json:"subscriber"`
		Consents []struct {
			Action string `json:"action"`
			Method string `json:"method"`
			Detail string `json:"detail"`
		} `json:"consents"`
		Tokens     []any `json:"tokens"`
		Deliveries []any `json:"deliveries"`
		Suppressed bool  `json:"suppressed"`
	}
	if err := json.Unmarshal([]byte(out), &x); err != nil {
		t.Fatalf("export is not JSON: %v\n%s", err, out)
	}
	if x.Subscriber.Email != "ada@example.com" || x.Subscriber.Name != "Ada Lovelace" || len(x.Consents) != 1 ||
		x.Consents[0].Action != "import" || x.Consents[0].Method != "import" || x.Consents[0].Detail != "status=confirmed" || x.Suppressed {
		t.Fatalf("export: %s", out)
	}

	out = h.must("subscribers", "erase", "ada@example.com")
	if !strings.Contains(out, "erased subscriber") || !strings.Contains(out, "1 address(es) added to the suppression list") {
		t.Fatalf("erase printed %q", out)
	}
	var leftovers int
	h.db.Get(&leftovers, `SELECT count(*) FROM subscribers WHERE email ILIKE '%ada%' OR name ILIKE '%ada%'`)
	if leftovers != 0 {
		t.Fatal("the erased person's address or name is still stored")
	}
	code, _, errs := h.run("subscribers", "export", "ada@example.com")
	if code == 0 || !strings.Contains(errs, "erased on request") {
		t.Fatalf("export after erase: exit %d %q", code, errs)
	}
	// An import of the old list doesn't bring her back, and says so.
	out = h.must("subscribers", "import", h.file("again.csv", subscribersCSV))
	if !strings.Contains(out, "1 suppressed") {
		t.Fatalf("re-import printed %q", out)
	}
	if code, _, errs := h.run("subscribers", "add", "ada@example.com"); code == 0 || !strings.Contains(errs, "suppressed") {
		t.Fatalf("add of an erased address: exit %d %q", code, errs)
	}
	if code, _, _ := h.run("subscribers", "erase", "nobody@example.com"); code == 0 {
		t.Fatal("erasing an unknown address succeeded")
	}
	if code, out, _ := h.run("subscribers", "erase", "-h"); code != 0 || !strings.Contains(out, "suppression") {
		t.Fatalf("erase -h: %d %q", code, out)
	}
}

func TestServeConfigErrors(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	for _, tc := range []struct{ env, value, want string }{
		{"SMTP_URL", "", "SMTP_URL is not set"},
		{"NEWSLETTER_FROM", "", "NEWSLETTER_FROM is not set"},
		{"NEWSLETTER_CONFIRM_TTL", "soon", "NEWSLETTER_CONFIRM_TTL"},
		{"NEWSLETTER_CONFIRM_LIMIT", "lots", "NEWSLETTER_CONFIRM_LIMIT"},
		{"NEWSLETTER_SIGNUP_LIMIT", "5", "NEWSLETTER_SIGNUP_LIMIT"},
		{"NEWSLETTER_TRUSTED_PROXIES", "10.0.0.0/33", "NEWSLETTER_TRUSTED_PROXIES"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			code, _, errs := h.run("serve")
			if code == 0 || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want an error naming %q", code, errs, tc.want)
			}
		})
	}
}

var servingAddr = regexp.MustCompile(`msg=serving addr=(\S+)`)

// serve runs `newsletter serve` (with extra flags) until the test ends, and
// returns its URL.
func (h *harness) serve(t *testing.T, flags ...string) (string, *logtest.Buffer) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, flags...), io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d after SIGTERM-like cancel:\n%s", code, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := servingAddr.FindStringSubmatch(logs.String()); m != nil {
			return "http://" + m[1], logs
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("serve did not start:\n%s", logs.String())
	return "", nil
}

// The reader pages as `newsletter serve` runs them: a sign-up through the
// binary's configuration reaches the SMTP server, and a stop is graceful.
func TestServeSignUp(t *testing.T) {
	h := newHarness(t)
	h.setup()
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	t.Setenv("NEWSLETTER_BASE_URL", "http://127.0.0.1:1") // only used in links
	t.Setenv("NEWSLETTER_CONFIRM_TTL", "36h")
	base, logs := h.serve(t)
	for _, p := range []string{"/healthz", "/readyz", "/editions"} {
		resp, err := http.Get(base + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", p, resp.StatusCode)
		}
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Get(base + "/subscribe")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("no form: %s", page)
	}
	resp, err = c.PostForm(base+"/subscribe", url.Values{"email": {"grace@example.com"}, "name": {"Grace Hopper"}, "csrf": {string(m[1])}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Contains(page, []byte("36 hours")) {
		t.Fatalf("sign-up: %d %s", resp.StatusCode, page)
	}
	msgs := h.smtp.WaitFor(t, 1, 20*time.Second)
	if msgs[0].To[0] != "grace@example.com" || !bytes.Contains(msgs[0].Data, []byte("http://127.0.0.1:1/confirm/")) {
		t.Fatalf("confirmation email to %v:\n%s", msgs[0].To, msgs[0].Data)
	}
	if strings.Contains(logs.String(), "grace@example.com") {
		t.Fatalf("the log holds the address:\n%s", logs.String())
	}
}
