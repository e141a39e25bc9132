// Command sendbench measures `newsletter send` end to end, as issue 5 asks:
// a real PostgreSQL, Postfix's smtp-sink on loopback, the demo edition, N
// confirmed subscribers, every outcome recorded. Beside msgs/s, which swings
// widely on a shared machine, it reports CPU time per message (the
// newsletter process, PostgreSQL's processes, the sink), which moves far
// less, and peak RSS; and it runs a minimal pipelined SMTP client to the same
// sink in the same run, interleaved with the newsletter and repeated, so the
// newsletter's rate is judged against what the machine could do at that
// moment, not against a number from another day.
//
// It is run by scripts/bench.sh (make bench). See -h for the flags.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		os.Exit(baselineMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "sendbench: %v\n", err)
		os.Exit(1)
	}
}

type options struct {
	sizes         []int
	conns         []int
	variants      variants
	dkim          bool
	baselineConns int
	repeat        int
	repeatMaxN    int
	delay         time.Duration
	delayN        int
	delayConns    []int
	delayLimit    time.Duration
	limit         time.Duration
	baselineLimit time.Duration
	keepDB        bool
	perf          bool
	bin           string
	sinkBin       string
	editionFile   string
	siteURL       string
	workDir       string
}

func parseOptions(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("sendbench", flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: go run ./internal/cmd/sendbench [flags]   (from the repository root)\n\n"+
			"Measures `newsletter send` against Postfix's smtp-sink and a minimal pipelined\n"+
			"SMTP client to the same sink, interleaved and repeated. Uses DATABASE_URL's\n"+
			"server when set (databases sendbench_<n> are created there), else a throwaway\n"+
			"PostgreSQL cluster.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	sizes := envOr("BENCH_SIZES", "10000,100000,1000000")
	fs.StringVar(&sizes, "n", sizes, "subscriber counts to run, comma-separated (env BENCH_SIZES)")
	conns := fs.String("conns", envOr("BENCH_CONNS", "2"), "NEWSLETTER_SMTP_CONNS values to compare, comma-separated; each is a run of its own (env BENCH_CONNS)")
	fs.BoolVar(&o.dkim, "dkim", false, "also run each newsletter configuration signing with DKIM (a fresh RSA-2048 key), as variant dkim; the summary compares CPU per message with and without")
	fs.Var(&o.variants, "variant", "a newsletter configuration to compare, as name:VAR=value,VAR=value (e.g. bulk:NEWSLETTER_TRANSPORT=bulk); repeatable; each runs at every -conns. Default: one, the binary's defaults")
	fs.IntVar(&o.baselineConns, "baseline-conns", 2, "connections of the pipelined baseline client")
	fs.IntVar(&o.repeat, "repeat", 2, "rounds per size; each round runs every configuration once, in a rotated order")
	fs.IntVar(&o.repeatMaxN, "repeat-max-n", 100000, "sizes above this run one round only, to keep make bench short (0: no cap)")
	fs.DurationVar(&o.delay, "delay", 20*time.Millisecond, "reply delay of the far-relay runs (a delaying proxy in front of the sink); 0 skips them")
	fs.IntVar(&o.delayN, "delay-n", 10000, "subscribers in the far-relay runs")
	delayConns := fs.String("delay-conns", "2,32", "connections to try in the far-relay runs, comma-separated")
	fs.DurationVar(&o.delayLimit, "delay-limit", 20*time.Second, "stop a far-relay run (SIGINT, a graceful stop) after this long and rate what was sent; 0: no limit")
	fs.DurationVar(&o.limit, "limit", 0, "stop a newsletter run (SIGINT, a graceful stop: results recorded, leases handed back) after this long and rate what was sent; 0: no limit")
	fs.DurationVar(&o.baselineLimit, "baseline-limit", 30*time.Second, "stop a baseline run after this long (its rate is steady within seconds); 0: no limit")
	fs.BoolVar(&o.keepDB, "keep-db", false, "keep the databases (and the throwaway cluster, whose URL is printed) when done")
	fs.BoolVar(&o.perf, "perf", false, "record each newsletter send with perf record -g into the work folder, for perf report (its overhead lands in client_us, and rss_MB is perf's)")
	fs.StringVar(&o.bin, "bin", "", "newsletter binary to measure (default: go build ./cmd/newsletter)")
	fs.StringVar(&o.sinkBin, "sink", "/usr/sbin/smtp-sink", "Postfix's smtp-sink")
	fs.StringVar(&o.editionFile, "edition", "demo/london-daily-2025-11-13.txt", "edition to send (HTML + text)")
	fs.StringVar(&o.siteURL, "site-url", "https://london-daily.example", "--site-url for the edition import")
	fs.StringVar(&o.workDir, "workdir", "", "folder for the binary, logs and the baseline message (default: a temporary one, removed unless a run failed)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q (see -h)", fs.Arg(0))
	}
	var err error
	if o.sizes, err = intList("-n", sizes); err != nil {
		return nil, err
	}
	if o.conns, err = intList("-conns", *conns); err != nil {
		return nil, err
	}
	if o.delayConns, err = intList("-delay-conns", *delayConns); err != nil {
		return nil, err
	}
	if len(o.variants) == 0 {
		o.variants = variants{{}}
	}
	if o.repeat < 1 || o.baselineConns < 1 || o.delayN < 1 {
		return nil, fmt.Errorf("-repeat, -baseline-conns and -delay-n must be at least 1")
	}
	return o, nil
}

func run(ctx context.Context, args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "sendbench-"); err != nil {
			return fmt.Errorf("work folder: %w", err)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	h := &harness{o: o, work: work, out: newReport(os.Stdout)}
	if o.dkim {
		v, err := dkimVariant(work)
		if err != nil {
			return err
		}
		o.variants = append(o.variants, v)
	}
	err = h.run(ctx)
	if o.workDir == "" {
		if err == nil && !h.failed {
			os.RemoveAll(work)
		} else {
			fmt.Fprintf(os.Stderr, "sendbench: logs kept in %s\n", work)
		}
	}
	if err == nil && h.failed {
		err = fmt.Errorf("some runs failed or did not record every delivery as sent (see the check column; logs in %s)", work)
	}
	return err
}

// harness holds what lives for the whole bench: the server, the sink, the
// binary.
type harness struct {
	o      *options
	work   string
	out    *report
	srv    *server
	sink   *sink
	nl     *newsletterBin
	self   string // this executable, re-run for the baseline
	eml    string // the baseline's message
	failed bool
	seq    int // numbers the log files
}

func (h *harness) run(ctx context.Context) error {
	var err error
	if h.self, err = os.Executable(); err != nil {
		return fmt.Errorf("find this executable: %w", err)
	}
	if h.nl, err = buildNewsletter(ctx, h.o.bin, h.work); err != nil {
		return err
	}
	if h.srv, err = startServer(ctx); err != nil {
		return err
	}
	defer func() {
		if h.srv.stop == nil {
			return
		}
		if h.o.keepDB {
			fmt.Fprintf(os.Stderr, "sendbench: kept PostgreSQL at %s (data %s); stop it with pg_ctl -D %s stop (as the postgres user)\n", h.srv.adminURL, h.srv.dataDir, h.srv.dataDir)
			return
		}
		h.srv.stop()
	}()
	if h.srv.postmaster == 0 {
		fmt.Fprintln(os.Stderr, "sendbench: PostgreSQL's processes are not visible from here: its CPU is not measured")
	}
	if h.sink, err = startSink(ctx, h.o.sinkBin, filepath.Join(h.work, "smtp-sink.log")); err != nil {
		return err
	}
	defer h.sink.stop()
	fmt.Fprintf(os.Stderr, "sendbench: newsletter %s, PostgreSQL postmaster %d, smtp-sink %s (pid %d), work %s\n",
		h.nl.path, h.srv.postmaster, h.sink.addr, h.sink.cmd.Process.Pid, h.work)

	h.out.header()
	// The summary of the runs done, even when a later step fails or we are
	// interrupted.
	defer h.out.summary()
	delayDone := h.o.delay <= 0
	for _, n := range h.o.sizes {
		if err := h.size(ctx, n, !delayDone && n == h.o.delayN); err != nil {
			return err
		}
		delayDone = delayDone || n == h.o.delayN
	}
	if !delayDone {
		b, err := h.prepare(ctx, h.o.delayN)
		if err != nil {
			return err
		}
		err = h.delayRuns(ctx, b)
		h.drop(ctx, b)
		if err != nil {
			return err
		}
	}
	return nil
}

func (h *harness) prepare(ctx context.Context, n int) (*bench, error) {
	b, err := prepare(ctx, h.srv, h.nl, n, h.o.editionFile, h.o.siteURL)
	if err != nil {
		return nil, err
	}
	if h.eml == "" {
		h.eml = filepath.Join(h.work, "edition.eml")
		if out, err := h.nl.run(ctx, b.url, "preview", "--date", b.date, "--format", "eml", "--out", h.eml); err != nil {
			b.close()
			return nil, fmt.Errorf("newsletter preview --format eml: %w: %s", err, out)
		}
	}
	return b, nil
}

func (h *harness) drop(ctx context.Context, b *bench) {
	b.close()
	if h.o.keepDB {
		return
	}
	if db, err := openAdmin(h.srv.adminURL); err == nil {
		// The disk a million deliveries take is better given back now.
		db.ExecContext(ctx, fmt.Sprintf(`DROP DATABASE IF EXISTS sendbench_%d`, b.n))
		db.Close()
	}
}

// size runs every round of one subscriber count. A round times Enqueue,
// then runs each configuration (the newsletter at each -conns, the
// baseline) once; the order rotates from round to round, so a slow patch of
// the machine doesn't always hit the same configuration.
func (h *harness) size(ctx context.Context, n int, withDelay bool) error {
	b, err := h.prepare(ctx, n)
	if err != nil {
		return err
	}
	defer h.drop(ctx, b)
	type config struct {
		kind    string
		variant variant
		conns   int
	}
	var configs []config
	for _, v := range h.o.variants {
		for _, c := range h.o.conns {
			configs = append(configs, config{"newsletter", v, c})
		}
	}
	configs = append(configs, config{kind: "baseline", conns: h.o.baselineConns})
	rounds := h.o.repeat
	if h.o.repeatMaxN > 0 && n > h.o.repeatMaxN {
		rounds = 1
	}
	for rep := 1; rep <= rounds; rep++ {
		r, err := b.timeEnqueue(ctx, h.srv)
		if err != nil {
			return err
		}
		r.Rep = rep
		h.record(r)
		for k := range configs {
			c := configs[(k+rep-1)%len(configs)]
			var r result
			if c.kind == "newsletter" {
				r, err = h.send(ctx, b, c.variant, c.conns, h.sink.addr, nil, h.o.limit)
			} else {
				r, err = h.baseline(ctx, b, c.conns, h.sink.addr, nil, h.o.baselineLimit)
			}
			if err != nil {
				return err
			}
			r.Rep = rep
			h.record(r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	if withDelay {
		return h.delayRuns(ctx, b)
	}
	return nil
}

// delayRuns sends through a proxy that delays every reply, as a relay in
// another region would, at each -delay-conns, with the baseline beside each.
func (h *harness) delayRuns(ctx context.Context, b *bench) error {
	p, err := startDelayProxy(h.sink.addr, h.o.delay)
	if err != nil {
		return err
	}
	defer p.close()
	for _, c := range h.o.delayConns {
		for _, v := range h.o.variants {
			r, err := h.send(ctx, b, v, c, p.addr, p, h.o.delayLimit)
			if err != nil {
				return err
			}
			r.Rep = 1
			h.record(r)
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
		r, err := h.baseline(ctx, b, c, p.addr, p, h.o.delayLimit)
		if err != nil {
			return err
		}
		r.Rep = 1
		h.record(r)
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
	return nil
}

func (h *harness) record(r result) {
	if !r.OK {
		h.failed = true
	}
	h.out.add(r)
}

func (h *harness) logFile(name string) (*os.File, error) {
	h.seq++
	f, err := os.Create(filepath.Join(h.work, fmt.Sprintf("%03d-%s.log", h.seq, name)))
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}

// send runs `newsletter send` once, from an empty queue, and measures it.
func (h *harness) send(ctx context.Context, b *bench, v variant, conns int, smtpAddr string, proxy *delayProxy, limit time.Duration) (result, error) {
	r := result{Size: b.n, Kind: "newsletter", Variant: v.name, Conns: conns, Connections: -1, pgKnown: h.srv.postmaster != 0}
	if proxy != nil {
		r.Delay = h.o.delay
	}
	edID, date, err := b.freshEdition(ctx)
	if err != nil {
		return r, err
	}
	logf, err := h.logFile(fmt.Sprintf("send-%d-%sc%d", b.n, v.name, conns))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(h.nl.path, "send", "--date", date)
	if h.o.perf {
		data := strings.TrimSuffix(logf.Name(), ".log") + ".perf.data"
		cmd = exec.Command("perf", "record", "-F", "997", "-g", "-o", data, "--", h.nl.path, "send", "--date", date)
		r.Check = "perf " + data + "; "
	}
	cmd.Env = h.nl.env(b.url, append(slices.Clone(v.env),
		"SMTP_URL=smtp://"+smtpAddr+"?tls=none",
		"NEWSLETTER_SMTP_CONNS="+strconv.Itoa(conns),
	)...)
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if proxy != nil {
		proxy.resetCount()
	}
	m, err := h.measure(ctx, cmd, limit, logf)
	fmt.Fprintf(logf, "\n--- stdout ---\n%s", stdout.String())
	if err != nil {
		return r, fmt.Errorf("newsletter send (n=%d, %s conns=%d): %w (log %s)", b.n, v.name, conns, err, logf.Name())
	}
	m.fill(&r)
	if m.exitErr != nil {
		// Recorded as a failed run, and the bench goes on: one broken
		// configuration or size should not cost the figures of the others.
		r.Check += fmt.Sprintf("newsletter send: %v: %s; ", m.exitErr, m.lastLine)
	}
	if proxy != nil {
		r.Connections = proxy.accepted.Load()
	}
	counts, err := b.outcomes(ctx, edID)
	if err != nil {
		return r, err
	}
	r.Msgs = counts["sent"]
	r.Check += formatCounts(counts)
	// Every recipient must have its outcome recorded as sent. A run stopped
	// at its time limit must have handed back every lease: the rest are
	// queued, none left "sending".
	total := int64(0)
	for _, v := range counts {
		total += v
	}
	r.OK = m.exitErr == nil && total == int64(b.n) &&
		(counts["sent"] == int64(b.n) || (r.Stopped && counts["sent"]+counts["queued"] == int64(b.n)))
	if !r.OK {
		r.Check += fmt.Sprintf(" (want %d sent; log %s)", b.n, logf.Name())
	}
	r.Self = selfReported(stdout.String())
	return r, nil
}

// baseline runs the pipelined client (this program, re-run as a child) once.
func (h *harness) baseline(ctx context.Context, b *bench, conns int, smtpAddr string, proxy *delayProxy, limit time.Duration) (result, error) {
	n := b.n
	r := result{Size: n, Kind: "baseline", Conns: conns, Connections: -1, pgKnown: h.srv.postmaster != 0}
	if proxy != nil {
		r.Delay = h.o.delay
	}
	// The baseline doesn't touch PostgreSQL; settling it all the same keeps
	// the previous run's clean-up out of the PostgreSQL column, which then
	// shows the idle server's floor.
	if err := b.settle(ctx); err != nil {
		return r, err
	}
	logf, err := h.logFile(fmt.Sprintf("baseline-%d-c%d", n, conns))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	cmd := exec.Command(h.self, "baseline", "-addr", smtpAddr, "-n", strconv.Itoa(n), "-conns", strconv.Itoa(conns), "-msg", h.eml)
	var stdout strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, logf
	m, err := h.measure(ctx, cmd, limit, nil)
	if err != nil {
		return r, fmt.Errorf("baseline (n=%d, conns=%d): %w (log %s)", n, conns, err, logf.Name())
	}
	m.fill(&r)
	rep, err := parseBaselineReport(stdout.String())
	if m.exitErr != nil || err != nil {
		r.Check = fmt.Sprintf("baseline failed: %v (log %s)", errors.Join(m.exitErr, err), logf.Name())
		return r, nil
	}
	r.Msgs, r.Connections = rep.Sent, rep.Connections
	r.OK = rep.Sent == int64(n) || r.Stopped
	r.Check = fmt.Sprintf("sink accepted %d", rep.Sent)
	return r, nil
}

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
	pg0, err := h.srv.cpu()
	if err != nil {
		return m, err
	}
	sink0, err := h.sink.cpu()
	if err != nil {
		return m, err
	}
	var pr, pw *os.File
	if log != nil {
		if pr, pw, err = os.Pipe(); err != nil {
			return m, fmt.Errorf("stderr pipe: %w", err)
		}
		defer pr.Close()
		cmd.Stderr = pw
	}
	// A process group of its own: a Ctrl-C at the terminal reaches us only,
	// and we pass it on as the graceful stop; with -perf, both perf and the
	// newsletter under it get it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	err = cmd.Start()
	if pw != nil {
		pw.Close() // the child has its copy; EOF comes when it exits
	}
	if err != nil {
		return m, fmt.Errorf("start: %w", err)
	}
	pid := cmd.Process.Pid
	stopWatch := make(chan struct{})
	peakRSS := watchPeakRSS(pid, stopWatch)
	type logged struct {
		enqueued phase
		last     string
	}
	logDone := make(chan logged, 1)
	if pr != nil {
		go func() {
			var ph phase
			var last string
			sc := bufio.NewScanner(pr)
			sc.Buffer(make([]byte, 64<<10), 1<<20)
			for sc.Scan() {
				line := sc.Bytes()
				if !ph.seen && bytes.Contains(line, []byte(sendStarted)) {
					ph = phase{seen: true, wall: time.Since(start)}
					ph.cpu, _ = processCPU(pid)
					pg, _ := h.srv.cpu()
					sk, _ := h.sink.cpu()
					ph.pg, ph.sink = pg-pg0, sk-sink0
				}
				if len(bytes.TrimSpace(line)) > 0 {
					last = string(line)
				}
				log.Write(append(line, '\n'))
			}
			io.Copy(log, pr) // a line longer than the scanner takes
			logDone <- logged{ph, last}
		}()
	} else {
		logDone <- logged{}
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var timeout <-chan time.Time
	if limit > 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		timeout = t.C
	}
	var waitErr error
	select {
	case waitErr = <-done:
	case <-timeout:
		m.stopped = true
		waitErr = interrupt(cmd, done)
	case <-ctx.Done():
		m.stopped = true
		waitErr = interrupt(cmd, done)
	}
	m.wall = time.Since(start)
	close(stopWatch)
	m.maxRSSKiB = <-peakRSS
	pg1, err := h.srv.cpu()
	if err != nil {
		return m, err
	}
	sink1, err := h.sink.cpu()
	if err != nil {
		return m, err
	}
	m.pg, m.sink = pg1-pg0, sink1-sink0
	m.cpu = childCPU(cmd.ProcessState)
	l := <-logDone
	m.enqueued, m.lastLine, m.exitErr = l.enqueued, l.last, waitErr
	return m, nil
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

// newsletterBin is the binary under test and the configuration every run
// gives it.
type newsletterBin struct {
	path   string
	secret string
}

func buildNewsletter(ctx context.Context, bin, work string) (*newsletterBin, error) {
	nl := &newsletterBin{path: bin}
	if nl.path == "" {
		nl.path = filepath.Join(work, "newsletter")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nl.path, "./cmd/newsletter")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/newsletter (run sendbench from the repository root): %w: %s", err, out)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	nl.secret = hex.EncodeToString(secret)
	return nl, nil
}

// env is the newsletter's environment: ours without any newsletter
// setting (a developer's own NEWSLETTER_* must not change the runs), plus
// the bench's.
func (nl *newsletterBin) env(dbURL string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NEWSLETTER_") || k == "DATABASE_URL" || k == "SMTP_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"DATABASE_URL="+dbURL,
		"NEWSLETTER_FROM=London Daily <newsletter@example.com>",
		"NEWSLETTER_BASE_URL=https://news.example.com",
		"NEWSLETTER_SECRET="+nl.secret,
		"NEWSLETTER_TZ=UTC",
	)
	return append(env, extra...)
}

// run runs a short subcommand (migrate, edition import, preview).
func (nl *newsletterBin) run(ctx context.Context, dbURL string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, nl.path, args...)
	cmd.Env = nl.env(dbURL)
	return cmd.CombinedOutput()
}

func envOr(name, def string) string {
	if v := strings.TrimSpace(os.Getenv(name)); v != "" {
		return v
	}
	return def
}

func intList(flagName, s string) ([]int, error) {
	var out []int
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		v, err := strconv.Atoi(strings.ReplaceAll(f, "_", ""))
		if err != nil || v < 1 {
			return nil, fmt.Errorf("%s: %q is not a positive whole number", flagName, f)
		}
		out = append(out, v)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: empty list", flagName)
	}
	return out, nil
}

// variant is a configuration of the newsletter to compare: a name and the
// environment it adds (NEWSLETTER_TRANSPORT=bulk, NEWSLETTER_BATCH=500...).
type variant struct {
	name string
	env  []string
}

type variants []variant

func (vs *variants) String() string {
	var parts []string
	for _, v := range *vs {
		parts = append(parts, v.name+":"+strings.Join(v.env, ","))
	}
	return strings.Join(parts, " ")
}

// Set reads name:VAR=value,VAR=value; without a name, the settings are the
// name.
func (vs *variants) Set(s string) error {
	name, settings, ok := strings.Cut(s, ":")
	if !ok || strings.Contains(name, "=") {
		name, settings = "", s
	}
	v := variant{name: name}
	for _, kv := range strings.Split(settings, ",") {
		kv = strings.TrimSpace(kv)
		if kv == "" {
			continue
		}
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("%q is not VAR=value", kv)
		}
		v.env = append(v.env, kv)
	}
	if v.name == "" {
		v.name = strings.Join(v.env, ",")
	}
	if v.name == "" {
		return fmt.Errorf("empty variant")
	}
	*vs = append(*vs, v)
	return nil
}

// dkimVariant writes a fresh RSA-2048 key (RSA: the signature Gmail and
// Yahoo verify everywhere, and the costly one) and returns the variant that
// signs with it.
func dkimVariant(work string) (variant, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return variant{}, fmt.Errorf("DKIM key: %w", err)
	}
	file := filepath.Join(work, "dkim.pem")
	data := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	if err := os.WriteFile(file, data, 0o600); err != nil {
		return variant{}, fmt.Errorf("DKIM key: %w", err)
	}
	return variant{name: "dkim", env: []string{"NEWSLETTER_DKIM_KEY_FILE=" + file, "NEWSLETTER_DKIM_SELECTOR=bench"}}, nil
}
