package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/mail"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/internal/pgtest"
)

// listmonkRate is listmonk's app.message_rate, which limits each of its
// workers, not the whole send. Behind the delayed relay one connection sends
// at most 48 msgs/s (fewer without pipelining), so 100 never paces the send.
// It is not set higher because listmonk sizes its queue of rendered messages
// as concurrency × message_rate × 2 and fills it: at 1000 and 32 workers,
// 64,000 copies of the edition took 6.4 GB at 100,000 readers.
const listmonkRate = 100

// listmonkBench is listmonk installed in a database of its own on the
// bench's server, with the same n readers confirmed on one list and the same
// edition to send: the comparison of issue 11.
type listmonkBench struct {
	bin     string
	n       int
	db      *sqlx.DB
	dir     string // config.toml and logs
	addr    string // its HTTP address
	auth    string // Authorization header of its API user
	listID  int
	tplID   int // a campaign template that is the body alone
	subject string
	html    string
	text    string
}

// prepareListmonk creates the database listmonk_<n>, writes listmonk's
// config.toml, installs its schema with `listmonk --install` (which creates
// an API user and prints its token), loads n confirmed readers into one list
// with SQL, and takes the edition's subject, HTML and text from the
// newsletter's own rendering of it (eml, the message the baseline sends).
func (h *harness) prepareListmonk(ctx context.Context, b *bench) (*listmonkBench, error) {
	name := fmt.Sprintf("listmonk_%d", b.n)
	admin, err := openAdmin(h.srv.adminURL)
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	for _, q := range []string{`DROP DATABASE IF EXISTS ` + name, `CREATE DATABASE ` + name} {
		if _, err := admin.ExecContext(ctx, q); err != nil {
			return nil, fmt.Errorf("listmonk: %s: %w", q, err)
		}
	}
	port, err := pgtest.FreePort()
	if err != nil {
		return nil, err
	}
	lm := &listmonkBench{bin: h.o.listmonk, n: b.n, dir: filepath.Join(h.work, name), addr: "127.0.0.1:" + strconv.Itoa(port)}
	if err := os.MkdirAll(lm.dir, 0o755); err != nil {
		return nil, fmt.Errorf("listmonk folder: %w", err)
	}
	dbURL := pgtest.DatabaseURL(h.srv.adminURL, name)
	if err := lm.writeConfig(dbURL); err != nil {
		return nil, err
	}
	if err := lm.install(ctx); err != nil {
		return nil, err
	}
	if lm.db, err = sqlx.Open("postgres", dbURL); err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if err := lm.loadReaders(ctx); err != nil {
		lm.db.Close()
		return nil, err
	}
	if lm.subject, lm.html, lm.text, err = h.editionParts(ctx, b); err != nil {
		lm.db.Close()
		return nil, err
	}
	return lm, nil
}

func (lm *listmonkBench) writeConfig(dbURL string) error {
	u, err := url.Parse(dbURL)
	if err != nil {
		return fmt.Errorf("listmonk config: %w", err)
	}
	pass, _ := u.User.Password()
	port := u.Port()
	if port == "" {
		port = "5432"
	}
	conf := fmt.Sprintf(`[app]
address = %q

[db]
host = %q
port = %s
user = %q
password = %q
database = %q
ssl_mode = "disable"
max_open = 25
max_idle = 25
max_lifetime = "300s"
params = ""
`, lm.addr, u.Hostname(), port, u.User.Username(), pass, u.Path[1:])
	return os.WriteFile(filepath.Join(lm.dir, "config.toml"), []byte(conf), 0o600)
}

var apiToken = regexp.MustCompile(`LISTMONK_ADMIN_API_TOKEN="([^"]+)"`)

func (lm *listmonkBench) install(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, lm.bin, "--config", "config.toml", "--install", "--yes")
	cmd.Dir = lm.dir
	cmd.Env = append(os.Environ(), "LISTMONK_ADMIN_USER=bench", "LISTMONK_ADMIN_PASSWORD=bench-password", "LISTMONK_ADMIN_API_USER=benchapi")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("listmonk --install: %w: %s", err, out)
	}
	m := apiToken.FindSubmatch(out)
	if m == nil {
		return fmt.Errorf("listmonk --install printed no API token: %s", out)
	}
	lm.auth = "token benchapi:" + string(m[1])
	return nil
}

// loadReaders puts n readers, the addresses the newsletter's runs send to,
// on one list, confirmed: straight SQL, as for the newsletter's own table.
func (lm *listmonkBench) loadReaders(ctx context.Context) error {
	start := time.Now()
	if err := lm.db.GetContext(ctx, &lm.listID, `
		INSERT INTO lists (uuid, name, type, optin) VALUES (gen_random_uuid(), 'bench', 'private', 'single') RETURNING id`); err != nil {
		return fmt.Errorf("listmonk: create the list: %w", err)
	}
	// The same addresses as the newsletter's readers; the list holds them
	// alone (not the sample subscribers the installer adds).
	if _, err := lm.db.ExecContext(ctx, `
		WITH s AS (
			INSERT INTO subscribers (uuid, email, name, status)
			SELECT gen_random_uuid(), 'reader' || g || '@example.com', 'Reader ' || g, 'enabled'
			FROM generate_series(1, $1) g
			RETURNING id)
		INSERT INTO subscriber_lists (subscriber_id, list_id, status)
		SELECT id, $2, 'confirmed' FROM s`, lm.n, lm.listID); err != nil {
		return fmt.Errorf("listmonk: load %d readers: %w", lm.n, err)
	}
	if _, err := lm.db.ExecContext(ctx, `VACUUM ANALYZE`); err != nil {
		return fmt.Errorf("listmonk: vacuum: %w", err)
	}
	fmt.Fprintf(os.Stderr, "sendbench: listmonk_%d: loaded %d subscribers in %s\n", lm.n, lm.n, time.Since(start).Round(time.Millisecond))
	return nil
}

// editionParts is the edition as the newsletter renders it: the subject of
// its message, its HTML and its text.
func (h *harness) editionParts(ctx context.Context, b *bench) (subject, html, text string, err error) {
	eml, err := os.Open(h.eml)
	if err != nil {
		return "", "", "", fmt.Errorf("edition message: %w", err)
	}
	defer eml.Close()
	msg, err := mail.ReadMessage(eml)
	if err != nil {
		return "", "", "", fmt.Errorf("edition message: %w", err)
	}
	if subject, err = new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject")); err != nil {
		return "", "", "", fmt.Errorf("edition subject: %w", err)
	}
	parts := map[string]string{}
	for _, format := range []string{"html", "text"} {
		file := filepath.Join(h.work, "edition."+format)
		if out, err := h.nl.run(ctx, b.url, "preview", "--date", b.date, "--format", format, "--out", file); err != nil {
			return "", "", "", fmt.Errorf("newsletter preview --format %s: %w: %s", format, err, out)
		}
		body, err := os.ReadFile(file)
		if err != nil {
			return "", "", "", fmt.Errorf("edition %s: %w", format, err)
		}
		parts[format] = string(body)
	}
	return subject, parts["html"], parts["text"], nil
}

// configure points listmonk at the relay with as many connections and
// workers as the newsletter's run: its settings live in its database and
// are read when it starts.
func (lm *listmonkBench) configure(ctx context.Context, relay string, conns int) error {
	host, portStr, err := net.SplitHostPort(relay)
	if err != nil {
		return fmt.Errorf("relay address: %w", err)
	}
	port, _ := strconv.Atoi(portStr)
	smtp, _ := json.Marshal([]map[string]any{{
		"enabled": true, "host": host, "port": port, "auth_protocol": "none", "username": "", "password": "",
		"hello_hostname": "", "max_conns": conns, "idle_timeout": "15s", "wait_timeout": "5s",
		"max_msg_retries": 2, "msg_retry_delay": "10ms", "tls_type": "none", "tls_skip_verify": false,
		"email_headers": []any{}, "from_addresses": []any{},
	}})
	settings := map[string]string{
		"smtp":              string(smtp),
		"app.concurrency":   strconv.Itoa(conns),
		"app.message_rate":  strconv.Itoa(listmonkRate),
		"app.check_updates": "false",
		"app.from_email":    `"London Daily <newsletter@example.com>"`,
		"app.root_url":      `"https://news.example.com"`,
	}
	for k, v := range settings {
		if _, err := lm.db.ExecContext(ctx, `UPDATE settings SET value = $2 WHERE key = $1`, k, v); err != nil {
			return fmt.Errorf("listmonk setting %s: %w", k, err)
		}
	}
	// As before each newsletter run: no run pays for the clean-up of the
	// one before it.
	for _, q := range []string{`VACUUM ANALYZE`, `CHECKPOINT`} {
		if _, err := lm.db.ExecContext(ctx, q); err != nil {
			return fmt.Errorf("listmonk: settle: %s: %w", q, err)
		}
	}
	return nil
}

func (lm *listmonkBench) close() {
	if lm.db != nil {
		lm.db.Close()
	}
}

// api calls listmonk's HTTP API as its API user and decodes {"data": ...}
// into out.
func (lm *listmonkBench) api(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+lm.addr+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", lm.auth)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("listmonk %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("listmonk %s %s: %s: %s", method, path, resp.Status, data)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, &struct{ Data any }{out}); err != nil {
		return fmt.Errorf("listmonk %s %s: %w: %s", method, path, err, data)
	}
	return nil
}

// startCampaign waits for listmonk's API, creates the campaign (the
// edition, to the list, through a template that adds nothing) and starts
// it.
func (lm *listmonkBench) startCampaign(ctx context.Context, exited <-chan struct{}) (int, error) {
	for {
		if lm.api(ctx, http.MethodGet, "/api/health", nil, nil) == nil {
			break
		}
		select {
		case <-exited:
			return 0, fmt.Errorf("listmonk exited before answering")
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	var created struct{ ID int }
	if lm.tplID == 0 {
		tpl := map[string]any{"name": "bench", "type": "campaign", "body": `{{ template "content" . }}`}
		if err := lm.api(ctx, http.MethodPost, "/api/templates", tpl, &created); err != nil {
			return 0, err
		}
		lm.tplID = created.ID
	}
	camp := map[string]any{
		"name": "bench " + time.Now().Format(time.RFC3339Nano), "subject": lm.subject, "lists": []int{lm.listID},
		"from_email": "London Daily <newsletter@example.com>", "content_type": "html", "body": lm.html, "altbody": lm.text,
		"messenger": "email", "type": "regular", "template_id": lm.tplID,
	}
	if err := lm.api(ctx, http.MethodPost, "/api/campaigns", camp, &created); err != nil {
		return 0, err
	}
	path := "/api/campaigns/" + strconv.Itoa(created.ID) + "/status"
	return created.ID, lm.api(ctx, http.MethodPut, path, map[string]string{"status": "running"}, nil)
}

// campaignState is the campaign's row as listmonk keeps it.
type campaignState struct {
	Status    string     `db:"status"`
	Sent      int64      `db:"sent"`
	StartedAt *time.Time `db:"started_at"`
	UpdatedAt time.Time  `db:"updated_at"`
}

func (s campaignState) done() bool {
	return s.Status == "finished" || s.Status == "cancelled" || s.Status == "paused"
}

// listmonkSend runs listmonk once: from its start (as `newsletter send` is
// timed from its start) through its campaign's creation and start to the
// moment the campaign is finished, polled in its database every 50 ms. CPU
// is listmonk's and PostgreSQL's over that span; enq_s is the time until
// listmonk began sending (its start, and the wait for its campaign scan).
func (h *harness) listmonkSend(ctx context.Context, lm *listmonkBench, conns int, proxy *delayProxy, limit time.Duration) (result, error) {
	r := result{Size: lm.n, Kind: "listmonk", Conns: conns, Delay: h.o.delay, Connections: -1, pgKnown: h.srv.postmaster != 0}
	if err := lm.configure(ctx, proxy.addr, conns); err != nil {
		return r, err
	}
	logf, err := h.logFile(fmt.Sprintf("listmonk-%d-c%d", lm.n, conns))
	if err != nil {
		return r, err
	}
	defer logf.Close()
	proxy.resetCount()
	before, err := h.readServers()
	if err != nil {
		return r, err
	}
	cmd := exec.Command(lm.bin, "--config", "config.toml")
	cmd.Dir, cmd.Stdout, cmd.Stderr = lm.dir, logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return r, fmt.Errorf("start listmonk: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stopWatch := make(chan struct{})
	peakRSS := watchPeakRSS(cmd.Process.Pid, stopWatch)
	defer func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	id, err := lm.startCampaign(ctx, exited)
	if err != nil {
		close(stopWatch)
		return r, fmt.Errorf("listmonk campaign (n=%d, conns=%d): %w (log %s)", lm.n, conns, err, logf.Name())
	}
	st, err := lm.waitFinished(ctx, id, start, limit, exited)
	r.Wall = time.Since(start)
	r.ClientCPU, _ = processCPU(cmd.Process.Pid)
	close(stopWatch)
	r.MaxRSSKiB = <-peakRSS
	if err != nil {
		// A failed run of listmonk's, recorded as such: the bench goes on.
		r.Check = fmt.Sprintf("listmonk campaign %d: %v (log %s)", id, err, logf.Name())
		return r, nil
	}
	after, err := h.readServers()
	if err != nil {
		return r, err
	}
	r.PGCPU, r.SinkCPU = after.pg-before.pg, after.sink-before.sink
	r.Msgs, r.Connections = st.Sent, proxy.accepted.Load()
	r.Stopped = !st.done()
	r.OK = st.Status == "finished" && st.Sent == int64(lm.n) || r.Stopped
	r.Check = fmt.Sprintf("campaign %s, sent=%d", st.Status, st.Sent) + proxy.traced()
	if !r.OK {
		r.Check += fmt.Sprintf(" (want %d sent; log %s)", lm.n, logf.Name())
	}
	if st.StartedAt != nil {
		r.Enq = phase{seen: true, wall: st.StartedAt.Sub(start)}
		if d := st.UpdatedAt.Sub(*st.StartedAt); d > 0 && st.done() {
			r.Self = fmt.Sprintf("%.0f msgs/s", float64(st.Sent)/d.Seconds()) + " once sending"
		}
	}
	return r, nil
}

// waitFinished polls the campaign until it is done, the limit passes,
// listmonk exits or we are interrupted.
func (lm *listmonkBench) waitFinished(ctx context.Context, id int, start time.Time, limit time.Duration, exited <-chan struct{}) (campaignState, error) {
	var st campaignState
	for {
		if err := lm.db.GetContext(ctx, &st, `SELECT status, sent, started_at, updated_at FROM campaigns WHERE id = $1`, id); err != nil {
			return st, fmt.Errorf("poll: %w", err)
		}
		if st.done() || (limit > 0 && time.Since(start) >= limit) {
			return st, nil
		}
		select {
		case <-exited:
			return st, fmt.Errorf("listmonk exited while sending")
		case <-ctx.Done():
			return st, nil
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func (h *harness) dropListmonk(ctx context.Context, lm *listmonkBench) {
	lm.close()
	h.dropDatabase(ctx, fmt.Sprintf("listmonk_%d", lm.n))
}

// listmonkLines sets the newsletter's far-relay rate beside listmonk's at
// each size and connections both ran, both counted from start to finish,
// against issue 11's target (1.5 times listmonk's rate).
func (p *report) listmonkLines() {
	type key struct{ size, conns int }
	runs := map[key]map[string][]result{}
	var order []key
	for _, r := range p.runs {
		if r.Delay == 0 || (r.Kind != "listmonk" && (r.Kind != "newsletter" || r.Variant != "")) {
			continue
		}
		k := key{r.Size, r.Conns}
		if runs[k] == nil {
			runs[k] = map[string][]result{}
			order = append(order, k)
		}
		runs[k][r.Kind] = append(runs[k][r.Kind], r)
	}
	for _, k := range order {
		nl, lm := runs[k]["newsletter"], runs[k]["listmonk"]
		if len(nl) == 0 || len(lm) == 0 {
			continue
		}
		rate := func(rs []result) float64 { return median(rs, func(r result) float64 { return r.rate() }) }
		cpu := func(rs []result) float64 { return median(rs, func(r result) float64 { return r.totalUS() }) }
		v := rate(nl) / rate(lm)
		fmt.Fprintf(p.w, "  behind the relay at %d, %d connections: newsletter %.0f msgs/s, listmonk %.0f (start to finish), %.2f times, target >= 1.5 (10,000) or > 1 (100,000): %s; CPU µs/msg with PostgreSQL %s vs %s\n",
			k.size, k.conns, rate(nl), rate(lm), v, verdictOf(v >= 1.5 || (k.size > 10000 && v > 1)), us(cpu(nl)), us(cpu(lm)))
	}
}

func verdictOf(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}
