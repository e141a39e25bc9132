package smtptest

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/smtp"
	"net/textproto"
	"newsletter/internal/logtest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

const body = "Subject: hi\r\n\r\nhello\r\n.leading dot\r\n"

// dial opens a net/smtp client to s with a deadline so a broken test cannot hang.
func dial(t *testing.T, s *Server) *smtp.Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c, err := smtp.NewClient(conn, s.Host())
	if err != nil {
		t.Fatalf("greeting: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func send(c *smtp.Client, from string, to []string, data string) error {
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("MAIL: %w", err)
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return fmt.Errorf("RCPT: %w", err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := io.WriteString(w, data); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("end of data: %w", err)
	}
	return nil
}

func replyCode(t *testing.T, err error) (int, string) {
	t.Helper()
	var tpe *textproto.Error
	if !errors.As(err, &tpe) {
		t.Fatalf("want an SMTP reply error, got %v", err)
	}
	return tpe.Code, tpe.Msg
}

func TestDeliveryAndExtensions(t *testing.T) {
	s := Start(t)
	c := dial(t, s)
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	for _, ext := range []string{"ENHANCEDSTATUSCODES", "8BITMIME", "PIPELINING", "SMTPUTF8"} {
		if ok, _ := c.Extension(ext); !ok {
			t.Errorf("extension %s not advertised", ext)
		}
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Errorf("AUTH advertised without WithAuth")
	}
	if err := send(c, "news@example.com", []string{"a@example.com", "b@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	msgs := s.WaitFor(t, 1, time.Second)
	m := msgs[0]
	if m.From != "news@example.com" || strings.Join(m.To, ",") != "a@example.com,b@example.com" {
		t.Errorf("envelope = %q %q", m.From, m.To)
	}
	// Dot-stuffing undone, CRLF kept.
	if string(m.Data) != body {
		t.Errorf("data = %q, want %q", m.Data, body)
	}
	if s.Connections() != 1 {
		t.Errorf("Connections = %d, want 1", s.Connections())
	}
	// Messages returns a copy.
	msgs[0].Data[0] = 'X'
	if s.Messages()[0].Data[0] != 'S' {
		t.Errorf("Messages shares memory with the server")
	}
}

func TestRejectRcptKeepsConnectionUsable(t *testing.T) {
	s := Start(t)
	s.RejectRcpt("Gone@Example.com", 550, "5.1.1", "No such user")
	c := dial(t, s)
	err := send(c, "news@example.com", []string{"gone@example.com"}, body)
	code, msg := replyCode(t, err)
	if code != 550 || msg != "5.1.1 No such user" {
		t.Errorf("reply = %d %q", code, msg)
	}
	if err := c.Reset(); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "news@example.com", []string{"ok@example.com"}, body); err != nil {
		t.Fatalf("next message on same connection: %v", err)
	}
	// Clearing the rule.
	s.RejectRcpt("gone@example.com", 0, "", "")
	if err := send(c, "news@example.com", []string{"gone@example.com"}, body); err != nil {
		t.Fatalf("after clearing rule: %v", err)
	}
	if n := len(s.Messages()); n != 2 {
		t.Errorf("messages = %d, want 2", n)
	}
}

func TestRejectRcptTemporary(t *testing.T) {
	s := Start(t)
	s.RejectRcpt("busy@example.com", 451, "4.3.0", "Try later")
	c := dial(t, s)
	code, msg := replyCode(t, send(c, "n@example.com", []string{"busy@example.com"}, body))
	if code != 451 || msg != "4.3.0 Try later" {
		t.Errorf("reply = %d %q", code, msg)
	}
}

func TestReject421ClosesConnection(t *testing.T) {
	s := Start(t)
	s.RejectRcpt("x@example.com", 421, "4.7.28", "Rate limited")
	c := dial(t, s)
	code, _ := replyCode(t, send(c, "n@example.com", []string{"x@example.com"}, body))
	if code != 421 {
		t.Fatalf("code = %d", code)
	}
	if err := c.Noop(); err == nil {
		t.Errorf("connection still usable after 421")
	}
}

func TestRejectData(t *testing.T) {
	s := Start(t)
	s.RejectData("spam@example.com", 554, "5.7.1", "Message rejected")
	c := dial(t, s)
	code, msg := replyCode(t, send(c, "n@example.com", []string{"spam@example.com"}, body))
	if code != 554 || msg != "5.7.1 Message rejected" {
		t.Errorf("reply = %d %q", code, msg)
	}
	// The transaction is over after the end-of-data reply (RFC 5321 section 4.1.1.4),
	// so a new one can start without RSET.
	if err := send(c, "n@example.com", []string{"ok@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("messages = %d, want 1", n)
	}
}

func TestDropAfter(t *testing.T) {
	s := Start(t)
	s.DropAfter(1)
	c := dial(t, s)
	if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	big := body + strings.Repeat("x", 100) + "\r\n"
	err := send(c, "n@example.com", []string{"b@example.com"}, big)
	if err == nil {
		t.Fatal("second message went through, want a cut connection")
	}
	var tpe *textproto.Error
	if errors.As(err, &tpe) {
		t.Fatalf("got an SMTP reply %v, want no reply at all", tpe)
	}
	// One-shot: a new connection works again.
	c2 := dial(t, s)
	if err := send(c2, "n@example.com", []string{"c@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	if got := len(s.Messages()); got != 2 {
		t.Errorf("messages = %d, want 2", got)
	}
	if s.Connections() != 2 {
		t.Errorf("Connections = %d, want 2", s.Connections())
	}
}

func TestStall(t *testing.T) {
	s := Start(t)
	s.Stall("slow@example.com", 300*time.Millisecond)
	c := dial(t, s)
	if err := c.Mail("n@example.com"); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := c.Rcpt("slow@example.com"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d < 300*time.Millisecond {
		t.Errorf("RCPT answered after %v, want >= 300ms", d)
	}
	start = time.Now()
	if err := c.Rcpt("fast@example.com"); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > 200*time.Millisecond {
		t.Errorf("unstalled RCPT took %v", d)
	}
}

func TestStallDoesNotBlockClose(t *testing.T) {
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Stall("slow@example.com", time.Hour)
	c := dial(t, s)
	if err := c.Mail("n@example.com"); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.Rcpt("slow@example.com") }()
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- s.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close blocked on a stalled session")
	}
}

func TestAuth(t *testing.T) {
	s := Start(t, WithAuth("user", "s3cr3t-pw"))
	c := dial(t, s)
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN" {
		t.Fatalf("AUTH = %v %q", ok, mechs)
	}
	code, _ := replyCode(t, c.Mail("n@example.com"))
	if code != 530 {
		t.Errorf("MAIL before AUTH = %d, want 530", code)
	}
	// net/smtp's PlainAuth allows unencrypted auth to loopback only and
	// insists that host matches the name the client was created with.
	if err := c.Auth(smtp.PlainAuth("", "user", "wrong", s.Host())); err == nil {
		t.Fatal("wrong password accepted")
	}
	c = dial(t, s)
	if err := c.Auth(smtp.PlainAuth("", "user", "s3cr3t-pw", s.Host())); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
		t.Fatal(err)
	}
}

func TestDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	s := Start(t, WithDir(dir))
	c := dial(t, s)
	if err := send(c, "n@example.com", []string{"Ann+news@Example.com"}, body); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "n@example.com", []string{"bob@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"0001-ann+news_example.com.eml", "0002-bob_example.com.eml"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("reading %s: %v", name, err)
		}
		if string(b) != body {
			t.Errorf("%s = %q", name, b)
		}
	}
}

func TestRelay(t *testing.T) {
	upstream := Start(t)
	s := Start(t, WithRelay(upstream.Addr()))
	c := dial(t, s)
	if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	got := upstream.WaitFor(t, 1, 2*time.Second)
	if got[0].From != "n@example.com" || got[0].To[0] != "a@example.com" || string(got[0].Data) != body {
		t.Errorf("relayed = %+v", got[0])
	}

	// A relay that refuses the message: the client still gets 250 and the
	// message is kept; the failure is counted, not retried (5xx).
	upstream.RejectRcpt("b@example.com", 550, "5.1.1", "nope")
	if err := send(c, "n@example.com", []string{"b@example.com"}, body); err != nil {
		t.Fatalf("a relay refusal reached the client: %v", err)
	}
	waitRelayFailed(t, s, 1)
	if n := len(s.Messages()); n != 2 {
		t.Errorf("messages = %d, want 2", n)
	}
	if s.Relayed() != 1 || upstream.Accepted() != 1 {
		t.Errorf("relayed %d, upstream accepted %d; want 1 and 1", s.Relayed(), upstream.Accepted())
	}
}

// A relay target that isn't there (the web inbox did not start) never turns
// into a 4xx: every message is stored as an .eml file, and the failure is
// logged.
func TestRelayDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	dir := t.TempDir()
	var log logtest.Buffer
	s := Start(t, WithDir(dir), WithRelay(dead), WithLog(slog.New(slog.NewTextHandler(&log, nil))))
	c := dial(t, s)
	for _, to := range []string{"a@example.com", "b@example.com"} {
		if err := send(c, "n@example.com", []string{to}, body); err != nil {
			t.Fatalf("sending to %s with the relay down: %v", to, err)
		}
	}
	for _, name := range []string{"0001-a_example.com.eml", "0002-b_example.com.eml"} {
		if b, err := os.ReadFile(filepath.Join(dir, name)); err != nil || string(b) != body {
			t.Errorf("%s: %q, %v", name, b, err)
		}
	}
	waitRelayFailed(t, s, 2)
	if got := log.String(); !strings.Contains(got, "not passed on") || !strings.Contains(got, dead) {
		t.Errorf("log does not say the relay failed:\n%s", got)
	}
}

func waitRelayFailed(t *testing.T, s *Server, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for s.RelayFailed() < n {
		if time.Now().After(deadline) {
			t.Fatalf("relay failures = %d, want %d", s.RelayFailed(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestStartTLS(t *testing.T) {
	s := Start(t, WithTLS(), WithAuth("u", "p"))
	c := dial(t, s)
	if err := c.Hello("client.example"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := c.Extension("STARTTLS"); !ok {
		t.Fatal("STARTTLS not advertised")
	}
	conf := s.ClientTLSConfig()
	conf.ServerName = s.Host()
	if err := c.StartTLS(conf); err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	if err := c.Auth(smtp.PlainAuth("", "u", "p", s.Host())); err != nil {
		t.Fatalf("AUTH over TLS: %v", err)
	}
	if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
		t.Fatal(err)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := Start(t, WithImplicitTLS())
	conf := s.ClientTLSConfig()
	conf.ServerName = "localhost"
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(), conf)
	if err != nil {
		t.Fatalf("TLS dial: %v", err)
	}
	c, err := smtp.NewClient(conn, "localhost")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
		t.Fatal(err)
	}
	if len(s.Messages()) != 1 {
		t.Error("message not recorded")
	}
}

func TestConcurrentClientsAndFaults(t *testing.T) {
	s := Start(t)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			c := dial(t, s)
			for j := range 5 {
				_ = send(c, "n@example.com", []string{fmt.Sprintf("r%d-%d@example.com", i, j)}, body)
				_ = c.Reset()
			}
		})
	}
	for i := range 20 {
		s.RejectRcpt(fmt.Sprintf("r%d-0@example.com", i%8), 550, "5.1.1", "x")
		s.Stall("nobody@example.com", time.Millisecond)
		_ = s.Messages()
	}
	wg.Wait()
	if s.Connections() != 8 {
		t.Errorf("Connections = %d", s.Connections())
	}
}

func TestHostPort(t *testing.T) {
	s := Start(t)
	if s.Host() != "127.0.0.1" || s.Port() == 0 || s.Addr() != net.JoinHostPort(s.Host(), fmt.Sprint(s.Port())) {
		t.Errorf("Addr %q Host %q Port %d", s.Addr(), s.Host(), s.Port())
	}
	if s.ClientTLSConfig() != nil {
		t.Error("ClientTLSConfig without TLS")
	}
}

func TestDiscard(t *testing.T) {
	s := Start(t, WithDiscard())
	c := dial(t, s)
	for range 3 {
		if err := send(c, "n@example.com", []string{"a@example.com"}, body); err != nil {
			t.Fatal(err)
		}
	}
	if got := s.WaitFor(t, 3, time.Second); len(got) != 0 {
		t.Errorf("WaitFor returned %d messages with WithDiscard", len(got))
	}
	if s.Accepted() != 3 || len(s.Messages()) != 0 {
		t.Errorf("Accepted = %d, Messages = %d", s.Accepted(), len(s.Messages()))
	}
}
