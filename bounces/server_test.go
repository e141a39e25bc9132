package bounces_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"newsletter/bounces"
	"newsletter/internal/smtptest"
)

// serve runs the fixture's bounce listener until the test ends, and
// returns its address.
func (f *fixture) serve(t *testing.T, srv *bounces.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv.Handler, srv.Log = f.h, f.h.Log
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("the listener did not stop cleanly: %v", err)
		}
	})
	return ln.Addr().String()
}

// mail delivers msg to rcpt over SMTP, from the null reverse-path, as a
// bounce comes; the error is the first refusal.
func mail(t *testing.T, addr, rcpt string, msg io.Reader, size int64) error {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Mail("", &smtp.MailOptions{Size: size}); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.Copy(w, msg); err != nil {
		w.Close()
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func fixtureFile(t *testing.T, name string) io.Reader {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func smtpCode(err error) int {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return se.Code
	}
	return 0
}

func TestServerActsOnWhatComesBack(t *testing.T) {
	f := newFixture(t, 4)
	addr := f.serve(t, &bounces.Server{})
	for i, file := range map[int]string{1: "gmail-hard.eml", 2: "arf-abuse.eml", 3: "autoreply-outlook.eml"} {
		if err := mail(t, addr, f.h.VERP.Address(f.delivery(t, i)), fixtureFile(t, file), 0); err != nil {
			t.Fatalf("%s: %v", file, err)
		}
	}
	sub, _ := f.subs.ByEmail(context.Background(), "reader4@example.org")
	if err := mail(t, addr, "unsubscribe+"+f.subs.Tokens.Unsubscribe(sub.UUID)+"@EXAMPLE.com", strings.NewReader("Subject: unsubscribe\r\n\r\n"), 0); err != nil {
		t.Fatal(err)
	}
	want := []string{"bounced", "unsubscribed", "confirmed", "unsubscribed"}
	for i, w := range want {
		if got := f.status(t, i+1); got != w {
			t.Errorf("reader %d: %s, want %s", i+1, got, w)
		}
	}
	if n := f.count(t, `SELECT count(*) FROM bounce_events`); n != 3 {
		t.Errorf("%d bounce events, want 3 (hard, complaint, unsubscribe)", n)
	}
}

func TestServerRefusesWhatIsNotOurs(t *testing.T) {
	f := newFixture(t, 2)
	addr := f.serve(t, &bounces.Server{MaxConns: 2})
	verp := f.h.VERP.Address(f.delivery(t, 1))
	other := bounces.NewVERP([]byte(strings.Repeat("x", 32)), "example.com")
	refusals := map[string]struct {
		rcpt string
		size int64
		body io.Reader
		code int
	}{
		"a relay":        {"someone@elsewhere.example", 0, strings.NewReader("Subject: hi\r\n\r\nhi\r\n"), 550},
		"postmaster":     {"postmaster@example.com", 0, strings.NewReader("Subject: hi\r\n\r\nhi\r\n"), 550},
		"a forged token": {other.Address(f.delivery(t, 1)), 0, fixtureFile(t, "postfix-hard.eml"), 550},
		"50 MB at SIZE":  {verp, 50 << 20, strings.NewReader(""), 552},
		"11 MB at DATA":  {verp, 0, io.MultiReader(strings.NewReader("Subject: Undeliverable\r\n\r\n"), strings.NewReader(strings.Repeat(strings.Repeat("x", 998)+"\r\n", 11<<10))), 552},
	}
	for name, c := range refusals {
		if err := mail(t, addr, c.rcpt, c.body, c.size); smtpCode(err) != c.code {
			t.Errorf("%s: %v, want %d", name, err, c.code)
		}
	}
	// A flood of connections: past MaxConns, each is told 421 at once.
	// (go-smtp's client reads the greeting at its first command.)
	greet := func() (*smtp.Client, error) {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Hello("flood.example"); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	held := make([]*smtp.Client, 2)
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; i < len(held); {
		// The refused senders' connections above may still hold
		// their slots a moment.
		c, err := greet()
		if err != nil && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			continue
		} else if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held[i] = c
		i++
	}
	if _, err := greet(); smtpCode(err) != 421 {
		t.Errorf("a third connection with two allowed: %v, want 421", err)
	}
	held[0].Quit()
	held[0].Close()
	deadline = time.Now().Add(5 * time.Second)
	for {
		c, err := greet()
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a slot freed by a closed connection is not taken again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	f.unchanged(t, 2)
	for _, w := range []string{"not an address of the bounce domain", "forged or damaged VERP token", "too many at once"} {
		if !strings.Contains(f.log.String(), w) {
			t.Errorf("the log does not say %q", w)
		}
	}
	if strings.Contains(f.log.String(), "@example.org") {
		t.Errorf("the log names a subscriber's address:\n%s", f.log)
	}
}

func TestServerOffersStartTLS(t *testing.T) {
	f := newFixture(t, 1)
	cfg, certPEM, err := smtptest.SelfSigned()
	if err != nil {
		t.Fatal(err)
	}
	addr := f.serve(t, &bounces.Server{TLS: cfg})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(certPEM)
	c, err := smtp.DialStartTLS(addr, &tls.Config{RootCAs: roots, ServerName: "127.0.0.1"})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.SendMail("", []string{f.h.VERP.Address(f.delivery(t, 1))}, fixtureFile(t, "exim-hard.eml")); err != nil {
		t.Fatal(err)
	}
	if f.status(t, 1) != "bounced" {
		t.Fatal("the bounce over STARTTLS was not acted on")
	}
}
