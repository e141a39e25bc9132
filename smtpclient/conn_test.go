package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"newsletter/internal/smtptest"
	"newsletter/mailer"
	"newsletter/templates"
)

const bounceAddr = "bounces@news.example.com"

func dialBulkT(t testing.TB, cfg Config) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// envelopes personalises r for n recipients rcpt(i) through mailer.Prepared.
func envelopes(t testing.TB, r *templates.Rendered, n int, rcpt func(i int) string) []Envelope {
	t.Helper()
	p := mustPrepare(t, prepareInput(r))
	envs := make([]Envelope, n)
	for i := range envs {
		to := rcpt(i)
		data, err := p.AppendMessage(nil, mailer.Recipient{
			Name: fmt.Sprintf("Reader %d", i), Email: to, MessageID: fmt.Sprintf("%d@news.example.com", i),
			UnsubscribeURL: fmt.Sprintf("https://news.example.com/u/%d", i), Date: testDate,
		})
		if err != nil {
			t.Fatal(err)
		}
		envs[i] = Envelope{From: bounceAddr, To: to, Data: [][]byte{data}}
	}
	return envs
}

func rcptN(i int) string { return fmt.Sprintf("reader%d@example.org", i) }

// small is an edition of about 2 KB per message, for the tests that send
// many.
func small(t testing.TB) *templates.Rendered {
	return renderCustom(t, ".dot first", "second paragraph with café ", strings.Repeat("long ", 30))
}

// checkAccepted checks that the server accepted exactly the messages
// reported OK, each once, byte for byte as prepared (after unstuffing).
func checkAccepted(t *testing.T, got []smtptest.Message, envs []Envelope, results []Result) {
	t.Helper()
	byRcpt := map[string]int{}
	for i, e := range envs {
		byRcpt[e.To] = i
	}
	seen := map[int]int{}
	for _, m := range got {
		if len(m.To) != 1 {
			t.Errorf("server message with %d recipients", len(m.To))
			continue
		}
		i, ok := byRcpt[m.To[0]]
		if !ok {
			t.Errorf("server accepted a message for unknown %s", m.To[0])
			continue
		}
		seen[i]++
		if m.From != envs[i].From {
			t.Errorf("message %d: MAIL FROM %q", i, m.From)
		}
		if want := unstuff(t, bytes.Join(envs[i].Data, nil)); !bytes.Equal(m.Data, want) {
			t.Errorf("message %d differs from what was prepared:\n%s", i, firstDiff(string(want), string(m.Data)))
		}
	}
	for i, r := range results[:len(envs)] {
		switch {
		case r.OK && seen[i] != 1:
			t.Errorf("message %d reported OK but accepted %d times", i, seen[i])
		case !r.OK && seen[i] != 0:
			t.Errorf("message %d reported %v but the server accepted it", i, r.Err)
		case !r.OK && r.Err == nil:
			t.Errorf("message %d: not OK and no error", i)
		case r.OK && r.Err != nil:
			t.Errorf("message %d: OK with error %v", i, r.Err)
		}
	}
}

func TestBulkSendPipelined(t *testing.T) {
	s := smtptest.Start(t)
	c := dialBulkT(t, plainConfig(s))
	if ext := c.Extensions(); !ext.Pipelining || !ext.EnhancedStatusCodes || !ext.SMTPUTF8 {
		t.Fatalf("extensions %+v", ext)
	}
	const n = 1000
	envs := envelopes(t, small(t), n, rcptN)
	results := make([]Result, n)
	for from := 0; from < n; from += 100 {
		c.flushes = 0
		c.Send(context.Background(), envs[from:from+100], results[from:from+100])
		// One write per message plus the first group: one round trip
		// per message (RFC 2920).
		if c.flushes != 101 {
			t.Errorf("%d writes for 100 messages", c.flushes)
		}
	}
	for i, r := range results {
		if !r.OK || r.Reply == "" {
			t.Fatalf("message %d: %+v", i, r)
		}
	}
	checkAccepted(t, s.WaitFor(t, n, 5*time.Second), envs, results)
	if s.Connections() != 1 || c.Broken() {
		t.Errorf("connections %d, broken %v", s.Connections(), c.Broken())
	}

	// The demo edition, full size.
	demoEnvs := envelopes(t, demo(t), 20, func(i int) string { return fmt.Sprintf("demo%d@example.org", i) })
	demoResults := make([]Result, len(demoEnvs))
	c.Send(context.Background(), demoEnvs, demoResults)
	msgs := s.WaitFor(t, n+20, 5*time.Second)
	checkAccepted(t, msgs[n:], demoEnvs, demoResults)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestBulkHardBounceMidBatch(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt(rcptN(5), 550, "5.1.1", "No such user")
	c := dialBulkT(t, plainConfig(s))
	envs := envelopes(t, small(t), 10, rcptN)
	results := make([]Result, 10)
	c.Send(context.Background(), envs, results)
	for i, r := range results {
		if i == 5 {
			e := r.Err
			if r.OK || e == nil || e.Code != 550 || e.Enhanced != "5.1.1" || e.Text != "No such user" || r.Reply != "5.1.1 No such user" ||
				!e.Permanent || e.Stage != StageRcpt || !e.IsHardBounce() || e.ConnLost || e.Throttled {
				t.Errorf("rejected recipient: %+v", e)
			}
			continue
		}
		if !r.OK {
			t.Errorf("message %d: %v", i, r.Err)
		}
	}
	checkAccepted(t, s.WaitFor(t, 9, 5*time.Second), envs, results)
	if c.Broken() {
		t.Error("a rejected recipient broke the connection")
	}
	// The last message of a batch rejected, then another batch.
	s.RejectRcpt(rcptN(9), 550, "5.1.1", "No such user")
	c.Send(context.Background(), envs[6:], results[6:])
	if results[9].OK || !results[9].Err.IsHardBounce() || !results[6].OK {
		t.Errorf("results %+v", results[6:])
	}
	c.Send(context.Background(), envs[:2], results[:2])
	if !results[0].OK || !results[1].OK {
		t.Errorf("after a rejected last message: %+v", results[:2])
	}
}

func TestBulkTemporaryAndDataRejections(t *testing.T) {
	s := smtptest.Start(t)
	s.RejectRcpt(rcptN(1), 451, "4.7.1", "Try again later")
	s.RejectRcpt(rcptN(2), 450, "4.2.1", "Mailbox busy")
	s.RejectRcpt(rcptN(3), 450, "4.7.28", "Unusual rate of mail")
	s.RejectData(rcptN(4), 554, "5.7.1", "Message rejected as spam")
	s.RejectData(rcptN(5), 452, "4.3.1", "Insufficient storage")
	c := dialBulkT(t, plainConfig(s))
	envs := envelopes(t, small(t), 7, rcptN)
	results := make([]Result, 7)
	c.Send(context.Background(), envs, results)
	type want struct {
		code              int
		enh, stage        string
		perm, thr, bounce bool
	}
	for i, w := range map[int]want{
		1: {451, "4.7.1", StageRcpt, false, true, false},
		2: {450, "4.2.1", StageRcpt, false, false, false},
		3: {450, "4.7.28", StageRcpt, false, true, false},
		4: {554, "5.7.1", StageData, true, false, false},
		5: {452, "4.3.1", StageData, false, false, false},
	} {
		e := results[i].Err
		if results[i].OK || e == nil || e.Code != w.code || e.Enhanced != w.enh || e.Stage != w.stage ||
			e.Permanent != w.perm || e.Throttled != w.thr || e.IsHardBounce() != w.bounce || e.ConnLost {
			t.Errorf("message %d: %+v, want %+v", i, e, w)
		}
	}
	if !results[0].OK || !results[6].OK {
		t.Errorf("good messages: %+v %+v", results[0], results[6])
	}
	checkAccepted(t, s.WaitFor(t, 2, 5*time.Second), envs, results)
}

func TestBulk421ClosesConnection(t *testing.T) {
	for _, at := range []string{"rcpt", "data"} {
		t.Run(at, func(t *testing.T) {
			s := smtptest.Start(t)
			if at == "rcpt" {
				s.RejectRcpt(rcptN(3), 421, "4.7.0", "Too many connections, closing")
			} else {
				s.RejectData(rcptN(3), 421, "4.4.5", "Too busy, closing")
			}
			c := dialBulkT(t, plainConfig(s))
			envs := envelopes(t, small(t), 8, rcptN)
			results := make([]Result, 8)
			c.Send(context.Background(), envs, results)
			for i, r := range results {
				switch {
				case i < 3:
					if !r.OK {
						t.Errorf("message %d: %v", i, r.Err)
					}
				case i == 3:
					e := r.Err
					if r.OK || e == nil || e.Code != 421 || !e.ConnLost || !e.Throttled || e.Permanent || e.Stage != at {
						t.Errorf("message 3: %+v", e)
					}
				default:
					e := r.Err
					if r.OK || e == nil || !e.ConnLost || e.Permanent || e.Stage != StageMail || e.Code != 0 ||
						!strings.Contains(e.Text, "not sent") {
						t.Errorf("message %d: %+v", i, e)
					}
				}
			}
			if !c.Broken() {
				t.Error("not Broken after 421")
			}
			checkAccepted(t, s.WaitFor(t, 3, 5*time.Second), envs, results)
			// A broken connection refuses further sends.
			c.Send(context.Background(), envs[:1], results[:1])
			if results[0].OK || !results[0].Err.ConnLost || !errors.Is(results[0].Err, ErrConnBroken) {
				t.Errorf("send on a broken connection: %+v", results[0])
			}
		})
	}
}

func TestBulkDropMidData(t *testing.T) {
	s := smtptest.Start(t)
	c := dialBulkT(t, plainConfig(s))
	envs := envelopes(t, demo(t), 10, rcptN)
	results := make([]Result, 10)
	s.DropAfter(4)
	c.Send(context.Background(), envs, results)
	for i, r := range results {
		switch {
		case i < 4:
			if !r.OK {
				t.Errorf("message %d: %v", i, r.Err)
			}
		case i == 4:
			// Its data went out and no reply came: not OK, retried.
			if e := r.Err; r.OK || e == nil || !e.ConnLost || e.Permanent || e.Stage != StageData || e.Code != 0 {
				t.Errorf("message in flight: %+v", e)
			}
		default:
			if e := r.Err; r.OK || e == nil || !e.ConnLost || e.Stage != StageMail {
				t.Errorf("message %d: %+v", i, e)
			}
		}
	}
	if !c.Broken() {
		t.Error("not Broken")
	}
	// Give the server a moment: nothing more may arrive.
	time.Sleep(50 * time.Millisecond)
	checkAccepted(t, s.Messages(), envs, results)
	if n := s.Accepted(); n != 4 {
		t.Errorf("server accepted %d", n)
	}
}

func TestBulkStallPastTimeout(t *testing.T) {
	s := smtptest.Start(t)
	s.Stall(rcptN(2), 2*time.Second)
	cfg := plainConfig(s)
	cfg.Timeout = 300 * time.Millisecond
	c := dialBulkT(t, cfg)
	envs := envelopes(t, small(t), 5, rcptN)
	results := make([]Result, 5)
	start := time.Now()
	c.Send(context.Background(), envs, results)
	if d := time.Since(start); d > 1500*time.Millisecond {
		t.Errorf("Send took %v with a 300ms timeout", d)
	}
	if !results[0].OK || !results[1].OK {
		t.Errorf("before the stall: %+v %+v", results[0], results[1])
	}
	if e := results[2].Err; e == nil || !e.Timeout || !e.ConnLost || e.Permanent || e.Stage != StageRcpt {
		t.Errorf("stalled message: %+v", e)
	}
	for _, r := range results[3:] {
		if e := r.Err; r.OK || e == nil || !e.ConnLost || e.Timeout {
			t.Errorf("after the stall: %+v", e)
		}
	}
	checkAccepted(t, s.WaitFor(t, 2, 5*time.Second), envs, results)
}

func TestBulkContext(t *testing.T) {
	s := smtptest.Start(t)
	c := dialBulkT(t, plainConfig(s))
	envs := envelopes(t, small(t), 3, rcptN)
	results := make([]Result, 3)

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.Send(ctx, envs, results)
	for _, r := range results {
		if e := r.Err; r.OK || e == nil || e.ConnLost || e.Permanent || !errors.Is(e, context.Canceled) {
			t.Errorf("cancelled before sending: %+v", e)
		}
	}
	if c.Broken() {
		t.Fatal("Broken after a cancelled Send that sent nothing")
	}
	c.Send(context.Background(), envs, results)
	for _, r := range results {
		if !r.OK {
			t.Errorf("after cancel: %v", r.Err)
		}
	}

	// Cancelled while the first message is in flight: it finishes, the
	// rest are not started.
	s.Stall(rcptN(0), 200*time.Millisecond)
	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	c.Send(ctx, envs, results)
	if !results[0].OK {
		t.Errorf("message in flight: %v", results[0].Err)
	}
	for _, r := range results[1:] {
		if r.OK || r.Err == nil || r.Err.ConnLost {
			t.Errorf("after cancel: %+v", r.Err)
		}
	}
	if c.Broken() {
		t.Error("Broken after a graceful stop")
	}

	// A deadline cuts the message in flight.
	ctx, cancel = context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	c.Send(ctx, envs[:1], results[:1])
	if e := results[0].Err; e == nil || !e.Timeout || !e.ConnLost || !errors.Is(e, context.DeadlineExceeded) {
		t.Errorf("past the deadline: %+v", e)
	}
	if !c.Broken() {
		t.Error("not Broken after a deadline mid-transaction")
	}
}

func TestBulkRefusesBadEnvelopes(t *testing.T) {
	s := smtptest.Start(t)
	c := dialBulkT(t, plainConfig(s))
	good := envelopes(t, small(t), 1, rcptN)[0]
	cases := []Envelope{
		good,
		{From: good.From, To: "x@example.org>\r\nRCPT TO:<evil@example.org", Data: good.Data},
		{From: "a b@example.org", To: "y@example.org", Data: good.Data},
		{From: good.From, To: "", Data: good.Data},
		{From: good.From, To: "z@example.org", Data: [][]byte{[]byte("Subject: x\r\n\r\n.\r\nMAIL FROM:<evil@example.org>\r\n")}},
		{From: good.From, To: "z@example.org", Data: [][]byte{[]byte(".unstuffed first line\r\n")}},
		{From: good.From, To: "z@example.org", Data: nil},
		{From: good.From, To: "ok2@example.org", Data: [][]byte{[]byte("Subject: x\r\n\r\n..stuffed\r\nno final CRLF")}},
	}
	results := make([]Result, len(cases))
	c.Send(context.Background(), cases, results)
	if !results[0].OK || !results[7].OK {
		t.Errorf("good envelopes: %+v, %+v", results[0], results[7])
	}
	for i, r := range results[1:7] {
		if e := r.Err; r.OK || e == nil || !e.Permanent || e.Stage != StageMessage || e.ConnLost || !errors.Is(e, ErrInvalidEnvelope) {
			t.Errorf("case %d: %+v", i+1, e)
		}
	}
	msgs := s.WaitFor(t, 2, 5*time.Second)
	if len(msgs) != 2 || string(msgs[1].Data) != "Subject: x\r\n\r\n.stuffed\r\nno final CRLF\r\n" {
		t.Errorf("server got %d messages: %q", len(msgs), msgs[len(msgs)-1].Data)
	}
	if c.Broken() {
		t.Error("Broken")
	}
}

func TestBulkStartTLSAndAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithTLS(), smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = TLSStartTLS
	cfg.Username, cfg.Password = "user", secret
	cfg.TLSConfig = s.ClientTLSConfig()
	c := dialBulkT(t, cfg)
	envs := envelopes(t, small(t), 50, rcptN)
	results := make([]Result, 50)
	c.Send(context.Background(), envs, results)
	for i, r := range results {
		if !r.OK {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	checkAccepted(t, s.WaitFor(t, 50, 5*time.Second), envs, results)
	if ext := c.Extensions(); !ext.Pipelining || ext.StartTLS {
		// After STARTTLS the server no longer offers it (RFC 3207 4.2).
		t.Errorf("extensions after TLS: %+v", ext)
	}

	// Wrong password: permanent, not the subscriber's fault, no secret.
	bad := cfg
	bad.Password = "wrong-" + secret
	_, err := Dial(context.Background(), bad)
	e := Classify(err)
	if e == nil || e.Code != 535 || e.Enhanced != "5.7.8" || !e.Permanent || e.Stage != StageDial || !e.ConnLost || e.IsHardBounce() {
		t.Errorf("wrong password: %+v", e)
	}
	assertNoSecret(t, err)
	assertNoSecret(t, fmt.Errorf("%v %s", e, e.Text))

	// Untrusted certificate.
	bad = cfg
	bad.TLSConfig = nil
	_, err = Dial(context.Background(), bad)
	if e := Classify(err); e == nil || e.Permanent || !e.ConnLost || !strings.Contains(e.Text, "TLS certificate verification failed") {
		t.Errorf("untrusted certificate: %+v", e)
	}
}

func TestBulkStartTLSRequired(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = "" // the default: STARTTLS required
	cfg.Username, cfg.Password = "user", secret
	_, err := Dial(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Stage != StageDial || e.Permanent || !e.ConnLost || !strings.Contains(e.Error(), "STARTTLS") {
		t.Fatalf("STARTTLS missing: %+v", e)
	}
	assertNoSecret(t, err)
}

func TestBulkImplicitTLSAndAuth(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithImplicitTLS(), smtptest.WithAuth("user", secret))
	cfg := plainConfig(s)
	cfg.TLS = TLSImplicit
	cfg.Username, cfg.Password = "user", secret
	cfg.TLSConfig = s.ClientTLSConfig()
	c := dialBulkT(t, cfg)
	envs := envelopes(t, small(t), 5, rcptN)
	results := make([]Result, 5)
	c.Send(context.Background(), envs, results)
	checkAccepted(t, s.WaitFor(t, 5, 5*time.Second), envs, results)
}

func TestBulkAuthInClearTextOnlyWhenExplicit(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithAuth("user", secret))
	cfg := plainConfig(s) // TLSNone
	cfg.Username, cfg.Password = "user", secret
	c := dialBulkT(t, cfg)
	envs := envelopes(t, small(t), 2, rcptN)
	results := make([]Result, 2)
	c.Send(context.Background(), envs, results)
	checkAccepted(t, s.WaitFor(t, 2, 5*time.Second), envs, results)

	// Without credentials the server refuses MAIL: permanent, not a bounce.
	cfg.Username, cfg.Password = "", ""
	c = dialBulkT(t, cfg)
	c.Send(context.Background(), envs, results)
	for _, r := range results {
		if e := r.Err; r.OK || e == nil || e.Code != 530 || e.Stage != StageMail || !e.Permanent || e.IsHardBounce() {
			t.Errorf("unauthenticated: %+v", e)
		}
	}
}

func TestBulkCredentialsWithoutServerAuth(t *testing.T) {
	s := smtptest.Start(t)
	cfg := plainConfig(s)
	cfg.Username, cfg.Password = "user", secret
	_, err := Dial(context.Background(), cfg)
	e := Classify(err)
	if e == nil || e.Stage != StageDial || !e.ConnLost || !strings.Contains(e.Error(), "AUTH") {
		t.Fatalf("no AUTH offered: %+v", e)
	}
	assertNoSecret(t, err)
}

func TestBulkDialFailures(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	l.Close()
	_, err = Dial(context.Background(), Config{Host: "127.0.0.1", Port: addr.Port, TLS: TLSNone, Timeout: time.Second})
	if e := Classify(err); e == nil || e.Stage != StageDial || !e.ConnLost || e.Permanent {
		t.Errorf("refused: %+v", e)
	}
	_, err = Dial(context.Background(), Config{Host: "", TLS: TLSNone})
	if e := Classify(err); e == nil || e.Stage != StageDial {
		t.Errorf("invalid config: %+v", e)
	}
	// A server that never greets.
	l, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			time.Sleep(time.Second)
			c.Close()
		}
	}()
	start := time.Now()
	_, err = Dial(context.Background(), Config{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: TLSNone, Timeout: 100 * time.Millisecond})
	if e := Classify(err); e == nil || !e.Timeout || !e.ConnLost || time.Since(start) > 800*time.Millisecond {
		t.Errorf("silent server: %+v after %v", e, time.Since(start))
	}
}

// scriptServer is a minimal SMTP server whose replies a test scripts, for the
// cases go-smtp can't produce: multi-line replies, servers without PIPELINING
// or ENHANCEDSTATUSCODES, 354 after a rejected RCPT, garbage.
type scriptServer struct {
	t      *testing.T
	ln     net.Listener
	ehlo   []string // EHLO keywords; nil means EHLO is refused (502)
	reply  func(cmd string) string
	mu     sync.Mutex
	log    []string // commands and "<data N bytes>"
	msgs   [][]byte
	ahead  int // commands that arrived while a reply was still owed
	wg     sync.WaitGroup
	closed chan struct{}
}

func startScript(t *testing.T, ehlo []string, reply func(cmd string) string) *scriptServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &scriptServer{t: t, ln: ln, ehlo: ehlo, reply: reply, closed: make(chan struct{})}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(func() {
		close(s.closed)
		ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *scriptServer) config() Config {
	return Config{Host: "127.0.0.1", Port: s.ln.Addr().(*net.TCPAddr).Port, TLS: TLSNone, Timeout: 2 * time.Second, HELO: "client.test"}
}

func (s *scriptServer) serve() {
	defer s.wg.Done()
	for {
		conn, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer conn.Close()
			go func() { <-s.closed; conn.Close() }()
			s.session(conn)
		}()
	}
}

func (s *scriptServer) session(conn net.Conn) {
	br := bufio.NewReader(conn)
	w := func(reply string) bool {
		_, err := conn.Write([]byte(reply))
		return err == nil
	}
	if !w("220 script.test ESMTP\r\n") {
		return
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return
		}
		cmd := strings.TrimRight(line, "\r\n")
		verb := strings.ToUpper(strings.Fields(cmd + " x")[0])
		s.mu.Lock()
		s.log = append(s.log, cmd)
		if br.Buffered() > 0 {
			s.ahead++
		}
		s.mu.Unlock()
		switch {
		case verb == "EHLO":
			if s.ehlo == nil {
				w("502 5.5.1 EHLO not implemented\r\n")
				continue
			}
			r := "250-script.test"
			for _, k := range s.ehlo {
				r += "\r\n250-" + k
			}
			w(r[:strings.LastIndex(r, "250-")] + "250 " + r[strings.LastIndex(r, "250-")+4:] + "\r\n")
		case verb == "HELO":
			w("250 script.test\r\n")
		case verb == "QUIT":
			w("221 bye\r\n")
			return
		case verb == "DATA":
			r := s.reply(cmd)
			if !w(r) {
				return
			}
			if !strings.HasPrefix(r, "354") {
				continue
			}
			var msg []byte
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				msg = append(msg, strings.TrimPrefix(l, ".")...)
			}
			s.mu.Lock()
			s.log = append(s.log, fmt.Sprintf("<data %d bytes>", len(msg)))
			s.msgs = append(s.msgs, msg)
			s.mu.Unlock()
			if !w(s.reply(".")) {
				return
			}
		default:
			r := s.reply(cmd)
			if r == "" {
				return // hang up
			}
			if !w(r) {
				return
			}
		}
	}
}

func (s *scriptServer) commands() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.log...)
}

func TestBulkMultiLineRepliesAndSingleDot(t *testing.T) {
	s := startScript(t, []string{"PIPELINING", "ENHANCEDSTATUSCODES", "SIZE 10000000"}, func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "RCPT TO:<gone@"):
			return "550-5.1.1 The email account that you tried to reach does not exist.\r\n" +
				"550-5.1.1 Please try double-checking the recipient's email\r\n" +
				"550 5.1.1 address for typos. https://support.example/answer\r\n"
		case cmd == "DATA":
			// A server that answers DATA with 354 even when no
			// recipient was accepted (RFC 2920 section 3.1 warns of it).
			return "354 go ahead\r\n"
		case cmd == ".":
			return "250-2.0.0 Ok\r\n250 2.0.0 queued as ABC\r\n"
		}
		return "250 2.0.0 Ok\r\n"
	})
	c := dialBulkT(t, s.config())
	envs := envelopes(t, small(t), 3, func(i int) string { return []string{"a@example.org", "gone@example.org", "c@example.org"}[i] })
	results := make([]Result, 3)
	c.Send(context.Background(), envs, results)
	if !results[0].OK || results[0].Reply != "2.0.0 Ok\n2.0.0 queued as ABC" || !results[2].OK {
		t.Errorf("good messages: %+v / %+v", results[0], results[2])
	}
	e := results[1].Err
	if e == nil || e.Code != 550 || e.Enhanced != "5.1.1" || !e.IsHardBounce() ||
		e.Text != "The email account that you tried to reach does not exist. Please try double-checking the recipient's email address for typos. https://support.example/answer" {
		t.Errorf("multi-line rejection: %+v", e)
	}
	// The rejected message got a lone dot (an empty message), then RSET.
	cmds := strings.Join(s.commands(), "|")
	size := fmt.Sprint(envs[1].size())
	want := "MAIL FROM:<" + bounceAddr + "> SIZE=" + size + "|RCPT TO:<gone@example.org>|DATA|<data 0 bytes>|RSET|MAIL FROM:"
	if !strings.Contains(cmds, want) {
		t.Errorf("command sequence %s\nlacks %s", cmds, want)
	}
	if c.Broken() {
		t.Error("Broken")
	}
}

func TestBulkWithoutEnhancedStatusCodes(t *testing.T) {
	s := startScript(t, []string{"PIPELINING"}, func(cmd string) string {
		if strings.HasPrefix(cmd, "RCPT") {
			return "550 5.1.1 looks like a code but was not announced\r\n"
		}
		if cmd == "DATA" {
			return "503 no valid recipients\r\n"
		}
		return "250 Ok\r\n"
	})
	c := dialBulkT(t, s.config())
	envs := envelopes(t, small(t), 1, rcptN)
	results := make([]Result, 1)
	c.Send(context.Background(), envs, results)
	e := results[0].Err
	if e == nil || e.Code != 550 || e.Enhanced != "" || e.Text != "5.1.1 looks like a code but was not announced" || !e.Permanent || e.Stage != StageRcpt {
		t.Errorf("%+v", e)
	}
}

func TestBulkLockStepWithoutPipelining(t *testing.T) {
	for _, ehlo := range [][]string{{"ENHANCEDSTATUSCODES"}, nil /* EHLO refused: HELO */} {
		s := startScript(t, ehlo, func(cmd string) string {
			switch {
			case strings.HasPrefix(cmd, "RCPT TO:<gone@"):
				return "550 5.1.1 no such user\r\n"
			case cmd == "DATA":
				return "354 go ahead\r\n"
			}
			return "250 2.0.0 Ok\r\n"
		})
		c := dialBulkT(t, s.config())
		if c.Extensions().Pipelining {
			t.Fatal("pipelining without PIPELINING")
		}
		envs := envelopes(t, small(t), 4, func(i int) string { return []string{"a@x.org", "gone@x.org", "b@x.org", "c@x.org"}[i] })
		results := make([]Result, 4)
		c.Send(context.Background(), envs, results)
		if !results[0].OK || results[1].OK || !results[2].OK || !results[3].OK {
			t.Errorf("results %+v", results)
		}
		if e := results[1].Err; e.Code != 550 || e.Stage != StageRcpt || e.IsHardBounce() != (ehlo != nil) {
			t.Errorf("rejection: %+v", e)
		}
		s.mu.Lock()
		ahead, msgs := s.ahead, len(s.msgs)
		s.mu.Unlock()
		if ahead != 0 {
			t.Errorf("%d commands sent before the previous reply, without PIPELINING", ahead)
		}
		if msgs != 3 {
			t.Errorf("server got %d messages", msgs)
		}
		for i, m := range s.msgs {
			want := bytes.Join(envs[[]int{0, 2, 3}[i]].Data, nil)
			if !bytes.Equal(m, unstuff(t, want)) {
				t.Errorf("message %d differs", i)
			}
		}
	}
}

func TestBulkProtocolErrors(t *testing.T) {
	for name, bad := range map[string]string{
		"garbage":         "hello there\r\n",
		"mixed codes":     "250-Ok\r\n251 Ok\r\n",
		"hang up":         "",
		"code out of set": "650 what\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			s := startScript(t, []string{"PIPELINING"}, func(cmd string) string {
				if strings.HasPrefix(cmd, "RCPT TO:<reader1@") {
					return bad
				}
				if cmd == "DATA" {
					return "354 go\r\n"
				}
				return "250 Ok\r\n"
			})
			c := dialBulkT(t, s.config())
			envs := envelopes(t, small(t), 3, rcptN)
			results := make([]Result, 3)
			c.Send(context.Background(), envs, results)
			if !results[0].OK {
				t.Errorf("first: %v", results[0].Err)
			}
			for _, r := range results[1:] {
				if e := r.Err; r.OK || e == nil || !e.ConnLost || e.Permanent {
					t.Errorf("after %s: %+v", name, e)
				}
			}
			if !c.Broken() {
				t.Error("not Broken")
			}
		})
	}
}

func TestBulkGreetingRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			c.Write([]byte("554-No SMTP service here\r\n554 5.3.2 go away\r\n"))
			c.Close()
		}
	}()
	_, err = Dial(context.Background(), Config{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, TLS: TLSNone, Timeout: time.Second})
	e := Classify(err)
	if e == nil || e.Code != 554 || !e.Permanent || !e.ConnLost || e.Stage != StageDial {
		t.Errorf("%+v", e)
	}
}

// A message sent in parts arrives as the same bytes as one sent whole, over
// a plain connection and a TLS one.
func TestBulkSendParts(t *testing.T) {
	for _, tlsMode := range []string{"plain", "starttls"} {
		t.Run(tlsMode, func(t *testing.T) {
			var s *smtptest.Server
			if tlsMode == "plain" {
				s = smtptest.Start(t)
			} else {
				s = smtptest.Start(t, smtptest.WithTLS())
			}
			cfg := plainConfig(s)
			if tlsMode == "starttls" {
				cfg.TLS, cfg.TLSConfig = TLSStartTLS, s.ClientTLSConfig()
			}
			c := dialBulkT(t, cfg)
			p := mustPrepare(t, prepareInput(demo(t)))
			const n = 30
			msgs := make([]mailer.Parts, n)
			envs := make([]Envelope, n)
			whole := make([]Envelope, n)
			for i := range n {
				rc := mailer.Recipient{Name: fmt.Sprintf("Reader %d", i), Email: rcptN(i), MessageID: fmt.Sprintf("%d@news.example.com", i),
					UnsubscribeURL: fmt.Sprintf("https://news.example.com/u/%d", i), Date: testDate}
				if err := p.AppendParts(&msgs[i], rc); err != nil {
					t.Fatal(err)
				}
				envs[i] = Envelope{From: bounceAddr, To: rc.Email, Data: msgs[i].Data}
				whole[i] = Envelope{From: bounceAddr, To: rc.Email, Data: [][]byte{bytes.Join(msgs[i].Data, nil)}}
			}
			results := make([]Result, n)
			c.Send(context.Background(), envs, results)
			checkAccepted(t, s.WaitFor(t, n, 5*time.Second), whole, results)
		})
	}
}

func TestBulkAuthLogin(t *testing.T) {
	var (
		mu   sync.Mutex
		step int
		got  []string
	)
	s := startScript(t, []string{"PIPELINING", "AUTH LOGIN CRAM-MD5"}, func(cmd string) string {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case cmd == "AUTH LOGIN":
			step = 1
			return "334 VXNlcm5hbWU6\r\n"
		case step == 1:
			step = 2
			got = append(got, cmd)
			return "334 UGFzc3dvcmQ6\r\n"
		case step == 2:
			step = 3
			got = append(got, cmd)
			return "235 2.7.0 Authentication successful\r\n"
		case cmd == "DATA":
			return "354 go\r\n"
		}
		return "250 Ok\r\n"
	})
	cfg := s.config()
	cfg.Username, cfg.Password = "user@example.com", secret
	c := dialBulkT(t, cfg)
	mu.Lock()
	if len(got) != 2 || got[0] != base64.StdEncoding.EncodeToString([]byte("user@example.com")) ||
		got[1] != base64.StdEncoding.EncodeToString([]byte(secret)) {
		t.Errorf("LOGIN exchange %q", got)
	}
	mu.Unlock()
	envs := envelopes(t, small(t), 2, rcptN)
	results := make([]Result, 2)
	c.Send(context.Background(), envs, results)
	if !results[0].OK || !results[1].OK {
		t.Errorf("%+v", results)
	}
}

func TestBulkOverlongReply(t *testing.T) {
	long := strings.Repeat("x", 20000)
	s := startScript(t, []string{"PIPELINING", "ENHANCEDSTATUSCODES"}, func(cmd string) string {
		switch {
		case strings.HasPrefix(cmd, "RCPT TO:<reader0@"):
			return "550 5.7.1 " + long + "\r\n"
		case cmd == "DATA":
			return "354 go\r\n"
		}
		return "250 2.0.0 Ok\r\n"
	})
	c := dialBulkT(t, s.config())
	envs := envelopes(t, small(t), 2, rcptN)
	results := make([]Result, 2)
	c.Send(context.Background(), envs, results)
	if e := results[0].Err; e == nil || e.Code != 550 || e.Enhanced != "5.7.1" || len(e.Text) > readBuffer || e.ConnLost {
		t.Errorf("overlong reply: %v", e)
	}
	if !results[1].OK || c.Broken() {
		t.Errorf("after an overlong reply: %+v, broken %v", results[1], c.Broken())
	}
}
