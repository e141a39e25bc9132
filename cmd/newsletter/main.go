// Command newsletter turns a news site's day into an email and delivers it
// to every confirmed subscriber. `newsletter help` lists the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/jmoiron/sqlx"
	_ "github.com/lib/pq" // the PostgreSQL driver

	"newsletter/migrations"
	"newsletter/templates"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// env is what every subcommand gets: its arguments, where to write, a logger.
type env struct {
	args   []string
	stdout io.Writer
	stderr io.Writer
	log    *slog.Logger
}

type command struct {
	summary string
	run     func(ctx context.Context, e *env) error
}

var commands map[string]command

func init() {
	commands = map[string]command{
		"migrate":     {"apply the database migrations", cmdMigrate},
		"subscribers": {"import, add and list subscribers", cmdSubscribers},
		"edition":     {"import the day's edition from a news page, a feed or JSON", cmdEdition},
		"preview":     {"render an edition exactly as a subscriber gets it", cmdPreview},
		"send":        {"send an edition to every confirmed subscriber", cmdSend},
		"worker":      {"a long-lived delivery worker for every edition being sent", cmdWorker},
		"status":      {"how an edition's send stands, and who was not delivered", cmdStatus},
		"serve":       {"serve the reader pages (sign-up, confirm, unsubscribe, web edition); --worker also sends", cmdServe},
		"secret":      {"print a new random NEWSLETTER_SECRET", cmdSecret},
		"help":        {"list the subcommands", nil},
	}
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: logLevel()}))
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "newsletter: unknown subcommand %q; run `newsletter help`\n", args[0])
		return 2
	}
	err := cmd.run(ctx, &env{args: args[1:], stdout: stdout, stderr: stderr, log: log})
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "newsletter %s: %v\n", args[0], err)
		return 2
	default:
		fmt.Fprintf(stderr, "newsletter %s: %s\n", args[0], oneLine(err.Error()))
		return 1
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: newsletter <subcommand> [flags] [arguments]")
	fmt.Fprintln(w, "\nSubcommands (each has -h):")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-12s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from flags or the environment: DATABASE_URL, SMTP_URL,")
	fmt.Fprintln(w, "NEWSLETTER_FROM, NEWSLETTER_BASE_URL, NEWSLETTER_SECRET, NEWSLETTER_TZ,")
	fmt.Fprintln(w, "NEWSLETTER_TEMPLATES, NEWSLETTER_LISTEN, NEWSLETTER_LIST_ID, NEWSLETTER_SMTP_CONNS and the")
	fmt.Fprintln(w, "others in the README (each subcommand's -h names the ones it reads).")
}

var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// parse parses flags that may come before, between or after the positional
// arguments (`subscribers add EMAIL --name N`), and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	fs.SetOutput(io.Discard)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageErr("%v (see -h)", err)
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// flagSet makes a subcommand's flag set whose -h prints to stdout.
func flagSet(e *env, name, usageLine string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() {
		fmt.Fprintf(e.stdout, "Usage: newsletter %s\n\nFlags:\n", usageLine)
		fs.SetOutput(e.stdout)
		fs.PrintDefaults()
		fs.SetOutput(io.Discard)
	}
	return fs
}

// parseArgs is parse plus -h handling for a flag set made by flagSet.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		fs.Usage()
	}
	return pos, err
}

// openDB connects and checks that the schema is the one this binary knows.
func openDB(ctx context.Context, c *config) (*sqlx.DB, error) {
	db, err := sqlx.Open("postgres", c.databaseURL)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to the database (%s): %w", envDatabaseURL, err)
	}
	if err := migrations.Check(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func logLevel() slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(os.Getenv("NEWSLETTER_LOG_LEVEL"))); err != nil {
		return slog.LevelInfo
	}
	return l
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// start is what the subcommands that render mail do first: check the
// configuration, load the templates, connect to a database at the binary's
// schema. The caller closes the database.
func start(ctx context.Context, c *config, log *slog.Logger) (*templates.Set, *sqlx.DB, error) {
	if err := c.load(log); err != nil {
		return nil, nil, err
	}
	tpl, err := templates.Load(c.templatesDir)
	if err != nil {
		return nil, nil, err
	}
	db, err := openDB(ctx, c)
	if err != nil {
		return nil, nil, err
	}
	return tpl, db, nil
}
