package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"newsletter/fleet"
	"newsletter/metrics"
	"newsletter/migrations"
	"newsletter/schedule"
	"newsletter/templates"
	"newsletter/web"
)

// app is what a subcommand runs with, built once from its settings: the
// configuration, the logger, where to write, and, for the subcommands that
// need them, the database and the templates.
type app struct {
	cmd     string // the subcommand's full name, like "subscribers add"
	cfg     *config
	log     *slog.Logger
	stdout  io.Writer
	stderr  io.Writer
	db      *sqlx.DB       // nil unless the subcommand needs the database
	tpl     *templates.Set // nil unless it renders mail or pages
	member  *fleet.Member  // this process in the registry of workers, while it sends (see joinFleet)
	metrics *metrics.Metrics
}

// needs says what a subcommand's app holds besides its configuration.
type needs int

const (
	needDB        needs = 1 << iota // a database at the binary's schema
	needAnyDB                       // a database at any schema (migrate)
	needTemplates                   // the templates, built-in or NEWSLETTER_TEMPLATES
)

// newApp builds the app for cmd from its configuration. The caller closes
// it.
func newApp(ctx context.Context, cmd string, n needs, cfg *config, stdout, stderr io.Writer) (*app, error) {
	a := &app{cmd: cmd, cfg: cfg, stdout: stdout, stderr: stderr, log: newLogger(cfg, stderr)}
	for _, w := range cfg.warnings {
		a.log.Warn(w)
	}
	if n&needTemplates != 0 {
		tpl, err := templates.Load(cfg.templatesDir)
		if err != nil {
			return nil, err
		}
		a.tpl = tpl
	}
	if n&(needDB|needAnyDB) != 0 {
		db, err := openDB(ctx, cfg.databaseURL, n&needDB != 0)
		if err != nil {
			return nil, err
		}
		a.db = db
		a.poolSize().apply(db)
	}
	a.metrics = metrics.New(a.db, a.log)
	if a.db != nil {
		a.metrics.ScheduleOutcomes(func(ctx context.Context) (time.Time, time.Time, error) {
			return schedule.LastOutcomes(ctx, a.db)
		})
	}
	return a, nil
}

func (a *app) close() {
	if a.db != nil {
		a.db.Close()
	}
}

func newLogger(c *config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.logLevel}
	if c.logFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// openDB connects and, when check is set, checks that the schema is the
// one this binary knows.
func openDB(ctx context.Context, databaseURL string, check bool) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the database (DATABASE_URL): %w", err)
	}
	if !check {
		return db, nil
	}
	if err := migrations.Check(ctx, db); err != nil {
		db.Close()
		// 42P01, undefined_table: schema_migrations does not exist.
		if pe := pq.As(err, "42P01"); pe != nil {
			return nil, fmt.Errorf("the database has no schema yet: run `newsletter migrate` first")
		}
		return nil, err
	}
	return db, nil
}

// pool is the size of the database pool.
type pool struct {
	maxOpen, maxIdle int // 0: no limit, the default
	maxIdleTime      time.Duration
}

// poolSize is sized from what the process runs, here and nowhere else.
func (a *app) poolSize() pool {
	switch a.cmd {
	case "serve":
		conns := 0
		if a.cfg.serveWorker {
			conns = a.cfg.conns
		}
		return poolFor(true, conns)
	case "send", "worker":
		return poolFor(false, a.cfg.conns)
	}
	return pool{}
}

// poolFor sizes the pool of a process that serves the reader pages or not,
// and runs a delivery worker of conns SMTP connections (0: none).
//
// The reader pages keep web.DBPoolSize connections, open and idle, and no
// more: HTTP requests are not bounded otherwise. A delivery worker's
// connections each lease between batches and write a group's results while
// sending the next, so up to two database connections per SMTP connection
// are busy at once, plus the worker's own and the one its membership of the
// fleet holds (see joinFleet); they are kept idle (with
// database/sql's default of 2 each would be closed and reopened all the
// time, a new PostgreSQL backend and its prepared statements each). A
// worker alone has no cap: its SMTP connections bound it.
func poolFor(serves bool, conns int) pool {
	var p pool
	if serves {
		p = pool{maxOpen: web.DBPoolSize, maxIdle: web.DBPoolSize, maxIdleTime: 5 * time.Minute}
	}
	if conns > 0 {
		worker := 2*conns + 3
		p.maxIdle += worker
		if p.maxOpen > 0 {
			p.maxOpen += worker
		}
	}
	return p
}

func (p pool) apply(db *sqlx.DB) {
	if p == (pool{}) {
		return
	}
	db.SetMaxOpenConns(p.maxOpen)
	db.SetMaxIdleConns(p.maxIdle)
	if p.maxIdleTime > 0 {
		db.SetConnMaxIdleTime(p.maxIdleTime)
	}
}

// describe is err as the one line an operator reads: the database driver's
// position and SQLSTATE suffix left out, and what to do about a server
// without SSL.
func describe(err error) string {
	msg := err.Error()
	if pe := pq.As(err); pe != nil {
		clean := pe.Message
		if pe.Detail != "" {
			clean += " (" + pe.Detail + ")"
		}
		if pe.Hint != "" {
			clean += "; " + pe.Hint
		}
		msg = strings.Replace(msg, pe.Error(), clean, 1)
	}
	if errors.Is(err, pq.ErrSSLNotSupported) {
		msg = strings.Replace(msg, pq.ErrSSLNotSupported.Error(),
			"the server does not accept SSL: change sslmode in DATABASE_URL (for a local server, add ?sslmode=disable)", 1)
	}
	return strings.Join(strings.Fields(msg), " ")
}
