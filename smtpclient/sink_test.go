package smtpclient

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"newsletter/internal/smtptest"
	"newsletter/mailer"
	"newsletter/templates"
)

// Tests and benchmarks against Postfix's smtp-sink(1), a real, independent
// SMTP server implementation (Debian package postfix). They are skipped when
// it is not installed.

const smtpSinkPath = "/usr/sbin/smtp-sink"

// smtpSink is a running smtp-sink.
type smtpSink struct {
	port int
	mu   sync.Mutex
	out  bytes.Buffer // -c counters: "sess=N quit=N mesg=N\r", repeated
}

func (s *smtpSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

var sinkCounter = regexp.MustCompile(`mesg=(\d+)`)

// messages is the last message count smtp-sink printed.
func (s *smtpSink) messages() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := sinkCounter.FindAllSubmatch(s.out.Bytes(), -1)
	if len(m) == 0 {
		return 0
	}
	n, _ := strconv.Atoi(string(m[len(m)-1][1]))
	return n
}

// waitMessages waits until smtp-sink has counted n messages.
func (s *smtpSink) waitMessages(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.messages() < n {
		if time.Now().After(deadline) {
			t.Fatalf("smtp-sink counted %d messages, want %d", s.messages(), n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := s.messages(); got != n {
		t.Fatalf("smtp-sink counted %d messages, want %d", got, n)
	}
}

// startSmtpSink runs "smtp-sink [-c] [args] 127.0.0.1:PORT 256" until the test
// ends. Run as root it needs -u to drop privileges (its man page says so).
// With counters (-c) it prints its counts after every message, which
// messages and waitMessages read; benchmarks go without, as reading them
// costs this process CPU.
func startSmtpSink(t testing.TB, counters bool, args ...string) *smtpSink {
	t.Helper()
	if _, err := os.Stat(smtpSinkPath); err != nil {
		t.Fatalf("smtp-sink not installed (%v): apt-get install postfix (make test on CI installs it)", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpSink{port: l.Addr().(*net.TCPAddr).Port}
	l.Close()
	var full []string
	if counters {
		full = append(full, "-c")
	}
	if os.Geteuid() == 0 {
		name := "postfix"
		if _, err := user.Lookup(name); err != nil {
			name = "nobody"
		}
		full = append(full, "-u", name)
	}
	full = append(full, args...)
	full = append(full, fmt.Sprintf("127.0.0.1:%d", s.port), "256")
	cmd := exec.Command(smtpSinkPath, full...)
	cmd.Stdout = s
	cmd.Stderr = s
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting smtp-sink: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	for start := time.Now(); ; {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.port))
		if err == nil {
			c.Close()
			break
		}
		if time.Since(start) > 5*time.Second {
			s.mu.Lock()
			out := s.out.String()
			s.mu.Unlock()
			t.Fatalf("smtp-sink did not start listening: %v; output: %s", err, out)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return s
}

func sinkConfig(s *smtpSink) Config {
	return Config{Host: "127.0.0.1", Port: s.port, TLS: TLSNone, Timeout: 10 * time.Second, HELO: "sender.test"}
}

// sendPrepared sends n personalised copies of r in batches of 100, reusing
// the message buffers, and fails the test on any failure.
func sendPrepared(t testing.TB, c *Conn, r *templates.Rendered, n int) {
	t.Helper()
	p := mustPrepare(t, prepareInput(r))
	const batch = 100
	bufs := make([][]byte, batch)
	envs := make([]Envelope, batch)
	results := make([]Result, batch)
	for sent := 0; sent < n; {
		k := min(batch, n-sent)
		for j := range k {
			to := rcptN(sent + j)
			var err error
			bufs[j], err = p.AppendMessage(bufs[j][:0], mailer.Recipient{Name: "Reader", Email: to,
				MessageID: fmt.Sprintf("%d@news.example.com", sent+j), UnsubscribeURL: "https://news.example.com/u/x", Date: testDate})
			if err != nil {
				t.Fatal(err)
			}
			envs[j] = Envelope{From: bounceAddr, To: to, Data: [][]byte{bufs[j]}}
		}
		c.Send(context.Background(), envs[:k], results[:k])
		for j, res := range results[:k] {
			if !res.OK {
				t.Fatalf("message %d: %v", sent+j, res.Err)
			}
		}
		sent += k
	}
}

func TestBulkSmtpSinkPipelined(t *testing.T) {
	s := startSmtpSink(t, true)
	c := dialBulkT(t, sinkConfig(s))
	if !c.Extensions().Pipelining {
		t.Fatalf("smtp-sink offers %+v", c.Extensions())
	}
	sendPrepared(t, c, demo(t), 1000)
	s.waitMessages(t, 1000)
	if err := c.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestBulkSmtpSinkLockStep(t *testing.T) {
	s := startSmtpSink(t, true, "-p") // -p: do not announce PIPELINING
	c := dialBulkT(t, sinkConfig(s))
	if c.Extensions().Pipelining {
		t.Fatal("PIPELINING announced despite -p")
	}
	sendPrepared(t, c, small(t), 200)
	s.waitMessages(t, 200)
}

// TestBulkSmtpSinkByteIdentical has smtp-sink dump every message (-d) and
// compares them with what was prepared.
func TestBulkSmtpSinkByteIdentical(t *testing.T) {
	// The dump directory must be writable by the user smtp-sink switches
	// to, so not a t.TempDir (its parents are private to us).
	dir, err := os.MkdirTemp("", "smtp-sink-dump")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	s := startSmtpSink(t, true, "-d", dir+"/m.")
	c := dialBulkT(t, sinkConfig(s))
	envs := envelopes(t, demo(t), 100, rcptN)
	envs = append(envs, envelopes(t, renderCustom(t, ".a", "..b", strings.Repeat(".", 100), "x "), 50,
		func(i int) string { return fmt.Sprintf("custom%d@example.org", i) })...)
	results := make([]Result, len(envs))
	for from := 0; from < len(envs); from += 50 {
		c.Send(context.Background(), envs[from:from+50], results[from:from+50])
	}
	for i, r := range results {
		if !r.OK {
			t.Fatalf("message %d: %v", i, r.Err)
		}
	}
	s.waitMessages(t, len(envs))
	c.Close()

	byRcpt := map[string]int{}
	for i, e := range envs {
		byRcpt["<"+e.To+">"] = i
	}
	files, err := filepath.Glob(filepath.Join(dir, "m.*"))
	if err != nil || len(files) != len(envs) {
		t.Fatalf("%d dump files (%v), want %d", len(files), err, len(envs))
	}
	seen := map[int]bool{}
	for _, f := range files {
		dump, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		// smtp-sink's own header lines, the last of them a three-line
		// Received:, then the message as received (unstuffed, LF line
		// endings), then an empty line.
		sc := bufio.NewScanner(bytes.NewReader(dump))
		sc.Buffer(nil, 1<<20)
		rcpt, lines, body := "", 0, []string(nil)
		for sc.Scan() {
			l := sc.Text()
			switch {
			case body != nil:
				body = append(body, l)
			case strings.HasPrefix(l, "X-Rcpt-Args: "):
				rcpt = strings.TrimPrefix(l, "X-Rcpt-Args: ")
			case strings.HasPrefix(l, "Received: "):
				lines = 1
			case lines > 0:
				if lines++; lines == 3 {
					body = []string{}
				}
			}
		}
		i, ok := byRcpt[rcpt]
		if !ok || seen[i] || len(body) == 0 || body[len(body)-1] != "" {
			t.Fatalf("%s: recipient %q (known %v, seen %v), %d lines", f, rcpt, ok, seen[i], len(body))
		}
		seen[i] = true
		got := strings.Join(body[:len(body)-1], "\r\n") + "\r\n"
		if want := string(unstuff(t, bytes.Join(envs[i].Data, nil))); got != want {
			t.Errorf("message %d as smtp-sink received it differs:\n%s", i, firstDiff(want, got))
		}
	}
}

func TestBulkSmtpSinkRejections(t *testing.T) {
	// -f RCPT rejects every RCPT with 500 5.3.0 (and implies -p: lock-step).
	s := startSmtpSink(t, true, "-f", "RCPT")
	c := dialBulkT(t, sinkConfig(s))
	envs := envelopes(t, small(t), 3, rcptN)
	results := make([]Result, 3)
	c.Send(context.Background(), envs, results)
	for _, r := range results {
		if e := r.Err; r.OK || e == nil || e.Code != 500 || e.Enhanced != "5.3.0" || e.Stage != StageRcpt || !e.Permanent || e.IsHardBounce() {
			t.Errorf("%+v", e)
		}
	}
	if c.Broken() {
		t.Error("Broken")
	}

	// -Q .: 421 and disconnect after the end of data (pipelined).
	s = startSmtpSink(t, true, "-Q", ".")
	c = dialBulkT(t, sinkConfig(s))
	c.Send(context.Background(), envs, results)
	if e := results[0].Err; e == nil || e.Code != 421 || !e.ConnLost || !e.Throttled || e.Stage != StageData {
		t.Errorf("421 after data: %+v", e)
	}
	for _, r := range results[1:] {
		if e := r.Err; r.OK || e == nil || !e.ConnLost || e.Stage != StageMail {
			t.Errorf("after 421: %+v", e)
		}
	}
}

// cpuTime is the CPU time this process has used (user and system). Against
// smtp-sink, which runs in its own process, that is the client's cost alone;
// against smtptest it includes the in-process server.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportRate reports messages per second and CPU per message since cpu0.
func reportRate(b *testing.B, cpu0 time.Duration) {
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
}

// The benchmarks: BulkSend (mailer.Prepared.AppendMessage per recipient + Conn.Send
// in batches of 100) against the yardstick the issue asks for,
// BaselinePipelined (the simplest pipelined client, sending one message
// built once), each against the in-process go-smtp server and smtp-sink.
//
//	go test ./smtpclient -run '^$' -bench 'BulkSend|BaselinePipelined' -benchtime 5000x

func benchServers(b *testing.B, run func(b *testing.B, cfg Config)) {
	b.Run("smtptest", func(b *testing.B) {
		s := smtptest.Start(b, smtptest.WithDiscard())
		run(b, plainConfig(s))
	})
	b.Run("smtp-sink", func(b *testing.B) {
		s := startSmtpSink(b, false)
		run(b, sinkConfig(s))
	})
}

func BenchmarkBulkSend(b *testing.B) {
	r := demo(b)
	benchServers(b, func(b *testing.B, cfg Config) {
		c := dialBulkT(b, cfg)
		p := mustPrepare(b, prepareInput(r))
		const batch = 100
		bufs := make([][]byte, batch)
		envs := make([]Envelope, batch)
		results := make([]Result, batch)
		var bytes int64
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for sent := 0; sent < b.N; {
			k := min(batch, b.N-sent)
			for j := range k {
				var err error
				bufs[j], err = p.AppendMessage(bufs[j][:0], mailer.Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com",
					MessageID: "20251113.42@news.example.com", UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate})
				if err != nil {
					b.Fatal(err)
				}
				envs[j] = Envelope{From: bounceAddr, To: "zoe+news@example.com", Data: [][]byte{bufs[j]}}
				bytes += int64(len(bufs[j]))
			}
			c.Send(context.Background(), envs[:k], results[:k])
			for _, res := range results[:k] {
				if !res.OK {
					b.Fatal(res.Err)
				}
			}
			sent += k
		}
		b.StopTimer()
		reportRate(b, cpu0)
		b.SetBytes(bytes / int64(b.N))
	})
}

// BenchmarkBaselinePipelined is the yardstick: a minimal pipelined SMTP client
// on a bare socket that sends the same pre-built message (built once) over
// and over, one round trip per message (its data, the end-of-data dot and the
// next MAIL/RCPT/DATA in one write), counting replies without parsing more
// than their first digit.
func BenchmarkBaselinePipelined(b *testing.B) {
	r := demo(b)
	benchServers(b, func(b *testing.B, cfg Config) {
		p := mustPrepare(b, prepareInput(r))
		data, err := p.AppendMessage(nil, mailer.Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com",
			MessageID: "20251113.42@news.example.com", UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate})
		if err != nil {
			b.Fatal(err)
		}
		group := []byte("MAIL FROM:<" + bounceAddr + ">\r\nRCPT TO:<zoe+news@example.com>\r\nDATA\r\n")
		// data, then ".", then the next message's commands.
		blob := append(append(append([]byte(nil), data...), ".\r\n"...), group...)
		last := blob[:len(data)+3]

		conn, err := net.Dial("tcp", net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port)))
		if err != nil {
			b.Fatal(err)
		}
		defer conn.Close()
		br := bufio.NewReaderSize(conn, 4096)
		// reply reads one reply and returns its first digit.
		reply := func() byte {
			for {
				l, err := br.ReadSlice('\n')
				if err != nil || len(l) < 4 {
					b.Fatalf("reading reply: %q %v", l, err)
				}
				if l[3] == ' ' {
					return l[0]
				}
			}
		}
		expect := func(d byte) {
			if got := reply(); got != d {
				b.Fatalf("reply class %c, want %c", got, d)
			}
		}
		expect('2') // greeting
		conn.Write([]byte("EHLO baseline.test\r\n"))
		expect('2')

		b.ReportAllocs()
		b.SetBytes(int64(len(data)))
		b.ResetTimer()
		cpu0 := cpuTime()
		if _, err := conn.Write(group); err != nil {
			b.Fatal(err)
		}
		for i := range b.N {
			expect('2') // MAIL
			expect('2') // RCPT
			expect('3') // DATA
			out := blob
			if i == b.N-1 {
				out = last
			}
			if _, err := conn.Write(out); err != nil {
				b.Fatal(err)
			}
			expect('2') // end of data
		}
		b.StopTimer()
		reportRate(b, cpu0)
		conn.Write([]byte("QUIT\r\n"))
	})
}

// BenchmarkGoMailSend is the same message sent the go-mail way, for
// comparison: per recipient the template's splicing into strings,
// mailer.Build (go-mail) and MsgConn.Send over go-mail's client, lock-step
// with a RSET after each message.
func BenchmarkGoMailSend(b *testing.B) {
	r := demo(b)
	in := prepareInput(r)
	rc := mailer.Recipient{Name: "Zoë Ørsted", Email: "zoe+news@example.com", MessageID: "20251113.42@news.example.com",
		UnsubscribeURL: "https://news.example.com/newsletter/u/0b7e5c2e-8c1f-4e57-9a55-3f8f9b0b2c11", Date: testDate}
	benchServers(b, func(b *testing.B, cfg Config) {
		c, err := DialMsg(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		b.ReportAllocs()
		b.ResetTimer()
		cpu0 := cpuTime()
		for range b.N {
			msg, err := mailer.Build(buildEquivalent(in, r, rc))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Send(context.Background(), msg); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportRate(b, cpu0)
	})
}
