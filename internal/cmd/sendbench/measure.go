package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// measurement is what measure saw of one child process.
type measurement struct {
	wall, cpu, pg, sink time.Duration
	maxRSSKiB           int64
	stopped             bool
	// enqueued is the state when the newsletter logged "send started":
	// the queue is filled and delivery begins.
	enqueued phase
	exitErr  error  // the child's exit status, when not 0
	lastLine string // its last line on stderr (when measure read it)
}

// phase is a reading taken while the child runs, from its start.
type phase struct {
	seen                bool
	wall, cpu, pg, sink time.Duration
}

func (m measurement) fill(r *result) {
	r.Wall, r.ClientCPU, r.PGCPU, r.SinkCPU, r.MaxRSSKiB, r.Stopped = m.wall, m.cpu, m.pg, m.sink, m.maxRSSKiB, m.stopped
	if m.enqueued.seen {
		r.Enq = m.enqueued
	}
}

// sendStarted is how `newsletter send` logs the end of its enqueue.
const sendStarted = `msg="send started"`

// measure runs cmd to the end, reading PostgreSQL's and the sink's CPU
// right before it starts and right after it exits. At limit, or when we
// are interrupted, the child gets SIGINT: both the newsletter and the
// baseline stop gracefully on it and keep what they did.
//
// When log is set, the child's stderr goes there through a pipe we read,
// and the line with sendStarted takes a reading of every CPU counter: the
// send's enqueue and its delivery are then told apart, which lets a run
// stopped at its limit still give the cost per message of a whole send
// (all of the enqueue, the delivery scaled to everyone).
func (h *harness) measure(ctx context.Context, cmd *exec.Cmd, limit time.Duration, log io.Writer) (measurement, error) {
	var m measurement
	before, err := h.readServers()
	if err != nil {
		return m, err
	}
	var stderr, childEnd *os.File
	if log != nil {
		if stderr, childEnd, err = os.Pipe(); err != nil {
			return m, fmt.Errorf("stderr pipe: %w", err)
		}
		defer stderr.Close()
		cmd.Stderr = childEnd
	}
	// A process group of its own: a Ctrl-C at the terminal reaches us only,
	// and we pass it on as the graceful stop; with -perf, both perf and the
	// newsletter under it get it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err = cmd.Start()
	if childEnd != nil {
		childEnd.Close() // the child has its copy; EOF comes when it exits
	}
	if err != nil {
		return m, fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	stopWatch := make(chan struct{})
	peakRSS := watchPeakRSS(pid, stopWatch)
	logDone := make(chan loggedRun, 1)
	if stderr != nil {
		go func() { logDone <- h.followLog(stderr, log, pid, start, before) }()
	} else {
		logDone <- loggedRun{}
	}
	stopped, waitErr := waitLimited(ctx, cmd, limit)
	m.wall, m.stopped = time.Since(start), stopped
	close(stopWatch)
	m.maxRSSKiB = <-peakRSS
	after, err := h.readServers()
	if err != nil {
		return m, err
	}
	m.pg, m.sink = after.pg-before.pg, after.sink-before.sink
	m.cpu = childCPU(cmd.ProcessState)
	l := <-logDone
	m.enqueued, m.lastLine, m.exitErr = l.enqueued, l.last, waitErr
	return m, nil
}

// serverCPU is the CPU PostgreSQL's processes and the sink have used so
// far.
type serverCPU struct{ pg, sink time.Duration }

func (h *harness) readServers() (serverCPU, error) {
	pg, err := h.srv.cpu()
	if err != nil {
		return serverCPU{}, err
	}
	sink, err := h.sink.cpu()
	if err != nil {
		return serverCPU{}, err
	}
	return serverCPU{pg, sink}, nil
}

// loggedRun is what followLog saw on the child's stderr.
type loggedRun struct {
	enqueued phase
	last     string // the last line that was not blank
}

// followLog copies the child's stderr to log until it exits, and takes a
// reading of every CPU counter at the line with sendStarted.
func (h *harness) followLog(stderr io.Reader, log io.Writer, pid int, start time.Time, before serverCPU) loggedRun {
	var l loggedRun
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !l.enqueued.seen && bytes.Contains(line, []byte(sendStarted)) {
			l.enqueued = phase{seen: true, wall: time.Since(start)}
			l.enqueued.cpu, _ = processCPU(pid)
			pg, _ := h.srv.cpu()
			sk, _ := h.sink.cpu()
			l.enqueued.pg, l.enqueued.sink = pg-before.pg, sk-before.sink
		}
		if len(bytes.TrimSpace(line)) > 0 {
			l.last = string(line)
		}
		log.Write(append(line, '\n'))
	}
	io.Copy(log, stderr) // a line longer than the scanner takes
	return l
}

// waitLimited waits for cmd to exit, and stops it gracefully at limit (0:
// none) or when ctx ends; stopped says it was stopped.
func waitLimited(ctx context.Context, cmd *exec.Cmd, limit time.Duration) (stopped bool, err error) {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case err = <-done:
		return false, err
	case <-timeout:
	case <-ctx.Done():
	}
	return true, interrupt(cmd, done)
}

// interrupt asks the child to stop, and kills it if it has not after a
// minute.
func interrupt(cmd *exec.Cmd, done <-chan error) error {
	syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
	select {
	case err := <-done:
		return err
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return fmt.Errorf("did not stop within a minute of SIGINT; killed")
	}
}
