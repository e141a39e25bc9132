package smtpclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/mail"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	gomail "github.com/wneessen/go-mail"

	"newsletter/internal/smtptest"
	"newsletter/mailer"
)

func plainConfig(s *smtptest.Server) Config {
	return Config{Host: s.Host(), Port: s.Port(), TLS: TLSNone, Timeout: 5 * time.Second, HELO: "sender.test"}
}

func dialT(t *testing.T, cfg Config) *MsgConn {
	t.Helper()
	c, err := DialMsg(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func msgTo(t testing.TB, addr string) *gomail.Msg {
	t.Helper()
	m := sampleMessage()
	m.To = &mail.Address{Name: "Reader", Address: addr}
	m.MessageID = ""
	msg, err := mailer.Build(m)
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

func sendErr(t *testing.T, c *MsgConn, addr string) *Error {
	t.Helper()
	reply, err := c.Send(context.Background(), msgTo(t, addr))
	if err == nil {
		t.Fatalf("Send to %s succeeded (%q), want an error", addr, reply)
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("Send error is %T, want *Error: %v", err, err)
	}
	if Classify(err) != e {
		t.Errorf("Classify does not return the *Error as is")
	}
	return e
}

func mustSend(t *testing.T, c *MsgConn, addr string) string {
	t.Helper()
	reply, err := c.Send(context.Background(), msgTo(t, addr))
	if err != nil {
		t.Fatalf("Send to %s: %v", addr, err)
	}
	return reply
}

func TestSendDelivers(t *testing.T) {
	s := smtptest.Start(t)
	c := dialT(t, plainConfig(s))
	msg := msgTo(t, "zoe@example.org")
	reply, err := c.Send(context.Background(), msg)
	if err != nil {
		t.Fatal(err)
	}
	if reply != "2.0.0 OK: queued" {
		t.Errorf("reply = %q", reply)
	}
	got := s.WaitFor(t, 1, time.Second)[0]
	if got.From != "daily@news.example.com" || len(got.To) != 1 || got.To[0] != "zoe@example.org" {
		t.Errorf("envelope = %q -> %q", got.From, got.To)
	}
	parsed, err := mail.ReadMessage(bytes.NewReader(got.Data))
	if err != nil {
		t.Fatalf("received message does not parse: %v", err)
	}
	if parsed.Header.Get("Message-Id") != "<"+strings.Trim(msg.GetMessageID(), "<>")+">" ||
		parsed.Header.Get("List-Unsubscribe-Post") != "List-Unsubscribe=One-Click" {
		t.Errorf("headers = %v", parsed.Header)
	}
	// Several messages over the one connection.
	for i := range 3 {
		mustSend(t, c, fmt.Sprintf("r%d@example.org", i))
	}
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1", n)
	}
	if c.Broken() {
		t.Error("Broken after successful sends")
	}
}

func TestHardBounceKeepsConnection(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt("gone@example.org", 550, "5.1.1", "No such user here")
	c := dialT(t, plainConfig(s))
	e := sendErr(t, c, "gone@example.org")
	if e.Code != 550 || e.Enhanced != "5.1.1" || e.Text != "No such user here" || e.Stage != StageRcpt {
		t.Errorf("error = %+v", e)
	}
	if !e.Permanent || !e.IsHardBounce() || e.ConnLost || e.Throttled || e.Temporary() {
		t.Errorf("flags: %+v", e)
	}
	if got := e.Error(); got != "smtp rcpt: 550 5.1.1 No such user here (permanent)" {
		t.Errorf("Error() = %q", got)
	}
	var se *gomail.SendError
	if !errors.As(e, &se) || se.Reason != gomail.ErrSMTPRcptTo {
		t.Errorf("go-mail SendError not in chain: %v", e.Err)
	}
	if c.Broken() {
		t.Fatal("Broken after a recipient rejection")
	}
	mustSend(t, c, "ok@example.org")
	if n := s.Connections(); n != 1 {
		t.Errorf("Connections = %d, want 1 (same connection)", n)
	}
}

func TestTemporaryRejections(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt("busy@example.org", 451, "4.3.0", "Try again later")
	s.RejectRcpt("grey@example.org", 451, "4.7.1", "Greylisted, please retry")
	s.RejectRcpt("full@example.org", 452, "4.2.2", "Mailbox full")
	c := dialT(t, plainConfig(s))

	e := sendErr(t, c, "busy@example.org")
	if e.Code != 451 || e.Permanent || e.Throttled || e.ConnLost || e.IsHardBounce() || e.Stage != StageRcpt {
		t.Errorf("451 4.3.0: %+v", e)
	}
	e = sendErr(t, c, "grey@example.org")
	if e.Code != 451 || e.Permanent || !e.Throttled || e.ConnLost {
		t.Errorf("451 4.7.1: %+v", e)
	}
	e = sendErr(t, c, "full@example.org")
	if e.Code != 452 || e.Permanent || e.Throttled || e.ConnLost || e.Enhanced != "4.2.2" {
		t.Errorf("452 4.2.2: %+v", e)
	}
	mustSend(t, c, "ok@example.org")
}

func Test421ThrottledAndRedial(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt("a@example.org", 421, "4.7.28", "Unusual rate of mail, slow down")
	cfg := plainConfig(s)
	c := dialT(t, cfg)
	e := sendErr(t, c, "a@example.org")
	if e.Code != 421 || e.Enhanced != "4.7.28" || e.Text != "Unusual rate of mail, slow down" {
		t.Errorf("error = %+v", e)
	}
	if e.Permanent || !e.Throttled || !e.ConnLost {
		t.Errorf("flags: %+v", e)
	}
	if !c.Broken() {
		t.Fatal("not Broken after 421")
	}
	e = sendErr(t, c, "b@example.org")
	if !errors.Is(e, ErrConnBroken) || !e.ConnLost {
		t.Errorf("send on broken conn: %+v", e)
	}
	if err := c.Close(); err != nil {
		t.Errorf("Close of a broken conn: %v", err)
	}
	s.RejectRcpt("a@example.org", 0, "", "")
	c2 := dialT(t, cfg)
	mustSend(t, c2, "a@example.org")
	if n := s.Connections(); n != 2 {
		t.Errorf("Connections = %d, want 2", n)
	}
}

func TestRejectData(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectData("spam@example.org", 554, "5.7.1", "Message content rejected")
	c := dialT(t, plainConfig(s))
	e := sendErr(t, c, "spam@example.org")
	if e.Code != 554 || e.Enhanced != "5.7.1" || e.Stage != StageData || !e.Permanent || e.IsHardBounce() || e.ConnLost {
		t.Errorf("error = %+v", e)
	}
	if e.Text != "Message content rejected" {
		t.Errorf("Text = %q", e.Text)
	}
	// The end-of-data reply ends the transaction (RFC 5321 section 4.1.1.4);
	// go-mail sends no RSET here, and the next transaction works.
	mustSend(t, c, "ok@example.org")
}

func TestDropMidDataThenRedial(t *testing.T) {
	s := smtptest.Start(t)
	cfg := plainConfig(s)
	c := dialT(t, cfg)
	mustSend(t, c, "first@example.org")
	s.DropAfter(0)
	e := sendErr(t, c, "second@example.org")
	if e.Code != 0 || e.Permanent || !e.ConnLost || e.Stage != StageData {
		t.Errorf("error = %+v", e)
	}
	if !c.Broken() {
		t.Fatal("not Broken after the connection dropped")
	}
	_ = c.Close()
	c2 := dialT(t, cfg)
	mustSend(t, c2, "second@example.org")
	if got := len(s.Messages()); got != 2 {
		t.Errorf("messages = %d, want 2", got)
	}
}

func TestStallBeyondTimeout(t *testing.T) {
	s := smtptest.Start(t)
	s.Stall("slow@example.org", 3*time.Second)
	cfg := plainConfig(s)
	cfg.Timeout = 300 * time.Millisecond
	c := dialT(t, cfg)
	start := time.Now()
	e := sendErr(t, c, "slow@example.org")
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Send took %v despite a 300ms timeout", d)
	}
	if e.Permanent || !e.Timeout || !e.ConnLost || e.Stage != StageRcpt || e.Code != 0 {
		t.Errorf("error = %+v", e)
	}
	if !errors.Is(e, os.ErrDeadlineExceeded) {
		t.Errorf("error chain lacks os.ErrDeadlineExceeded: %v", e.Err)
	}
	if !strings.Contains(e.Error(), "timed out") {
		t.Errorf("Error() = %q", e.Error())
	}
	if !c.Broken() {
		t.Error("not Broken after a timeout")
	}
}

func TestSendContext(t *testing.T) {
	s := smtptest.Start(t)
	s.Stall("slow@example.org", 3*time.Second)
	c := dialT(t, plainConfig(s))

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Send(ctx, msgTo(t, "a@example.org")); err == nil || Classify(err).ConnLost || !errors.Is(err, context.Canceled) {
		t.Errorf("Send with a canceled context: %v", err)
	}
	if c.Broken() {
		t.Fatal("a context canceled before sending must not break the connection")
	}

	ctx, cancel = context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Send(ctx, msgTo(t, "slow@example.org"))
	if time.Since(start) > 2*time.Second {
		t.Errorf("Send ignored the context deadline")
	}
	e := Classify(err)
	if e == nil || !e.Timeout || !e.ConnLost || e.Permanent || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Send past the context deadline: %+v", e)
	}
	if !c.Broken() {
		t.Error("not Broken after abandoning a transaction")
	}
}

func TestAuthPlainOverPlainTextWhenExplicit(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.Username, cfg.Password = "user", secret
	c := dialT(t, cfg)
	mustSend(t, c, "a@example.org")

	cfg.Password = "wrong-" + secret
	_, err := DialMsg(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Code != 535 || e.Enhanced != "5.7.8" || !e.Permanent || e.Stage != StageDial || !e.ConnLost {
		t.Fatalf("wrong password: %+v", e)
	}
	assertNoSecret(t, err)

	// Without credentials the server refuses MAIL FROM: a permanent error,
	// but not a bounce of the subscriber.
	cfg.Username, cfg.Password = "", ""
	c = dialT(t, cfg)
	e = sendErr(t, c, "a@example.org")
	if e.Code != 530 || e.Stage != StageMail || !e.Permanent || e.IsHardBounce() {
		t.Errorf("unauthenticated: %+v", e)
	}
}

func assertNoSecret(t *testing.T, err error) {
	t.Helper()
	for e := err; e != nil; e = errors.Unwrap(e) {
		if strings.Contains(e.Error(), secret) || strings.Contains(fmt.Sprintf("%+v", e), secret) {
			t.Errorf("error leaks the password: %v", e)
		}
	}
}

func TestStartTLSRequired(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = "" // zero value = STARTTLS required
	cfg.Username, cfg.Password = "user", secret
	_, err := DialMsg(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Stage != StageDial || e.Permanent || !e.ConnLost || !strings.Contains(e.Error(), "STARTTLS") {
		t.Fatalf("STARTTLS missing: %+v", e)
	}
	assertNoSecret(t, err)
}

func TestStartTLSWithAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithTLS(), smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = TLSStartTLS
	cfg.Username, cfg.Password = "user", secret
	cfg.TLSConfig = s.ClientTLSConfig()
	c := dialT(t, cfg)
	mustSend(t, c, "a@example.org")

	// Certificate not trusted: a TLS failure, temporary, no password in it.
	cfg.TLSConfig = nil
	_, err := DialMsg(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Permanent || !e.ConnLost || !strings.Contains(e.Text, "TLS certificate verification failed") {
		t.Fatalf("untrusted certificate: %+v", e)
	}
	assertNoSecret(t, err)
}

func TestImplicitTLSWithAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithImplicitTLS(), smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = TLSImplicit
	cfg.Username, cfg.Password = "user", secret
	cfg.TLSConfig = s.ClientTLSConfig()
	c := dialT(t, cfg)
	mustSend(t, c, "a@example.org")
	mustSend(t, c, "b@example.org")
	if got := len(s.Messages()); got != 2 {
		t.Errorf("messages = %d", got)
	}
}

func TestDialFailures(t *testing.T) {
	// A port nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	cfg := Config{Host: "127.0.0.1", Port: addr.Port, TLS: TLSNone, Username: "u", Password: secret, Timeout: time.Second}
	_, err = DialMsg(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Stage != StageDial || e.Permanent || !e.ConnLost {
		t.Errorf("refused: %+v", e)
	}
	assertNoSecret(t, err)

	// A server that accepts TCP but never greets: the dial timeout applies.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	cfg.Port = silent.Addr().(*net.TCPAddr).Port
	cfg.Timeout = 200 * time.Millisecond
	start := time.Now()
	_, err = DialMsg(context.Background(), cfg)
	if e := Classify(err); e == nil || !e.Timeout || e.Permanent {
		t.Errorf("silent server: %+v", e)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("dial took %v", time.Since(start))
	}

	// The context cancels the handshake too.
	cfg.Timeout = 10 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	start = time.Now()
	_, err = DialMsg(ctx, cfg)
	if e := Classify(err); e == nil || !e.Timeout || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("context deadline during greeting: %+v", e)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("dial ignored the context for %v", time.Since(start))
	}

	// Invalid configurations are rejected before dialing.
	for _, bad := range []Config{{}, {Host: "h", Port: 70000}, {Host: "h", TLS: "ssl"}, {Host: "h;x"}} {
		if _, err := DialMsg(context.Background(), bad); err == nil {
			t.Errorf("DialMsg(%v) succeeded", bad)
		}
	}
}

func TestConcurrentSendsOnOneConn(t *testing.T) {
	s := smtptest.Start(t)
	c := dialT(t, plainConfig(s))
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := c.Send(context.Background(), msgTo(t, fmt.Sprintf("c%d@example.org", i))); err != nil {
				t.Errorf("Send: %v", err)
			}
		})
	}
	wg.Wait()
	if got := len(s.Messages()); got != 8 {
		t.Errorf("messages = %d", got)
	}
}

func TestCloseQuits(t *testing.T) {
	s := smtptest.Start(t)
	c := dialT(t, plainConfig(s))
	mustSend(t, c, "a@example.org")
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if !c.Broken() {
		t.Error("closed Conn does not report Broken")
	}
	if _, err := c.Send(context.Background(), msgTo(t, "b@example.org")); !errors.Is(err, ErrConnBroken) {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestClassifyRawGoMail checks Classify on errors straight from go-mail's Client
// (no Conn wrapper), and pins down go-mail behaviour the design relies on.
func TestClassifyRawGoMail(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt("gone@example.org", 550, "5.1.1", "No such user")
	s.RejectRcpt("rate@example.org", 421, "4.7.28", "Slow down")
	s.Stall("slow@example.org", 3*time.Second)
	newClient := func() *gomail.Client {
		t.Helper()
		c, err := gomail.NewClient(s.Host(), gomail.WithPort(s.Port()), gomail.WithTLSPolicy(gomail.NoTLS),
			gomail.WithoutNoop(), gomail.WithTimeout(300*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.DialWithContext(context.Background()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close() })
		return c
	}

	c := newClient()
	err := c.Send(msgTo(t, "gone@example.org"))
	e := Classify(err)
	if e.Code != 550 || e.Enhanced != "5.1.1" || e.Text != "No such user" || !e.IsHardBounce() || e.ConnLost {
		t.Errorf("550: %+v", e)
	}
	// go-mail sent RSET after the failed RCPT, so the connection goes on.
	if err := c.Send(msgTo(t, "ok@example.org")); err != nil {
		t.Errorf("send after RCPT failure: %v", err)
	}

	err = c.Send(msgTo(t, "rate@example.org"))
	e = Classify(err)
	if e.Code != 421 || !e.Throttled || !e.ConnLost || e.Permanent || !strings.HasPrefix(e.Text, "Slow down") {
		t.Errorf("421: %+v", e)
	}
	// go-mail does not notice the closed connection: the next Send fails
	// with an I/O error and no reply code, which SendError.IsTemp() calls
	// permanent. Classify treats it as a lost connection.
	err = c.Send(msgTo(t, "ok@example.org"))
	var se *gomail.SendError
	if !errors.As(err, &se) || se.IsTemp() || se.ErrorCode() != 0 {
		t.Errorf("go-mail after 421: %v (IsTemp %v)", err, se != nil && se.IsTemp())
	}
	if e := Classify(err); !e.ConnLost || e.Permanent {
		t.Errorf("after 421: %+v", e)
	}

	c = newClient()
	err = c.Send(msgTo(t, "slow@example.org"))
	if !errors.As(err, &se) || se.IsTemp() {
		t.Errorf("go-mail timeout: %v", err)
	}
	if e := Classify(err); !e.Timeout || !e.ConnLost || e.Permanent || e.Stage != StageRcpt {
		t.Errorf("timeout: %+v", e)
	}

	c = newClient()
	s.DropAfter(0)
	err = c.Send(msgTo(t, "ok@example.org"))
	if e := Classify(err); e.Code != 0 || !e.ConnLost || e.Permanent || e.Stage != StageData {
		t.Errorf("dropped: %+v (%v)", e, err)
	}
}

func Test421AtEndOfData(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectData("a@example.org", 421, "4.4.5", "Too busy, closing")
	c := dialT(t, plainConfig(s))
	e := sendErr(t, c, "a@example.org")
	if e.Code != 421 || e.Stage != StageData || !e.Throttled || !e.ConnLost || e.Permanent || e.Text != "Too busy, closing" {
		t.Errorf("error = %+v", e)
	}
	if !c.Broken() {
		t.Error("not Broken after 421")
	}
}

func TestCredentialsWithoutServerAuth(t *testing.T) {
	// The server offers no AUTH: refuse to go on unauthenticated rather than
	// silently send without the configured account.
	s := smtptest.Start(t)
	cfg := plainConfig(s)
	cfg.Username, cfg.Password = "user", secret
	_, err := DialMsg(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Stage != StageDial || !strings.Contains(e.Error(), "AUTH") {
		t.Fatalf("no AUTH offered: %+v", e)
	}
	assertNoSecret(t, err)
}
