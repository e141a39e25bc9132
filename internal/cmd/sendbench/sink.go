package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"newsletter/internal/pgtest"
)

// sink is a running Postfix smtp-sink: it accepts every message, advertises
// PIPELINING and throws the messages away, and costs little CPU itself, so
// the client is what a run measures.
type sink struct {
	addr string // host:port
	cmd  *exec.Cmd
	done chan struct{}
}

// startSink runs smtp-sink on a free loopback port. As root it must drop
// privileges (-u); smtp-sink refuses to run as root otherwise.
func startSink(ctx context.Context, bin, logPath string) (*sink, error) {
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("smtp-sink: %w (Debian: echo \"postfix postfix/main_mailer_type select No configuration\" | debconf-set-selections; apt-get install -y --no-install-recommends postfix)", err)
	}
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	// -4: IPv4 only, we listen on 127.0.0.1. -m: more simultaneous sessions
	// than the default 256, so a high -conns never queues in the kernel.
	// -t: a long command timeout, so a paused client is not cut off.
	// Backlog 1024 for the same reason as -m.
	args := []string{"-4", "-m", "1024", "-t", "600"}
	if os.Geteuid() == 0 {
		u := "postfix"
		if _, err := user.Lookup(u); err != nil {
			u = "nobody"
		}
		args = append(args, "-u", u)
	}
	args = append(args, addr, "1024")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("smtp-sink log: %w", err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C reaches us, and we stop it last.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start smtp-sink: %w", err)
	}
	s := &sink{addr: addr, cmd: cmd, done: make(chan struct{})}
	go func() {
		cmd.Wait()
		logf.Close()
		close(s.done)
	}()
	if err := waitListening(ctx, addr, s.done, 10*time.Second); err != nil {
		s.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("smtp-sink %s: %w: %s", filepath.Base(bin), err, log)
	}
	return s, nil
}

// cpu is the test server's CPU time so far: smtp-sink's, one event-driven
// process (it does not fork per connection), so its own utime+stime is all
// of it, and this process's, which is the delaying proxy of the far-relay
// runs (and, idle, a child's wait otherwise).
func (s *sink) cpu() (time.Duration, error) {
	d, err := processCPU(s.cmd.Process.Pid)
	if err != nil {
		return 0, err
	}
	self, err := processCPU(os.Getpid())
	return d + self, err
}

func (s *sink) stop() {
	s.cmd.Process.Kill()
	<-s.done
}

// waitListening dials addr until it answers, the process exits or the time
// is up.
func waitListening(ctx context.Context, addr string, exited <-chan struct{}, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("exited before listening")
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening after %s: %w", limit, err)
		}
	}
}

// delayProxy stands for a relay in another region. smtp-sink's own delays
// (-w, -W command:delay) take whole seconds only, so a TCP proxy in front of
// it holds back everything the server writes by delay before passing it to
// the client. It is a delay line, not a sleep per write: a reply leaves delay
// after the server wrote it, whatever else is in flight, as on a long link
// (the round trip grows by delay; bandwidth does not shrink). What the client
// writes goes through at once. It counts the connections it accepted, which
// is how many SMTP connections a send took.
type delayProxy struct {
	addr     string
	ln       net.Listener
	target   string
	delay    time.Duration
	accepted atomic.Int64
	wg       sync.WaitGroup
	trace    *connTrace // -trace; nil: what the client writes is spliced through
}

func startDelayProxy(target string, delay time.Duration, trace bool) (*delayProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("delay proxy: listen: %w", err)
	}
	p := &delayProxy{addr: ln.Addr().String(), ln: ln, target: target, delay: delay}
	if trace {
		p.trace = &connTrace{conns: map[int64]*connTimes{}}
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

func (p *delayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		id := p.accepted.Add(1)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			p.relay(c, id)
		}()
	}
}

// resetCount zeroes the connection count (and the trace) before a run and
// returns nothing: each run reads accepted (and traced) afterwards.
func (p *delayProxy) resetCount() {
	p.accepted.Store(0)
	if p.trace != nil {
		p.trace.reset()
	}
}

// traced is the trace's summary of the run, for the check column; "" without
// -trace.
func (p *delayProxy) traced() string {
	if p.trace == nil {
		return ""
	}
	return p.trace.summary()
}

func (p *delayProxy) close() {
	p.ln.Close()
	p.wg.Wait()
}

type chunk struct {
	b   []byte
	due time.Time
}

func (p *delayProxy) relay(client net.Conn, id int64) {
	defer client.Close()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer server.Close()
	// client -> server, undelayed; when the client is done, so is the server.
	go func() {
		if p.trace != nil {
			p.trace.pass(id, server, client)
		} else {
			io.Copy(server, client)
		}
		server.(*net.TCPConn).CloseWrite()
	}()
	// server -> client through the delay line. The channel is deep enough
	// for any pipelined burst a sink writes within one delay.
	line := make(chan chunk, 4096)
	go func() {
		defer close(line)
		for {
			b := make([]byte, 32<<10)
			n, err := server.Read(b)
			if n > 0 {
				line <- chunk{b: b[:n], due: time.Now().Add(p.delay)}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range line {
		if d := time.Until(c.due); d > 0 {
			time.Sleep(d)
		}
		if _, err := client.Write(c.b); err != nil {
			// Drain so the reader goroutine is not stuck on a full channel.
			for range line {
			}
			return
		}
	}
}
