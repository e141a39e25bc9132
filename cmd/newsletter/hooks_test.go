package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/mail"
	"newsletter/internal/logtest"
	"strings"
	"testing"
	"time"
)

// serve with NEWSLETTER_WEBHOOK_MAILGUN_KEY answers POST /webhooks/mailgun
// beside the reader pages: a bounce signed with the key, about a real
// send's message (by its Message-ID), bounces its reader; a bad signature
// is 401 and changes nothing; a provider not configured is 404.
func TestServeWebhooks(t *testing.T) {
	h := newHarness(t)
	h.setup()
	h.must("send", "--date", "2025-11-13")
	var msgID string
	for _, m := range h.smtp.Messages() {
		if m.To[0] == "ada@example.com" {
			msg, err := mail.ReadMessage(bytes.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			msgID = strings.Trim(msg.Header.Get("Message-Id"), "<>")
		}
	}
	if msgID == "" {
		t.Fatal("no message to ada@example.com")
	}
	const key = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0"
	t.Setenv("NEWSLETTER_LISTEN", "127.0.0.1:0")
	t.Setenv("NEWSLETTER_WEBHOOK_MAILGUN_KEY", key)
	base, logs := h.serve(t)
	stamp := fmt.Sprint(time.Now().Unix())
	token := "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0"
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(stamp + token))
	body := func(sig string) string {
		return `{"signature":{"timestamp":"` + stamp + `","token":"` + token + `","signature":"` + sig + `"},
"event-data":{"event":"failed","severity":"permanent","recipient":"ada@example.com",
"message":{"headers":{"message-id":"` + msgID + `"}},
"delivery-status":{"code":550,"message":"5.1.1 The email account that you tried to reach does not exist"}}}`
	}
	post := func(path, b string) int {
		resp, err := http.Post(base+path, "application/json", strings.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post("/webhooks/sendgrid", "[]"); code != http.StatusNotFound {
		t.Fatalf("unconfigured provider: %d, want 404", code)
	}
	if code := post("/webhooks/mailgun", body(strings.Repeat("0", 64))); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d, want 401", code)
	}
	if s := h.subscriberStatus("ada@example.com"); s != "confirmed" {
		t.Fatalf("after a bad signature ada is %s", s)
	}
	if code := post("/webhooks/mailgun", body(hex.EncodeToString(mac.Sum(nil)))); code != http.StatusNoContent {
		t.Fatalf("signed bounce: %d, want 204\n%s", code, logs.String())
	}
	if s := h.subscriberStatus("ada@example.com"); s != "bounced" {
		t.Fatalf("after a signed hard bounce ada is %s\n%s", s, logs.String())
	}
	if s := h.subscriberStatus("zoe@example.com"); s != "confirmed" {
		t.Fatalf("zoe is %s", s)
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("the reader pages beside the webhooks: %v %v", resp, err)
	}
}

// bounces imap needs its mailbox, and stops at once on SIGINT or SIGTERM
// even while its server does not answer.
func TestBouncesIMAPCommand(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	t.Setenv("NEWSLETTER_BOUNCE_IMAP", "")
	if code, _, errs := h.run("bounces", "imap"); code == 0 || !strings.Contains(errs, "NEWSLETTER_BOUNCE_IMAP") {
		t.Fatalf("no mailbox: exit %d, %q", code, errs)
	}
	t.Setenv("NEWSLETTER_BOUNCE_IMAP", "imaps://u:hunter2pw@127.0.0.1:1/INBOX")
	t.Setenv("NEWSLETTER_BOUNCE_IMAP_INTERVAL", "1h")
	ctx, cancel := context.WithCancel(context.Background())
	logs := &logtest.Buffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"bounces", "imap"}, io.Discard, logs) }()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "IMAP poll failed") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 || !strings.Contains(logs.String(), "IMAP poller stopped") {
			t.Fatalf("exit %d:\n%s", code, logs.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("bounces imap did not stop")
	}
	if strings.Contains(logs.String(), "hunter2pw") {
		t.Fatalf("the log shows the password:\n%s", logs.String())
	}
}

func (h *harness) subscriberStatus(email string) string {
	h.t.Helper()
	var s string
	if err := h.db.Get(&s, `SELECT status FROM subscribers WHERE email = $1`, email); err != nil {
		h.t.Fatal(err)
	}
	return s
}
