package main

import (
	"context"
	"encoding/json"
	"io"
	"net/mail"
	"newsletter/internal/logtest"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

var bounceAddr = regexp.MustCompile(`msg="listening for bounces" addr=(\S+)`)

// bounceServe runs `newsletter bounces serve` until the test ends, and
// returns its address and its log.
func (h *harness) bounceServe(t *testing.T) (string, *logtest.Buffer) {
	t.Helper()
	t.Setenv("NEWSLETTER_BOUNCE_LISTEN", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"bounces", "serve"}, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("bounces serve exited %d after a SIGTERM-like cancel:\n%s", code, logs.String())
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := bounceAddr.FindStringSubmatch(logs.String()); m != nil {
			return m[1], logs
		}
		select {
		case code := <-done:
			t.Fatalf("bounces serve exited %d:\n%s", code, logs.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("bounces serve did not start:\n%s", logs.String())
	return "", nil
}

// A real send's envelope senders, and a bounce, a complaint, an
// auto-reply and a mailto unsubscribe mailed to them over SMTP as a
// mailbox provider would: each acts on the list as the policy says, with
// its evidence, and nothing else changes.
func TestBouncesServeActsOnARealSendsBounces(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.must("send", "--date", "2025-11-13")
	envelope, oneClick := map[string]string{}, map[string]string{}
	for _, m := range h.smtp.Messages() {
		if !strings.HasPrefix(m.From, "bounces+") || !strings.HasSuffix(m.From, "@london-daily.example") {
			t.Fatalf("envelope sender %q is not a VERP address of the From domain", m.From)
		}
		envelope[m.To[0]] = m.From
		msg, err := mail.ReadMessage(strings.NewReader(string(m.Data)))
		if err != nil {
			t.Fatal(err)
		}
		if tok := regexp.MustCompile(`/u/([A-Za-z0-9_-]{43})>`).FindStringSubmatch(msg.Header.Get("List-Unsubscribe")); tok != nil {
			oneClick[m.To[0]] = tok[1]
		}
	}
	if len(envelope) != 4 || len(oneClick) != 4 || envelope["ada@example.com"] == envelope["zoe@example.com"] {
		t.Fatalf("envelope senders %v", envelope)
	}
	addr, logs := h.bounceServe(t)
	sendMail := func(rcpt string, msg io.Reader) error {
		c, err := smtp.Dial(addr)
		if err != nil {
			return err
		}
		defer c.Close()
		return c.SendMail("", []string{rcpt}, msg)
	}
	deliver := func(rcpt, file string) {
		t.Helper()
		data, err := os.ReadFile("../../bounces/testdata/" + file)
		if err != nil {
			t.Fatal(err)
		}
		if err := sendMail(rcpt, strings.NewReader(string(data))); err != nil {
			t.Fatalf("deliver %s to %s: %v", file, rcpt, err)
		}
	}
	deliver(envelope["charles@example.com"], "postfix-hard.eml")
	deliver(envelope["ada@example.com"], "arf-yahoo.eml")
	deliver(envelope["zoe@example.com"], "autoreply-rfc3834.eml")
	deliver("unsubscribe+"+oneClick["nameless@example.com"]+"@london-daily.example", "unsubscribe-mailto.eml")
	// Not ours: refused at RCPT, as a relay attempt.
	if err := sendMail("someone@elsewhere.example", strings.NewReader("Subject: hi\r\n\r\nhi\r\n")); err == nil {
		t.Fatal("bounces serve relayed")
	}

	status := func(email string) string {
		var s string
		h.db.Get(&s, `SELECT status FROM subscribers WHERE email = $1`, email)
		return s
	}
	for email, want := range map[string]string{"charles@example.com": "bounced", "ada@example.com": "unsubscribed",
		"zoe@example.com": "confirmed", "nameless@example.com": "unsubscribed"} {
		if got := status(email); got != want {
			t.Errorf("%s: %s, want %s", email, got, want)
		}
	}
	out := h.must("suppression", "list")
	if !strings.Contains(out, "bounced\tcharles@example.com") || !strings.Contains(out, "complained\tada@example.com") {
		t.Errorf("suppression list:\n%s", out)
	}
	var consents []string
	h.db.Select(&consents, `SELECT action || ' ' || method || ' ' || detail FROM consents WHERE action <> 'import' ORDER BY id`)
	want := []string{"suppress bounce bounced: inbound dsn 5.1.1, delivery", "suppress complaint complained: inbound arf abuse, delivery", "unsubscribe mailto "}
	if len(consents) != 3 {
		t.Fatalf("consent entries %q", consents)
	}
	for i, w := range want {
		if !strings.HasPrefix(consents[i], w) {
			t.Errorf("consent entry %q, want it to start %q", consents[i], w)
		}
	}
	var events []string
	h.db.Select(&events, `SELECT kind || ' ' || source || ' ' || status FROM bounce_events ORDER BY id`)
	if strings.Join(events, "|") != "hard inbound 5.1.1|complaint inbound abuse|unsubscribe inbound " {
		t.Errorf("bounce events %q", events)
	}
	// What came back shows in the edition's status and the person's export.
	if out := h.must("status", "--date", "2025-11-13"); !strings.Contains(out, "came back: 1 hard bounces, 0 soft, 1 complaints") {
		t.Errorf("status says nothing of what came back:\n%s", out)
	}
	var x struct {
		Bounces []struct{ Kind, Status string } `json:"bounces"`
	}
	if err := json.Unmarshal([]byte(h.must("subscribers", "export", "charles@example.com")), &x); err != nil || len(x.Bounces) != 1 || x.Bounces[0].Kind != "hard" || x.Bounces[0].Status != "5.1.1" {
		t.Errorf("export's bounces: %+v %v", x.Bounces, err)
	}
	if strings.Contains(logs.String(), "example.com") && regexp.MustCompile(`\w+@example\.com`).MatchString(logs.String()) {
		t.Errorf("the log names an address:\n%s", logs.String())
	}
}
