package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

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
	// Each far-relay size runs with the loopback runs of that size, or on
	// its own after them.
	delayed := map[int]bool{}
	for _, n := range h.o.sizes {
		far := h.o.delay > 0 && slices.Contains(h.o.delayN, n) && !delayed[n]
		if err := h.size(ctx, n, far); err != nil {
			return err
		}
		delayed[n] = delayed[n] || far
	}
	for _, n := range h.o.delayN {
		if h.o.delay <= 0 || delayed[n] {
			continue
		}
		delayed[n] = true
		b, err := h.prepare(ctx, n)
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
	h.dropDatabase(ctx, fmt.Sprintf("sendbench_%d", b.n))
}

// dropDatabase drops a database of the bench's, unless -keep-db: the disk a
// million deliveries take is better given back now.
func (h *harness) dropDatabase(ctx context.Context, name string) {
	if h.o.keepDB {
		return
	}
	if db, err := openAdmin(h.srv.adminURL); err == nil {
		db.ExecContext(ctx, `DROP DATABASE IF EXISTS `+name)
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
		if err := h.keep(ctx, r, rep, err); err != nil {
			return err
		}
		for k := range configs {
			c := configs[(k+rep-1)%len(configs)]
			var r result
			if c.kind == "newsletter" {
				r, err = h.send(ctx, b, c.variant, c.conns, h.sink.addr, nil, h.o.limit)
			} else {
				r, err = h.baseline(ctx, b, c.conns, h.sink.addr, nil, h.o.baselineLimit)
			}
			if err := h.keep(ctx, r, rep, err); err != nil {
				return err
			}
		}
	}
	if withDelay {
		return h.delayRuns(ctx, b)
	}
	return nil
}

// delayRuns sends through a proxy that delays every reply, as a relay in
// another region would, at each -delay-conns, with the baseline beside each
// and, with -listmonk, listmonk sending the same edition to the same readers.
func (h *harness) delayRuns(ctx context.Context, b *bench) error {
	p, err := startDelayProxy(h.sink.addr, h.o.delay, h.o.trace)
	if err != nil {
		return err
	}
	defer p.close()
	var lm *listmonkBench
	if h.o.listmonk != "" {
		if lm, err = h.prepareListmonk(ctx, b); err != nil {
			return err
		}
		defer h.dropListmonk(ctx, lm)
	}
	for rep := 1; rep <= h.o.delayRepeat; rep++ {
		for _, c := range h.o.delayConns {
			for _, v := range h.o.variants {
				r, err := h.send(ctx, b, v, c, p.addr, p, h.o.delayLimit)
				if err := h.keep(ctx, r, rep, err); err != nil {
					return err
				}
			}
			if lm != nil {
				r, err := h.listmonkSend(ctx, lm, c, p, h.o.delayLimit)
				if err := h.keep(ctx, r, rep, err); err != nil {
					return err
				}
			}
			r, err := h.baseline(ctx, b, c, p.addr, p, h.o.delayLimit)
			if err := h.keep(ctx, r, rep, err); err != nil {
				return err
			}
		}
	}
	return nil
}

// keep records the result of round rep, unless the run failed (err), and
// says whether to go on: not once we are interrupted.
func (h *harness) keep(ctx context.Context, r result, rep int, err error) error {
	if err != nil {
		return err
	}
	r.Rep = rep
	if !r.OK {
		h.failed = true
	}
	h.out.add(r)
	return ctx.Err()
}

func (h *harness) logFile(name string) (*os.File, error) {
	h.seq++
	f, err := os.Create(filepath.Join(h.work, fmt.Sprintf("%03d-%s.log", h.seq, name)))
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}
