// Command newsletter turns a news site's day into an email and delivers it
// to every confirmed subscriber. `newsletter help` lists the subcommands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"

	_ "github.com/lib/pq" // the PostgreSQL driver

	"newsletter/delivery"
	"newsletter/smtpclient"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// runFunc is a subcommand's work, given its app and positional arguments.
type runFunc func(ctx context.Context, a *app, args []string) error

// command is one subcommand: its -h, the positional arguments it takes,
// what its app holds, and its own flags besides its settings'.
type command struct {
	usage string   // after "Usage: newsletter ": the synopsis, a blank line, what it does
	args  []string // the positional arguments' names
	needs needs
	// setup registers the subcommand's own flags and returns its work.
	setup func(fs *flag.FlagSet) runFunc
}

// commands are by full name; "subscribers add" is the subcommand add of
// the group subscribers.
var commands map[string]*command

// topics are what `newsletter help` lists, groups as one line.
var topics = []struct{ name, summary string }{
	{"migrate", "apply the database migrations"},
	{"subscribers", "import, add, list, export and erase subscribers"},
	{"edition", "import the day's edition from a news page, a feed or JSON (a file or a URL); list, show, edit, delete"},
	{"preview", "render an edition exactly as a subscriber gets it"},
	{"send", "send an edition to every confirmed subscriber"},
	{"worker", "a long-lived delivery worker for every edition being sent"},
	{"cancel", "cancel an edition's send (or its schedule); the rest is recorded as cancelled"},
	{"status", "how an edition's send stands, and who was not delivered"},
	{"serve", "serve the reader pages (sign-up, confirm, unsubscribe, web edition); --worker also sends"},
	{"suppression", "list, add and remove the addresses never to mail"},
	{"doctor", "check SPF, DKIM, DMARC, MX, the relay's TLS and the mail's headers, and say what to fix"},
	{"editors", "add, list, remove desk accounts; set a password; make and revoke API tokens"},
	{"audit", "who did what and when, on the desk, the API and here"},
	{"schedule", "the built-in daily schedule's runs: status, hold DATE, release DATE"},
	{"bounces", "serve: the bounce domain's MX; imap: poll a mailbox; bounces, complaints and mailto unsubscribes act on the list"},
	{"deliveries", "prune: drop the deliveries older than NEWSLETTER_RETENTION, keeping each edition's counts"},
	{"secret", "print a new random NEWSLETTER_SECRET"},
	{"dkim", "keygen: a new DKIM key and the DNS record that publishes it"},
	{"help", "list the subcommands"},
}

func init() {
	commands = map[string]*command{
		"migrate":            migrateCommand,
		"secret":             secretCommand,
		"subscribers import": subscribersImport,
		"subscribers add":    subscribersAdd,
		"subscribers list":   subscribersList,
		"subscribers export": subscribersExport,
		"subscribers erase":  subscribersErase,
		"edition import":     editionImport,
		"edition list":       editionList,
		"edition show":       editionShow,
		"edition edit":       editionEdit,
		"edition delete":     editionDelete,
		"preview":            previewCommand,
		"send":               sendCommand,
		"worker":             workerCommand,
		"status":             statusCommand,
		"cancel":             cancelCommand,
		"serve":              serveCommand,
		"deliveries prune":   deliveriesPrune,
		"doctor":             doctorCommand,
		"editors add":        editorsAdd,
		"editors list":       editorsList,
		"editors remove":     editorsRemove,
		"editors password":   editorsPassword,
		"editors token":      editorsToken,
		"editors revoke":     editorsRevoke,
		"audit":              auditCommand,
		"suppression list":   suppressionList,
		"suppression add":    suppressionAdd,
		"suppression remove": suppressionRemove,
		"dkim keygen":        dkimKeygen,
		"schedule status":    scheduleStatus,
		"schedule hold":      scheduleHold,
		"schedule release":   scheduleRelease,
		"bounces serve":      bouncesServe,
		"bounces imap":       bouncesIMAP,
	}
}

// run is main without the process: tests call it.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || isHelp(args[0]) {
		usage(stdout)
		return 0
	}
	name, rest := args[0], args[1:]
	if members := groupMembers(name); members != nil {
		if len(rest) == 0 || isHelp(rest[0]) {
			groupUsage(stdout, name, members)
			if len(rest) == 0 {
				fmt.Fprintf(stderr, "newsletter %s: name a subcommand: %s\n", name, strings.Join(members, ", "))
				return exitUsage
			}
			return exitOK
		}
		name, rest = name+" "+rest[0], rest[1:]
	}
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "newsletter: unknown subcommand %q; run `newsletter help`\n", name)
		return exitUsage
	}
	err := cmd.exec(ctx, name, rest, stdout, stderr)
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "newsletter %s: %s\n", name, strings.TrimPrefix(err.Error(), errUsage.Error()+": "))
		return exitUsage
	}
	fmt.Fprintf(stderr, "newsletter %s: %s\n", name, describe(err))
	return exitCode(err)
}

// Exit statuses, so that cron and systemd can tell a send that is done
// from one to look at (the README lists them).
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
	// exitStopped: the send is paused (its reason on stderr and in
	// `status`), or the SMTP relay refused us for its configuration: fix
	// the cause, then run the same send again; or it was cancelled.
	exitStopped = 3
	// exitInterrupted: SIGINT or SIGTERM stopped a send with recipients
	// left; running it again finishes them.
	exitInterrupted = 4
)

// exitCode is the exit status for a subcommand's error.
func exitCode(err error) int {
	switch {
	case errors.Is(err, errInterrupted):
		return exitInterrupted
	case errors.Is(err, delivery.ErrPaused), errors.Is(err, errCancelled), errors.Is(err, smtpclient.ErrMisconfigured):
		return exitStopped
	}
	return exitError
}

// exec parses the command line and the settings, builds the app and runs
// the subcommand.
func (c *command) exec(ctx context.Context, name string, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {} // -h is printed once, by help
	work := c.setup(fs)
	given := registerSettings(fs, name)
	pos, err := parse(fs, args)
	if errors.Is(err, flag.ErrHelp) {
		c.help(stdout, name, fs)
		return err
	}
	if err != nil {
		return usageErr("%v; run `newsletter %s -h`", err, name)
	}
	if len(pos) != len(c.args) {
		want := "no arguments"
		if len(c.args) > 0 {
			want = strings.Join(c.args, " ")
		}
		return usageErr("%s takes %s, got %d: %q; run `newsletter %s -h`", name, want, len(pos), pos, name)
	}
	cfg, err := loadSettings(name, given)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, name, c.needs, cfg, stdout, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	return work(ctx, a, pos)
}

// help is the subcommand's -h: its synopsis, its own flags, its settings.
func (c *command) help(w io.Writer, name string, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: newsletter %s\n", c.usage)
	isSetting := map[string]bool{}
	for _, s := range settingsFor(name) {
		isSetting[s.flag] = true
	}
	first := true
	fs.VisitAll(func(f *flag.Flag) {
		if isSetting[f.Name] {
			return
		}
		if first {
			fmt.Fprintln(w, "\nFlags:")
			first = false
		}
		fmt.Fprintf(w, "  --%s\n        %s\n", f.Name, f.Usage)
	})
	printSettings(w, name)
}

func isHelp(arg string) bool { return arg == "-h" || arg == "--help" || arg == "-help" }

// groupMembers is the subcommands of a group like subscribers, in the order
// of its usage; nil if name is not a group.
func groupMembers(name string) []string {
	var out []string
	for full := range commands {
		if g, sub, ok := strings.Cut(full, " "); ok && g == name {
			out = append(out, sub)
		}
	}
	slices.Sort(out)
	return out
}

func groupUsage(w io.Writer, group string, members []string) {
	fmt.Fprintf(w, "Usage: newsletter %s <%s> ...\n\n", group, strings.Join(members, "|"))
	for _, m := range members {
		synopsis, _, _ := strings.Cut(commands[group+" "+m].usage, "\n")
		fmt.Fprintf(w, "  newsletter %s\n", synopsis)
	}
	fmt.Fprintf(w, "\nEach has -h.\n")
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "Usage: newsletter <subcommand> [flags] [arguments]")
	fmt.Fprintln(w, "\nSubcommands (each has -h):")
	for _, t := range topics {
		fmt.Fprintf(w, "  %-12s %s\n", t.name, t.summary)
	}
	fmt.Fprintln(w, "\nConfiguration comes from flags or the environment (DATABASE_URL, SMTP_URL,")
	fmt.Fprintln(w, "NEWSLETTER_FROM, ...): each subcommand's -h lists the settings it reads,")
	fmt.Fprintln(w, "the README's configuration table lists them all.")
}

var errUsage = errors.New("usage")

func usageErr(format string, a ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errUsage}, a...)...)
}

// parse parses flags that may come before, between or after the positional
// arguments (`subscribers add EMAIL --name N`), and returns the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}
