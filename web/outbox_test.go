package web_test

import (
	"context"
	"log/slog"
	"net/mail"
	"strings"
	"testing"
	"time"

	"newsletter/internal/logtest"
	"newsletter/internal/smtptest"
	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/web"
)

// A confirmation email that could not be sent is logged with why: the
// relay's reply or the dial error, its kind and the fix, by subscriber id
// and never with the address.
func TestOutboxLogsWhyAConfirmationWasNotSent(t *testing.T) {
	const addr = "ann.reader@example.com"
	msg := mailer.Message{
		From:    &mail.Address{Address: "newsletter@london-daily.example"},
		To:      &mail.Address{Address: addr},
		Subject: "Confirm",
		Text:    "Please confirm.",
	}
	relay := smtptest.Start(t, smtptest.WithAuth("newsletter", "right"))
	relay.RejectRcpt(addr, 550, "5.1.1", "<"+addr+">: no such user")
	for name, tc := range map[string]struct {
		user, pass string
		want       []string
	}{
		"wrong password": {"newsletter", "wrong", []string{`kind="relay misconfigured"`, "535 5.7.8", "fix: correct the user name and password in SMTP_URL"}},
		"refused":        {"newsletter", "right", []string{"kind=permanent", "stage=rcpt", "550 5.1.1 <<recipient>>: no such user"}},
	} {
		t.Run(name, func(t *testing.T) {
			logs := &logtest.Buffer{}
			cfg := smtpclient.Config{Host: relay.Host(), Port: relay.Port(), TLS: smtpclient.TLSNone, Timeout: 5 * time.Second,
				Username: tc.user, Password: tc.pass}
			o := web.NewOutbox(cfg, slog.New(slog.NewTextHandler(logs, nil)), 1, 10)
			if !o.Enqueue(42, msg) {
				t.Fatal("not queued")
			}
			if err := o.Close(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := logs.String()
			if !strings.Contains(got, "confirmation email not sent") || !strings.Contains(got, "subscriber=42") {
				t.Fatalf("log: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("log lacks %q: %s", w, got)
				}
			}
			if strings.Contains(got, addr) || strings.Contains(got, "wrong") && tc.pass == "wrong" {
				t.Errorf("log quotes the address or the password: %s", got)
			}
		})
	}
}
