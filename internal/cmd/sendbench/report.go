package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
)

// result is one measured run.
type result struct {
	Size        int
	Kind        string // newsletter, baseline or enqueue
	Variant     string // the newsletter's -variant name; "" for its defaults
	Conns       int
	Delay       time.Duration // the far-relay runs' reply delay
	Rep         int
	Msgs        int64 // sent (enqueue: queued)
	Wall        time.Duration
	ClientCPU   time.Duration // the newsletter or baseline process
	PGCPU       time.Duration
	SinkCPU     time.Duration
	MaxRSSKiB   int64
	Connections int64 // SMTP connections opened; -1 unknown
	Stopped     bool  // stopped at its time limit
	OK          bool
	Check       string
	Self        string // the newsletter's own "(N msgs/s)"
	// Enq is the newsletter's enqueue: from its start to "send started".
	Enq     phase
	pgKnown bool
}

// projected says the per-message figures of a run stopped at its limit are
// those of the whole send: the enqueue (done for everyone before the limit)
// plus the delivery scaled from the messages sent to everyone.
func (r result) projected() bool {
	return r.Kind == "newsletter" && r.Stopped && r.Enq.seen && r.Msgs > 0 && r.Msgs < int64(r.Size)
}

// rate is msgs/s: sent over wall time, or for a projected run, everyone
// over the enqueue plus the delivery time scaled to everyone.
func (r result) rate() float64 {
	if r.projected() {
		deliver := (r.Wall - r.Enq.wall).Seconds() * float64(r.Size) / float64(r.Msgs)
		return float64(r.Size) / (r.Enq.wall.Seconds() + deliver)
	}
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Msgs) / r.Wall.Seconds()
}

// perMsg is CPU µs per message of a total, enq being the part of it spent
// by the enqueue (for a projected run).
func (r result) perMsg(total, enq time.Duration) float64 {
	if r.projected() {
		return float64(enq.Microseconds())/float64(r.Size) + float64((total-enq).Microseconds())/float64(r.Msgs)
	}
	if r.Msgs == 0 {
		return 0
	}
	return float64(total.Microseconds()) / float64(r.Msgs)
}

func (r result) clientUS() float64 { return r.perMsg(r.ClientCPU, r.Enq.cpu) }
func (r result) pgUS() float64     { return r.perMsg(r.PGCPU, r.Enq.pg) }
func (r result) totalUS() float64 {
	return r.perMsg(r.ClientCPU+r.PGCPU, r.Enq.cpu+r.Enq.pg)
}
func (r result) sinkUS() float64 { return r.perMsg(r.SinkCPU, r.Enq.sink) }

func (r result) label() string {
	if r.Kind == "enqueue" {
		return "enqueue (SQL)"
	}
	l := r.Kind
	if r.Variant != "" {
		l += "[" + r.Variant + "]"
	}
	if r.Delay > 0 {
		l += " +" + r.Delay.String()
	}
	return l
}

// report prints each run as it ends (a table row and a machine-readable
// BENCH line) and the summary at the end.
type report struct {
	w    io.Writer
	runs []result
}

func newReport(w io.Writer) *report { return &report{w: w} }

const rowFormat = "%-9s %-22s %5s %3s %9s %8s %7s %9s %10s %10s %10s %10s %8s %6s  %s\n"

func (p *report) header() {
	fmt.Fprintf(p.w, "Per run: msgs sent; wall_s from process start to exit, enq_s of it until the newsletter logged \"send started\" (its enqueue);\n"+
		"CPU µs per message of the client process (newsletter or baseline), PostgreSQL (all its processes), both, and the test server\n"+
		"(sink_us: smtp-sink, with the delaying proxy in the +delay runs); peak RSS;\n"+
		"smtpc: SMTP connections opened (known for the baseline and behind the delaying proxy). A newsletter run stopped at its time limit\n"+
		"is projected to the whole list (marked ~): its enqueue as measured, its delivery scaled from what it sent.\n")
	fmt.Fprintf(p.w, rowFormat, "size", "run", "conns", "rep", "msgs", "wall_s", "enq_s", "msgs/s", "client_us", "pg_us", "client+pg", "sink_us", "rss_MB", "smtpc", "check")
}

func (p *report) add(r result) {
	p.runs = append(p.runs, r)
	conns, smtpc, client, total, sinkc, rss := "-", "-", "-", "-", "-", "-"
	if r.Kind != "enqueue" {
		conns = strconv.Itoa(r.Conns)
		client = us(r.clientUS())
		sinkc = us(r.sinkUS())
		rss = fmt.Sprintf("%.1f", float64(r.MaxRSSKiB)/1024)
		if r.pgKnown {
			total = us(r.totalUS())
		}
	}
	if r.Connections >= 0 {
		smtpc = strconv.FormatInt(r.Connections, 10)
	}
	pg := "n/a"
	if r.pgKnown {
		pg = us(r.pgUS())
	}
	check := r.Check
	if r.Stopped {
		check = "stopped at limit; " + check
	}
	if r.Self != "" {
		check += "; says " + r.Self
	}
	enq, rate := "-", fmt.Sprintf("%.0f", r.rate())
	if r.Enq.seen {
		enq = fmt.Sprintf("%.2f", r.Enq.wall.Seconds())
	}
	if r.projected() {
		rate, client, pg, total, sinkc = "~"+rate, "~"+client, "~"+pg, "~"+total, "~"+sinkc
	}
	fmt.Fprintf(p.w, rowFormat, strconv.Itoa(r.Size), r.label(), conns, strconv.Itoa(r.Rep), strconv.FormatInt(r.Msgs, 10),
		fmt.Sprintf("%.2f", r.Wall.Seconds()), enq, rate, client, pg, total, sinkc, rss, smtpc, check)
	line := map[string]any{
		"size": r.Size, "run": r.Kind, "variant": r.Variant, "conns": r.Conns, "delay_ms": r.Delay.Milliseconds(), "rep": r.Rep,
		"msgs": r.Msgs, "wall_s": round(r.Wall.Seconds(), 3), "msgs_per_s": round(r.rate(), 1),
		"cpu_us_per_msg_client": round(r.clientUS(), 1),
		"cpu_us_per_msg_sink":   round(r.sinkUS(), 1),
		"peak_rss_kib":          r.MaxRSSKiB, "connections": r.Connections,
		"stopped": r.Stopped, "projected": r.projected(), "ok": r.OK, "check": r.Check,
	}
	if r.Enq.seen {
		line["enqueue_s"] = round(r.Enq.wall.Seconds(), 3)
	}
	if r.pgKnown {
		line["cpu_us_per_msg_pg"] = round(r.pgUS(), 1)
		line["cpu_us_per_msg_client_pg"] = round(r.totalUS(), 1)
		line["pg_cpu_s"] = round(r.PGCPU.Seconds(), 2)
	}
	b, _ := json.Marshal(line)
	fmt.Fprintf(p.w, "BENCH %s\n", b)
}

// summary gives, per size and configuration, the median of the rounds and
// the newsletter's rate as a share of the baseline's in the same round, then
// the targets against what was measured.
func (p *report) summary() {
	if len(p.runs) == 0 {
		return
	}
	type key struct {
		size  int
		label string
		conns int
	}
	groups := map[key][]result{}
	var order []key
	for _, r := range p.runs {
		k := key{r.Size, r.label(), r.Conns}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], r)
	}
	fmt.Fprintf(p.w, "\nSummary (median of the rounds; ratio: the newsletter's msgs/s over the baseline's in the same round)\n")
	sumFormat := "%-9s %-22s %5s %6s %9s %10s %10s %10s %10s %8s  %s\n"
	fmt.Fprintf(p.w, sumFormat, "size", "run", "conns", "rounds", "msgs/s", "client_us", "pg_us", "client+pg", "sink_us", "rss_MB", "ratio to baseline")
	med := map[key]result{}
	for _, k := range order {
		rs := groups[k]
		m := result{Size: k.size, Kind: rs[0].Kind, Conns: k.conns, Delay: rs[0].Delay, pgKnown: rs[0].pgKnown}
		rate := median(rs, func(r result) float64 { return r.rate() })
		client := median(rs, func(r result) float64 { return r.clientUS() })
		pg := median(rs, func(r result) float64 { return r.pgUS() })
		total := median(rs, func(r result) float64 { return r.totalUS() })
		sinkc := median(rs, func(r result) float64 { return r.sinkUS() })
		for _, r := range rs {
			m.MaxRSSKiB = max(m.MaxRSSKiB, r.MaxRSSKiB)
		}
		m.Wall = time.Second
		m.Msgs = int64(rate)
		med[k] = m
		ratio := ""
		if m.Kind == "newsletter" && m.Delay == 0 {
			var rs2 []string
			var vals []float64
			for _, r := range rs {
				if b, ok := p.find(r.Size, "baseline", r.Rep, 0); ok && b.rate() > 0 {
					v := r.rate() / b.rate()
					vals = append(vals, v)
					rs2 = append(rs2, fmt.Sprintf("%.2f", v))
				}
			}
			if len(vals) > 0 {
				ratio = fmt.Sprintf("%.2f (rounds: %s)", medianOf(vals), strings.Join(rs2, ", "))
			}
		}
		stopped := 0
		for _, r := range rs {
			if r.Stopped {
				stopped++
			}
		}
		if stopped > 0 {
			ratio = strings.TrimSpace(fmt.Sprintf("%s [%d of %d stopped at the time limit]", ratio, stopped, len(rs)))
		}
		pgs, totals := "n/a", "n/a"
		if m.pgKnown {
			pgs, totals = us(pg), us(total)
		}
		if m.Kind == "enqueue" {
			fmt.Fprintf(p.w, sumFormat, strconv.Itoa(k.size), k.label, "-", strconv.Itoa(len(rs)),
				fmt.Sprintf("%.0f", rate), "-", pgs, "-", "-", "-",
				fmt.Sprintf("%.2f s for %d", median(rs, func(r result) float64 { return r.Wall.Seconds() }), k.size))
			continue
		}
		fmt.Fprintf(p.w, sumFormat, strconv.Itoa(k.size), k.label, strconv.Itoa(k.conns), strconv.Itoa(len(rs)),
			fmt.Sprintf("%.0f", rate), us(client), pgs, totals, us(sinkc), fmt.Sprintf("%.1f", float64(m.MaxRSSKiB)/1024), ratio)
	}
	p.targets()
}

// find is the run of a kind in a round at a size (any conns when conns is
// 0), outside the far-relay runs.
func (p *report) find(size int, kind string, rep, conns int) (result, bool) {
	for _, r := range p.runs {
		if r.Size == size && r.Kind == kind && r.Rep == rep && r.Delay == 0 && (conns == 0 || r.Conns == conns) {
			return r, true
		}
	}
	return result{}, false
}

// targets sets the targets beside the medians measured, for the
// closing note; a size not run is left out.
func (p *report) targets() {
	fmt.Fprintf(p.w, "\nIssue 5 targets (medians of this run):\n")
	bySize := map[int][]result{}
	for _, r := range p.runs {
		if r.Delay == 0 {
			bySize[r.Size] = append(bySize[r.Size], r)
		}
	}
	sizes := slices.Sorted(maps.Keys(bySize))
	type cfg struct {
		label string
		conns int
	}
	pick := func(size int, kind string) (map[cfg][]result, []cfg) {
		out := map[cfg][]result{}
		var order []cfg
		for _, r := range bySize[size] {
			if r.Kind == kind {
				c := cfg{r.label(), r.Conns}
				if _, ok := out[c]; !ok {
					order = append(order, c)
				}
				out[c] = append(out[c], r)
			}
		}
		return out, order
	}
	verdict := func(ok bool) string {
		if ok {
			return "met"
		}
		return "NOT met"
	}
	for _, size := range sizes {
		nls, order := pick(size, "newsletter")
		for _, c := range order {
			rs := nls[c]
			name := fmt.Sprintf("%s, conns %d", c.label, c.conns)
			total := median(rs, func(r result) float64 { return r.totalUS() })
			var ratios []float64
			for _, r := range rs {
				if b, ok := p.find(size, "baseline", r.Rep, 0); ok && b.rate() > 0 {
					ratios = append(ratios, r.rate()/b.rate())
				}
			}
			rss := int64(0)
			for _, r := range rs {
				rss = max(rss, r.MaxRSSKiB)
			}
			// The CPU and rate targets are for sending as such; a signed
			// send is compared with an unsigned one below (dkimLine).
			signed := rs[0].Variant == "dkim"
			if size == 100000 && rs[0].pgKnown && !signed {
				fmt.Fprintf(p.w, "  CPU per message at 100k (%s): %s µs newsletter+postgres, target <= 250: %s\n", name, us(total), verdict(total <= 250))
			}
			if size == 100000 && len(ratios) > 0 && !signed {
				v := medianOf(ratios)
				fmt.Fprintf(p.w, "  rate at 100k (%s): %.0f%% of the baseline's (rounds from %.0f%% to %.0f%%), target >= 75%%: %s\n",
					name, 100*v, 100*slices.Min(ratios), 100*slices.Max(ratios), verdict(v >= 0.75))
			}
			if size == 1000000 {
				fmt.Fprintf(p.w, "  peak RSS at 1M (%s): %.1f MB, target < 100: %s\n", name, float64(rss)/1024, verdict(rss < 100*1024))
			}
			fmt.Fprintf(p.w, "  peak RSS at %d (%s): %.1f MB\n", size, name, float64(rss)/1024)
		}
		if enqs, _ := pick(size, "enqueue"); len(enqs) > 0 && size == 1000000 {
			var enq []result
			for _, rs := range enqs {
				enq = append(enq, rs...)
			}
			s := median(enq, func(r result) float64 { return r.Wall.Seconds() })
			fmt.Fprintf(p.w, "  enqueue of 1M: %.2f s, target < 10: %s\n", s, verdict(s < 10))
		}
	}
	p.dkimLine()
	p.listmonkLines()
}

// dkimLine compares the CPU per message of the runs signed with DKIM
// (variant dkim) with the same runs unsigned, at each size measured.
func (p *report) dkimLine() {
	byVariant := map[string]map[int][]result{}
	for _, r := range p.runs {
		if r.Kind != "newsletter" || r.Delay != 0 || (r.Variant != "" && r.Variant != "dkim") {
			continue
		}
		if byVariant[r.Variant] == nil {
			byVariant[r.Variant] = map[int][]result{}
		}
		byVariant[r.Variant][r.Size] = append(byVariant[r.Variant][r.Size], r)
	}
	if len(byVariant["dkim"]) == 0 {
		fmt.Fprintf(p.w, "  DKIM: not measured in this run (-dkim compares signing and not signing)\n")
		return
	}
	for size, signed := range byVariant["dkim"] {
		plain := byVariant[""][size]
		if len(plain) == 0 {
			continue
		}
		cpu := func(rs []result) float64 { return median(rs, func(r result) float64 { return r.totalUS() }) }
		client := func(rs []result) float64 { return median(rs, func(r result) float64 { return r.clientUS() }) }
		rate := func(rs []result) float64 { return median(rs, func(r result) float64 { return r.rate() }) }
		fmt.Fprintf(p.w, "  DKIM (RSA-2048) at %d: %s µs/msg newsletter+postgres signed, %s unsigned (newsletter alone %s vs %s); %.0f vs %.0f msgs/s\n",
			size, us(cpu(signed)), us(cpu(plain)), us(client(signed)), us(client(plain)), rate(signed), rate(plain))
	}
}

func median(rs []result, f func(result) float64) float64 {
	vals := make([]float64, len(rs))
	for i, r := range rs {
		vals[i] = f(r)
	}
	return medianOf(vals)
}

func medianOf(vals []float64) float64 {
	if len(vals) == 0 {
		return 0
	}
	v := slices.Clone(vals)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func us(v float64) string { return fmt.Sprintf("%.0f", v) }

func round(v float64, places int) float64 {
	f, _ := strconv.ParseFloat(strconv.FormatFloat(v, 'f', places, 64), 64)
	return f
}

func formatCounts(m map[string]int64) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	if len(parts) == 0 {
		return "no deliveries"
	}
	return strings.Join(parts, " ")
}

var selfRate = regexp.MustCompile(`\(([0-9.]+ msgs/s)\)`)

// selfReported is the rate `newsletter send` printed, measured from after
// its start-up, which the harness's wall time includes.
func selfReported(stdout string) string {
	if m := selfRate.FindStringSubmatch(stdout); m != nil {
		return m[1]
	}
	return ""
}

func parseBaselineReport(stdout string) (baselineReport, error) {
	var rep baselineReport
	if err := json.Unmarshal([]byte(strings.TrimSpace(stdout)), &rep); err != nil {
		return rep, fmt.Errorf("baseline report %q: %w", stdout, err)
	}
	return rep, nil
}

func openAdmin(u string) (*sqlx.DB, error) {
	return sqlx.Open("postgres", u)
}
