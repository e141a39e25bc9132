package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"time"
)

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
	if proxy != nil {
		r.Check += proxy.traced()
	}
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
	if proxy != nil {
		proxy.resetCount() // for the trace: the baseline counts its own connections
	}
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
	if proxy != nil {
		r.Check += proxy.traced()
	}
	return r, nil
}
