// Package pgtest gives each test a database of its own in a real PostgreSQL:
// the one DATABASE_URL names, or a throwaway cluster it starts with the
// machine's server binaries (initdb and pg_ctl, run as the postgres user when
// the tests run as root, since PostgreSQL refuses to run as root).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"newsletter/migrations"
)

var (
	mu       sync.Mutex
	adminURL string // a superuser connection to the server
	template string // a migrated database each test copies
	stop     func()
)

// Main runs a package's tests and stops the throwaway cluster, if one was
// started, when they end. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	mu.Lock()
	if stop != nil {
		stop()
	}
	mu.Unlock()
	os.Exit(code)
}

// New returns a connection to a fresh database with every migration applied,
// dropped when the test ends.
func New(t testing.TB) *sqlx.DB {
	t.Helper()
	db, err := sqlx.Open("postgres", NewURL(t))
	if err != nil {
		t.Fatalf("pgtest: open: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// NewURL creates a fresh migrated database and returns its connection URL,
// for tests that hand the URL to a process of their own.
func NewURL(t testing.TB) string {
	t.Helper()
	u, err := newDatabase(t.Name())
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Server returns the admin URL of the server the tests use, starting it if
// needed, for tests that must restart or inspect it.
func Server(t testing.TB) string {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if err := ensureServer(); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return adminURL
}

func newDatabase(testName string) (string, error) {
	mu.Lock()
	defer mu.Unlock()
	if err := ensureServer(); err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	admin, err := sqlx.Open("postgres", adminURL)
	if err != nil {
		return "", err
	}
	defer admin.Close()
	if template == "" {
		name := "nltpl_" + randomHex(6)
		if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name); err != nil {
			return "", fmt.Errorf("create template database: %w", err)
		}
		tdb, err := sqlx.Open("postgres", DatabaseURL(adminURL, name))
		if err != nil {
			return "", err
		}
		_, err = migrations.Apply(ctx, tdb)
		tdb.Close()
		if err != nil {
			return "", fmt.Errorf("migrate template database: %w", err)
		}
		template = name
	}
	name := "nltest_" + sanitize(testName) + "_" + randomHex(4)
	if _, err := admin.ExecContext(ctx, `CREATE DATABASE `+name+` TEMPLATE `+template); err != nil {
		return "", fmt.Errorf("create test database: %w", err)
	}
	return DatabaseURL(adminURL, name), nil
}

// ensureServer is called with mu held.
func ensureServer() error {
	if adminURL != "" {
		return nil
	}
	if u := os.Getenv("DATABASE_URL"); u != "" {
		adminURL = u
		return nil
	}
	u, s, err := StartCluster()
	if err != nil {
		return err
	}
	adminURL, stop = u, s
	return nil
}

// StartCluster initialises and starts a PostgreSQL cluster in a temporary
// folder, listening on a free loopback port, and returns its URL and a
// function that stops it and removes the folder.
func StartCluster() (string, func(), error) {
	c, err := NewCluster()
	if err != nil {
		return "", nil, err
	}
	return c.URL, c.Stop, nil
}

// Cluster is a throwaway PostgreSQL server of a test's own, for tests that
// stop or restart the database under a running send.
type Cluster struct {
	URL  string // superuser URL of the postgres database
	dir  string
	data string
	opts string
	run  func(name string, args ...string) *exec.Cmd
}

// NewCluster initialises and starts a cluster; Stop removes it.
func NewCluster() (*Cluster, error) {
	bindir, err := BinDir()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "newsletter-pg-")
	if err != nil {
		return nil, fmt.Errorf("temporary folder: %w", err)
	}
	asPostgres := os.Geteuid() == 0
	if asPostgres {
		pu, err := user.Lookup("postgres")
		if err != nil {
			return nil, fmt.Errorf("running as root, PostgreSQL must run as the postgres user, which is missing (apt-get install postgresql): %w", err)
		}
		uid, _ := strconv.Atoi(pu.Uid)
		gid, _ := strconv.Atoi(pu.Gid)
		if err := os.Chown(dir, uid, gid); err != nil {
			return nil, fmt.Errorf("chown %s: %w", dir, err)
		}
	}
	c := &Cluster{dir: dir, data: filepath.Join(dir, "data")}
	c.run = func(name string, args ...string) *exec.Cmd {
		bin := filepath.Join(bindir, name)
		if asPostgres {
			return exec.Command("runuser", append([]string{"-u", "postgres", "--", bin}, args...)...)
		}
		return exec.Command(bin, args...)
	}
	if out, err := c.run("initdb", "-D", c.data, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync").CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("initdb: %v: %s", err, out)
	}
	port, err := FreePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.opts = fmt.Sprintf("-h 127.0.0.1 -p %d -k %s -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", port, dir)
	if err := c.ctl("start"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	c.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
	return c, nil
}

func (c *Cluster) ctl(action string, extra ...string) error {
	args := append([]string{"-D", c.data, "-o", c.opts, "-l", filepath.Join(c.dir, "log"), "-w"}, extra...)
	if out, err := c.run("pg_ctl", append(args, action)...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl %s: %v: %s %s", action, err, out, log)
	}
	return nil
}

// Restart stops the server (fast: open connections are cut) and starts it
// again on the same port.
func (c *Cluster) Restart() error { return c.ctl("restart", "-m", "fast") }

// Stop stops the server at once and removes its folder.
func (c *Cluster) Stop() {
	c.run("pg_ctl", "-D", c.data, "-m", "immediate", "-w", "stop").Run()
	os.RemoveAll(c.dir)
}

// BinDir finds the PostgreSQL server binaries: pg_config --bindir, then
// /usr/lib/postgresql/*/bin, newest first.
func BinDir() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		d := strings.TrimSpace(string(out))
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	for i := len(dirs) - 1; i >= 0; i-- {
		if _, err := os.Stat(filepath.Join(dirs[i], "initdb")); err == nil {
			return dirs[i], nil
		}
	}
	return "", fmt.Errorf("no PostgreSQL server binaries (initdb) found: set DATABASE_URL, or install them with: apt-get install postgresql")
}

// FreePort finds a free TCP port on the loopback interface, for a server
// about to be started (a cluster here, or smtp-sink in the benchmark).
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// DatabaseURL is the server URL raw with its database set to name.
func DatabaseURL(raw, name string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + name
	return u.String()
}

func sanitize(s string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(s) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
		if b.Len() >= 30 {
			break
		}
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
