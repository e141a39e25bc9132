package main

import (
	"bufio"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/web"
)

// The README's configuration table is the settings table: the same
// variables, flags and defaults.
func TestREADMEConfigurationTable(t *testing.T) {
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(data)
	start := strings.Index(section, "### Configuration\n")
	if start < 0 {
		t.Fatal("README.md has no ### Configuration section")
	}
	section = section[start+len("### Configuration\n"):]
	if end := strings.Index(section, "\n#"); end >= 0 {
		section = section[:end]
	}
	type row struct{ flag, def string }
	readme := map[string]row{}
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cells := strings.Split(strings.ReplaceAll(line, `\|`, ""), "|")
		if len(cells) != 6 {
			t.Fatalf("README row %q: want | variable | flag | default | meaning |", line)
		}
		cell := func(i int) string { return strings.Trim(strings.TrimSpace(cells[i]), "`") }
		readme[cell(1)] = row{flag: cell(2), def: cell(3)}
	}
	for _, s := range settings {
		r, ok := readme[s.env]
		if !ok {
			t.Errorf("%s is a setting but not in the README's configuration table", s.env)
			continue
		}
		delete(readme, s.env)
		flag, def := "", s.def
		if s.flag != "" {
			flag = "--" + s.flag
		}
		if s.required != "" {
			def = "required"
		}
		if r.flag != flag || r.def != def {
			t.Errorf("%s: the README says flag %q, default %q; the settings table %q, %q", s.env, r.flag, r.def, flag, def)
		}
	}
	for name := range readme {
		t.Errorf("the README's configuration table has %s, which is not a setting", name)
	}
}

// The environment is read in one place, loadSettings: every variable the
// program reads is a row of the table.
func TestEnvironmentReadOnlyThroughTheTable(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			fn, ok := n.(*ast.FuncDecl)
			if ok && fn.Name.Name == "loadSettings" && name == "settings.go" {
				return false
			}
			sel, ok := n.(*ast.SelectorExpr)
			if !ok {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "os" && slices.Contains([]string{"Getenv", "LookupEnv", "Environ", "ExpandEnv"}, sel.Sel.Name) {
				t.Errorf("%s: os.%s outside loadSettings: make the variable a row of the settings table", fset.Position(sel.Pos()), sel.Sel.Name)
			}
			return true
		})
	}
}

func TestSettingsTable(t *testing.T) {
	envs, flags := map[string]bool{}, map[string]bool{}
	for _, s := range settings {
		if envs[s.env] || (s.flag != "" && flags[s.flag]) {
			t.Errorf("%s / --%s is in the table twice", s.env, s.flag)
		}
		envs[s.env], flags[s.flag] = true, true
		if s.help == "" || strings.Contains(s.help, "`") {
			t.Errorf("%s: help %q must be there, and without backquotes (the flag package reads them as the value's name)", s.env, s.help)
		}
		for _, c := range s.cmds {
			if commands[c] == nil {
				t.Errorf("%s is read by %q, which is not a subcommand", s.env, c)
			}
		}
		if s.required != "" && s.def != "" {
			t.Errorf("%s is required and has a default", s.env)
		}
	}
	if s := settingsFor("send")[slices.IndexFunc(settingsFor("send"), func(s *setting) bool { return s.env == "NEWSLETTER_SECRET" })]; s.flag != "" || !s.secret {
		t.Error("NEWSLETTER_SECRET must be secret and have no flag: a flag shows in ps")
	}
}

// A flag given wins over the variable, which wins over the default; an
// error names the flag when the value came from it.
func TestSettingsPrecedence(t *testing.T) {
	t.Setenv("DATABASE_URL", "postgres://localhost/x")
	t.Setenv("NEWSLETTER_LOG_FORMAT", "")
	level := func(env string, given flagValues) slog.Level {
		t.Helper()
		t.Setenv("NEWSLETTER_LOG_LEVEL", env)
		c, err := loadSettings("migrate", given)
		if err != nil {
			t.Fatal(err)
		}
		return c.logLevel
	}
	if l := level("", nil); l != slog.LevelInfo {
		t.Errorf("default: %v, want info", l)
	}
	if l := level("warn", nil); l != slog.LevelWarn {
		t.Errorf("from the environment: %v, want warn", l)
	}
	if l := level("warn", flagValues{"NEWSLETTER_LOG_LEVEL": "debug"}); l != slog.LevelDebug {
		t.Errorf("flag and environment: %v, want the flag's debug", l)
	}
	_, err := loadSettings("migrate", flagValues{"NEWSLETTER_LOG_LEVEL": "loud"})
	if err == nil || !strings.Contains(err.Error(), "--log-level (NEWSLETTER_LOG_LEVEL)") {
		t.Errorf("a bad flag value: %v; want the flag and its variable named", err)
	}
}

// -h prints the usage once; its flag lines are flags, variables and
// defaults, with no stray value names; it lists exactly the settings the
// subcommand reads; it never prints a value from the environment.
func TestHelpOfEverySubcommand(t *testing.T) {
	h := newHarness(t)
	t.Setenv("SMTP_URL", "smtp://user:hunter2pw@example.com")
	flagLine := regexp.MustCompile(`^  (--[a-z-]+(, )?)?([A-Z_]+)?( \([^()]*\))?$`)
	for name := range commands {
		args := append(strings.Fields(name), "-h")
		code, out, errs := h.run(args...)
		if code != 0 || errs != "" {
			t.Errorf("%s -h: exit %d, stderr %q", name, code, errs)
		}
		if n := strings.Count(out, "Usage:"); n != 1 {
			t.Errorf("%s -h prints its usage %d times, want once:\n%s", name, n, out)
		}
		if strings.Contains(out, "hunter2pw") {
			t.Errorf("%s -h shows the SMTP password", name)
		}
		var listed []string
		_, opts, _ := strings.Cut(out, "\n\n")
		if k := strings.Index(opts, "\nFlags:\n"); k >= 0 {
			opts = opts[k:]
		} else if k := strings.Index(opts, "\nSettings"); k >= 0 {
			opts = opts[k:]
		} else {
			opts = ""
		}
		for _, line := range strings.Split(opts, "\n") {
			if !strings.HasPrefix(line, "  ") || strings.HasPrefix(line, "   ") {
				continue
			}
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				t.Errorf("%s -h: flag line %q has stray words", name, line)
				continue
			}
			if m[3] != "" {
				listed = append(listed, m[3])
			}
		}
		var want []string
		for _, s := range settingsFor(name) {
			want = append(want, s.env)
		}
		if !slices.Equal(listed, want) {
			t.Errorf("%s -h lists the settings %v, want the ones it reads: %v", name, listed, want)
		}
	}
}

func TestMistypedFlagIsOneLine(t *testing.T) {
	h := newHarness(t)
	code, out, errs := h.run("send", "--dates", "2025-11-13")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing on stdout", code, out)
	}
	if strings.Count(strings.TrimSpace(errs), "\n") != 0 || !strings.Contains(errs, "-dates") || !strings.Contains(errs, "run `newsletter send -h`") {
		t.Fatalf("stderr %q: want one line naming the flag and saying to run `newsletter send -h`", errs)
	}
}

// Secret values never appear in an error, whatever is wrong with them.
func TestSecretSettingsNeverPrinted(t *testing.T) {
	h := newHarness(t)
	bad := map[string]string{
		"DATABASE_URL":      "mysql://user:hunter2pw@localhost/x",
		"SMTP_URL":          "smtp://user:hunter2pw@host/path",
		"NEWSLETTER_SECRET": "hunter2pw",
		// bad: no host; too short a password; too short a key
		"NEWSLETTER_BOUNCE_IMAP":           "imaps://user:hunter2pw@/INBOX",
		"NEWSLETTER_WEBHOOK_POSTMARK_AUTH": "user:hunter2pw",
		"NEWSLETTER_WEBHOOK_MAILGUN_KEY":   "hunter2pw",
	}
	// The command that reads each, when send does not.
	reader := map[string][]string{
		"NEWSLETTER_BOUNCE_IMAP":           {"bounces", "imap"},
		"NEWSLETTER_WEBHOOK_POSTMARK_AUTH": {"serve"},
		"NEWSLETTER_WEBHOOK_MAILGUN_KEY":   {"serve"},
	}
	for _, s := range settings {
		if !s.secret {
			continue
		}
		v, ok := bad[s.env]
		if !ok {
			t.Errorf("secret %s has no bad value in this test", s.env)
			continue
		}
		t.Run(s.env, func(t *testing.T) {
			t.Setenv(s.env, v)
			args, ok := reader[s.env]
			if !ok {
				args = []string{"send", "--date", "2025-11-13"}
			}
			code, out, errs := h.run(args...)
			if code == 0 || !strings.Contains(errs, s.env) {
				t.Fatalf("exit %d, %q: want an error naming %s", code, errs, s.env)
			}
			if strings.Contains(out+errs, "hunter2pw") {
				t.Fatalf("the error shows the secret: %q", errs)
			}
		})
	}
}

func TestLogLevelAndFormat(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	for _, tc := range []struct{ env, value string }{
		{"NEWSLETTER_LOG_LEVEL", "loud"},
		{"NEWSLETTER_LOG_FORMAT", "xml"},
	} {
		t.Run(tc.env, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			code, _, errs := h.run("status")
			if code == 0 || !strings.Contains(errs, tc.env) || !strings.Contains(errs, tc.value) {
				t.Fatalf("%s=%s: exit %d, %q; want it refused, naming the variable", tc.env, tc.value, code, errs)
			}
		})
	}
	t.Setenv("NEWSLETTER_LOG_FORMAT", "json")
	_, _, errs := h.run("edition", "import", seedPath)
	sc := bufio.NewScanner(strings.NewReader(errs))
	var msgs []string
	for sc.Scan() {
		var rec struct{ Msg, Level string }
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("NEWSLETTER_LOG_FORMAT=json: a log line that is not JSON: %q", sc.Text())
		}
		msgs = append(msgs, rec.Msg)
	}
	if !slices.Contains(msgs, "imported edition") {
		t.Fatalf("json log: %v, want the import's line", msgs)
	}
	t.Setenv("NEWSLETTER_LOG_LEVEL", "warn")
	if _, _, errs := h.run("edition", "import", seedPath); strings.Contains(errs, "edition") {
		t.Fatalf("NEWSLETTER_LOG_LEVEL=warn still logs at info: %q", errs)
	}
}

// Database errors say what PostgreSQL said, without the driver's position
// and code, and what to do when the server has no SSL.
func TestDatabaseErrorsAreReadable(t *testing.T) {
	h := newHarness(t)
	if _, err := h.db.Exec(`DROP TABLE schema_migrations`); err != nil {
		t.Fatal(err)
	}
	code, _, errs := h.run("status")
	if code == 0 || !strings.Contains(errs, "run `newsletter migrate` first") || strings.Contains(errs, "42P01") || strings.Contains(errs, "pq:") {
		t.Fatalf("unmigrated database: exit %d, %q; want the advice without the driver's noise", code, errs)
	}

	_, err := h.db.Exec(`SELECT nothing FROM no_such_table`)
	if err == nil {
		t.Fatal("the query succeeded")
	}
	if got := describe(err); got != `relation "no_such_table" does not exist` {
		t.Fatalf("describe(%q) = %q; want PostgreSQL's message alone", err, got)
	}

	u, err := url.Parse(os.Getenv("DATABASE_URL"))
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("sslmode", "require") // the test cluster has SSL off
	u.RawQuery = q.Encode()
	t.Setenv("DATABASE_URL", u.String())
	code, _, errs = h.run("status")
	if code == 0 || !strings.Contains(errs, "change sslmode in DATABASE_URL") || strings.Contains(errs, "pq:") {
		t.Fatalf("sslmode=require on a server without SSL: exit %d, %q; want the sslmode hint", code, errs)
	}
}

// The sender's domain ends every Message-ID: one without a dot is refused,
// as a subscriber's is.
func TestFromWithoutDottedDomainRefused(t *testing.T) {
	h := newHarness(t)
	t.Setenv("NEWSLETTER_FROM", "London Daily <newsletter@localhost>")
	code, _, errs := h.run("preview")
	if code == 0 || !strings.Contains(errs, "NEWSLETTER_FROM") || !strings.Contains(errs, "no dot") {
		t.Fatalf("exit %d, %q; want NEWSLETTER_FROM refused for its domain", code, errs)
	}
}

// The pool is sized once, from what the process runs: the reader pages'
// connections, plus two per SMTP connection and three when a worker runs.
func TestPoolSizedFromWhatTheProcessRuns(t *testing.T) {
	for _, tc := range []struct {
		name   string
		serves bool
		conns  int
		want   pool
	}{
		{"serve", true, 0, pool{web.DBPoolSize, web.DBPoolSize, 5 * time.Minute}},
		{"serve --worker --conns 32", true, 32, pool{web.DBPoolSize + 67, web.DBPoolSize + 67, 5 * time.Minute}},
		{"send --conns 2", false, 2, pool{0, 7, 0}},
	} {
		if got := poolFor(tc.serves, tc.conns); got != tc.want {
			t.Errorf("%s: pool %+v, want %+v", tc.name, got, tc.want)
		}
	}

	// The app applies it: serve --worker with 32 SMTP connections is not
	// held to the reader pages' 16.
	newHarness(t) // the environment of a working installation
	t.Setenv("NEWSLETTER_SERVE_WORKER", "1")
	t.Setenv("NEWSLETTER_SMTP_CONNS", "32")
	cfg, err := loadSettings("serve", nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := newApp(t.Context(), "serve", serveCommand.needs, cfg, os.Stdout, os.Stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	if n := a.db.Stats().MaxOpenConnections; n != web.DBPoolSize+67 {
		t.Fatalf("serve --worker --conns 32: %d connections at most, want %d", n, web.DBPoolSize+67)
	}
}

// NEWSLETTER_RETENTION takes months or days, or 0 for forever, and refuses
// anything else saying what to set.
func TestRetentionSetting(t *testing.T) {
	for v, want := range map[string]delivery.Retention{
		"13mo": {Months: 13}, "400d": {Days: 400}, "0": {}, " 1mo ": {Months: 1},
	} {
		var c config
		if err := parseRetention(&c, "NEWSLETTER_RETENTION", v); err != nil || c.retention != want {
			t.Errorf("%q: %+v, %v; want %+v", v, c.retention, err, want)
		}
	}
	for _, v := range []string{"", "13", "13m", "13months", "-1mo", "0mo", "7d", "1y", "abcmo", "99999d"} {
		var c config
		err := parseRetention(&c, "NEWSLETTER_RETENTION", v)
		if err == nil || !strings.Contains(err.Error(), "NEWSLETTER_RETENTION") || !strings.Contains(err.Error(), "0") {
			t.Errorf("%q: %v; want a refusal naming the setting and what to set", v, err)
		}
	}
}
