package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"newsletter/editors"
)

var editorsAdd = &command{
	usage: "editors add EMAIL [--role admin|editor]\n\nMakes a desk account. The password is read from the terminal without echo (twice), or from\n" +
		"the first line of standard input when it is not a terminal; at least " + fmt.Sprint(editors.MinPassword) + " characters. The desk\n" +
		"has no open registration: the first admin is made here.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		role := editors.Editor
		fs.Func("role", "admin (manages editors, tokens and subscribers) or editor (prepares and sends editions; the default)", func(s string) error {
			r, err := editors.ParseRole(s)
			role = r
			return err
		})
		return func(ctx context.Context, a *app, args []string) error {
			pw, err := readPassword(a, "Password for "+args[0]+": ")
			if err != nil {
				return err
			}
			acc, err := a.editors().Add(ctx, args[0], role, pw)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "added %s (%s)\n", acc.Email, acc.Role)
			return editors.Audit(ctx, a.db, editors.CLI, "editor.add", acc.Email, string(acc.Role), "")
		}
	},
}

var editorsList = &command{
	usage: "editors list\n\nLists the desk's accounts: address, role, API tokens, created.",
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, _ []string) error {
			accs, err := a.editors().List(ctx)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "EMAIL\tROLE\tTOKENS\tCREATED")
			for _, e := range accs {
				fmt.Fprintf(tw, "%s\t%s\t%d\t%s\n", e.Email, e.Role, e.Tokens, e.CreatedAt.UTC().Format(time.RFC3339))
			}
			return tw.Flush()
		}
	},
}

var editorsRemove = &command{
	usage: "editors remove EMAIL\n\nDeletes the account and its API tokens at once. The last admin can't be removed.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			acc, err := a.editors().Remove(ctx, args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "removed %s\n", acc.Email)
			return editors.Audit(ctx, a.db, editors.CLI, "editor.remove", acc.Email, "", "")
		}
	},
}

var editorsPassword = &command{
	usage: "editors password EMAIL\n\nSets a new password, read as `editors add` reads it.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			pw, err := readPassword(a, "New password for "+args[0]+": ")
			if err != nil {
				return err
			}
			if err := a.editors().SetPassword(ctx, args[0], pw); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "password changed")
			return editors.Audit(ctx, a.db, editors.CLI, "editor.password", args[0], "", "")
		}
	},
}

var editorsToken = &command{
	usage: "editors token EMAIL --name NAME\n\nMakes an API token acting with the account's role (Authorization: Bearer TOKEN) and prints it\n" +
		"once: its last line of output is the token itself. Only its hash is kept.",
	args:  []string{"EMAIL"},
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		name := fs.String("name", "", "the token's name, to revoke it by (required)")
		return func(ctx context.Context, a *app, args []string) error {
			if *name == "" {
				return usageErr("--name is required")
			}
			tok, err := a.editors().NewToken(ctx, args[0], *name)
			if err != nil {
				return err
			}
			if err := editors.Audit(ctx, a.db, editors.CLI, "token.add", *name, "for "+args[0], ""); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "token %s for %s; it is shown this once:\n%s\n", *name, args[0], tok)
			return nil
		}
	},
}

var editorsRevoke = &command{
	usage: "editors revoke NAME\n\nEnds the API token named NAME at once.",
	args:  []string{"NAME"},
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc {
		return func(ctx context.Context, a *app, args []string) error {
			if err := a.editors().Revoke(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "revoked %s\n", args[0])
			return editors.Audit(ctx, a.db, editors.CLI, "token.revoke", args[0], "", "")
		}
	},
}

var auditCommand = &command{
	usage: "audit [--since YYYY-MM-DD]\n\nThe audit record, oldest first: when, who (an editor, a token, or cli), what, to what.",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var since time.Time
		dateFlag(fs, &since, "only entries from this day on (default: the last 30 days)")
		return func(ctx context.Context, a *app, _ []string) error {
			if since.IsZero() {
				since = time.Now().AddDate(0, 0, -30)
			}
			w := bufio.NewWriter(a.stdout)
			fmt.Fprintln(w, "at\tactor\taction\ttarget\tdetail\tip")
			err := editors.EachAudit(ctx, a.db, since, func(e editors.Entry) error {
				ip := ""
				if e.IP != nil {
					ip = *e.IP
				}
				_, err := fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.At.UTC().Format(time.RFC3339), spreadsheetCell(e.Actor), e.Action,
					spreadsheetCell(e.Target), spreadsheetCell(e.Detail), ip)
				return err
			})
			if err != nil {
				return err
			}
			return w.Flush()
		}
	},
}

func (a *app) editors() *editors.Store { return &editors.Store{DB: a.db} }

// passwordInput is where passwords are read: the process's standard
// input, which tests replace.
var passwordInput io.Reader = os.Stdin

// readPassword reads a password without echo, twice, from a terminal, or
// the first line of standard input when it is not one (a script, a pipe).
func readPassword(a *app, prompt string) (string, error) {
	if f, ok := passwordInput.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(a.stderr, prompt)
		pw, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		fmt.Fprint(a.stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(a.stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(again) != string(pw) {
			return "", errors.New("the two passwords differ")
		}
		return string(pw), editors.CheckPassword(string(pw))
	}
	line, err := bufio.NewReader(passwordInput).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password from standard input: %w", err)
	}
	pw := strings.TrimRight(line, "\r\n")
	if pw == "" {
		return "", errors.New("no password on standard input")
	}
	return pw, editors.CheckPassword(pw)
}
