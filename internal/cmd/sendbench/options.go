package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

type options struct {
	sizes         []int
	conns         []int
	variants      variants
	dkim          bool
	baselineConns int
	repeat        int
	repeatMaxN    int
	delay         time.Duration
	delayN        []int
	delayConns    []int
	delayLimit    time.Duration
	delayRepeat   int
	listmonk      string
	limit         time.Duration
	baselineLimit time.Duration
	keepDB        bool
	perf          bool
	trace         bool
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
	fs.Var(&o.variants, "variant", "a newsletter configuration to compare, as name:VAR=value,VAR=value (e.g. batch100:NEWSLETTER_BATCH=100); repeatable; each runs at every -conns. Default: one, the binary's defaults")
	fs.IntVar(&o.baselineConns, "baseline-conns", 2, "connections of the pipelined baseline client")
	fs.IntVar(&o.repeat, "repeat", 2, "rounds per size; each round runs every configuration once, in a rotated order")
	fs.IntVar(&o.repeatMaxN, "repeat-max-n", 100000, "sizes above this run one round only, to keep make bench short (0: no cap)")
	fs.DurationVar(&o.delay, "delay", 20*time.Millisecond, "reply delay of the far-relay runs (a delaying proxy in front of the sink); 0 skips them")
	delayN := fs.String("delay-n", "10000", "subscriber counts of the far-relay runs, comma-separated")
	delayConns := fs.String("delay-conns", "2,32", "connections to try in the far-relay runs, comma-separated")
	fs.DurationVar(&o.delayLimit, "delay-limit", 20*time.Second, "stop a far-relay run (SIGINT, a graceful stop) after this long and rate what was sent; 0: no limit")
	fs.IntVar(&o.delayRepeat, "delay-repeat", 1, "rounds of the far-relay runs per size")
	fs.StringVar(&o.listmonk, "listmonk", "", "a listmonk binary (built from github.com/knadh/listmonk, see scripts/bench.sh): each far-relay run of the newsletter is followed by listmonk sending the same edition to the same readers through the same delayed relay, at as many connections and workers")
	fs.DurationVar(&o.limit, "limit", 0, "stop a newsletter run (SIGINT, a graceful stop: results recorded, leases handed back) after this long and rate what was sent; 0: no limit")
	fs.DurationVar(&o.baselineLimit, "baseline-limit", 30*time.Second, "stop a baseline run after this long (its rate is steady within seconds); 0: no limit")
	fs.BoolVar(&o.keepDB, "keep-db", false, "keep the databases (and the throwaway cluster, whose URL is printed) when done")
	fs.BoolVar(&o.perf, "perf", false, "record each newsletter send with perf record -g into the work folder, for perf report (its overhead lands in client_us, and rss_MB is perf's)")
	fs.BoolVar(&o.trace, "trace", false, "in the far-relay runs, time each connection's messages at the proxy and add to the check column when the connections started and stopped sending and their time per message (the proxy then copies what the client writes instead of splicing it: more sink_us)")
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
	if o.delayN, err = intList("-delay-n", *delayN); err != nil {
		return nil, err
	}
	if len(o.variants) == 0 {
		o.variants = variants{{}}
	}
	if o.repeat < 1 || o.baselineConns < 1 || o.delayRepeat < 1 {
		return nil, fmt.Errorf("-repeat, -delay-repeat and -baseline-conns must be at least 1")
	}
	return o, nil
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
// environment it adds (NEWSLETTER_BATCH=100, NEWSLETTER_MAX_ATTEMPTS=3...).
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
