package demo

import (
	"bufio"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"newsletter/internal/pgtest"
	"newsletter/internal/smtptest"
)

// confirmed counts the demo subscribers who must receive the edition.
func confirmed(t *testing.T) int {
	t.Helper()
	f, err := os.Open("../../demo/subscribers.csv")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if strings.HasSuffix(strings.TrimSpace(sc.Text()), ",confirmed") {
			n++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("no confirmed subscriber in demo/subscribers.csv")
	}
	return n
}

// demoEnv is the environment of a user with nothing configured, the demo's
// state and binaries in folders of the test, and extra on top. A
// DATABASE_URL the tests are given (CI's server) becomes a fresh database
// of its own; without one the demo starts its own PostgreSQL, as on a
// fresh clone.
func demoEnv(t *testing.T, extra ...string) (env []string, state string) {
	t.Helper()
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if name == "DATABASE_URL" || name == "SMTP_URL" || strings.HasPrefix(name, "NEWSLETTER_") || strings.HasPrefix(name, "DEMO_") {
			continue
		}
		env = append(env, kv)
	}
	if os.Getenv("DATABASE_URL") != "" {
		env = append(env, "DATABASE_URL="+pgtest.NewURL(t))
	}
	dir := t.TempDir()
	state = filepath.Join(dir, "state")
	env = append(env, "DEMO_DIR="+state, "DEMO_BIN="+filepath.Join(dir, "bin"),
		// Installing Mailpit needs the network and minutes; the catcher's
		// .eml folder is what the test counts.
		"DEMO_MAILPIT=0")
	return append(env, extra...), state
}

// runDemo runs scripts/demo.sh and, when the test ends, demo-stop, which
// stops what the demo leaves running (newsletter serve, the catcher, its
// PostgreSQL) whatever happened.
func runDemo(t *testing.T, env []string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("go"); err != nil {
		t.Fatalf("the demo builds with go, which is not on PATH: %v", err)
	}
	t.Cleanup(func() {
		stop := exec.Command("bash", "scripts/demo.sh", "stop")
		stop.Dir, stop.Env = "../..", env
		if out, err := stop.CombinedOutput(); err != nil {
			t.Errorf("demo stop: %v\n%s", err, out)
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "scripts/demo.sh")
	cmd.Dir, cmd.Env = "../..", env
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func countEML(t *testing.T, dir string) int {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
	if err != nil {
		t.Fatal(err)
	}
	return len(files)
}

// TestDemoWithReadablePortsTaken: something already listens on 8025 (the
// user's own Mailpit) and 8080; the demo picks other ports and every demo
// subscriber gets the edition.
func TestDemoWithReadablePortsTaken(t *testing.T) {
	for _, port := range []string{"8025", "8080"} {
		ln, err := net.Listen("tcp", "127.0.0.1:"+port)
		if err != nil {
			// Something real holds it: the condition under test too.
			t.Logf("127.0.0.1:%s is already taken: %v", port, err)
			continue
		}
		t.Cleanup(func() { ln.Close() })
	}
	env, state := demoEnv(t)
	out, err := runDemo(t, env)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	want := confirmed(t)
	if got := countEML(t, filepath.Join(state, "mail")); got != want {
		t.Errorf("the catcher stored %d .eml files, want %d\n%s", got, want, out)
	}
	m := regexp.MustCompile(`newsletter serve on 127\.0\.0\.1:(\d+)`).FindStringSubmatch(out)
	if m == nil || m[1] == "8080" {
		t.Errorf("newsletter serve's port: %v, want a free one other than 8080\n%s", m, out)
	}
	if !strings.Contains(out, "Done: all ") {
		t.Errorf("the demo did not say it is done\n%s", out)
	}
}

// TestDemoFailsWhenNotAllDelivered: a relay that refuses one demo
// subscriber makes the demo exit non-zero with the count on one line,
// instead of "Done".
func TestDemoFailsWhenNotAllDelivered(t *testing.T) {
	relay := smtptest.Start(t, smtptest.WithDiscard())
	relay.RejectRcpt("ada@example.com", 550, "5.1.1", "no such user")
	env, _ := demoEnv(t, "SMTP_URL=smtp://"+relay.Addr()+"?tls=none")
	out, err := runDemo(t, env)
	if err == nil {
		t.Fatalf("the demo exited 0 with a subscriber refused\n%s", out)
	}
	want := confirmed(t)
	line := regexp.MustCompile(`(?m)^demo failed: (\d+) of (\d+) demo subscribers received the edition.*$`).FindStringSubmatch(out)
	if line == nil {
		t.Fatalf("no one-line reason in the output\n%s", out)
	}
	t.Log(line[0])
	if line[1] != strconv.Itoa(want-1) || line[2] != strconv.Itoa(want) {
		t.Errorf("reason %q, want %d of %d", line[0], want-1, want)
	}
	if strings.Contains(out, "Done") {
		t.Errorf("the demo said Done\n%s", out)
	}
	if got := relay.Accepted(); got != want-1 {
		t.Errorf("the relay accepted %d, want %d", got, want-1)
	}
}
