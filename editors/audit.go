package editors

import (
	"context"
	"fmt"
	"net/netip"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Entry is one line of the audit record: who did what to what, and when.
type Entry struct {
	ID     int64     `db:"id" json:"id"`
	At     time.Time `db:"at" json:"at"`
	Actor  string    `db:"actor" json:"actor"`   // an editor's address, "token NAME", or "cli"
	Action string    `db:"action" json:"action"` // sign-in, sign-in-failed, import, edit, test-send, send, pause, editor.add, ...
	Target string    `db:"target" json:"target,omitempty"`
	Detail string    `db:"detail" json:"detail,omitempty"`
	IP     *string   `db:"ip" json:"ip,omitempty"`
}

// CLI is the actor of what is done on the command line, by whoever can
// run the binary with the database's credentials.
const CLI = "cli"

var actionName = regexp.MustCompile(`^[a-z][a-z_.-]{0,40}$`)

// Audit writes an entry to the record, with ex (the database or the
// transaction of the change it records, so neither is kept without the
// other). ip may be empty.
func Audit(ctx context.Context, ex sqlx.ExecerContext, actor, action, target, detail, ip string) error {
	if !actionName.MatchString(action) {
		return fmt.Errorf("audit: bad action %q", action)
	}
	var addr any
	if a, err := netip.ParseAddr(ip); err == nil {
		addr = a.Unmap().String()
	}
	_, err := ex.ExecContext(ctx, `INSERT INTO audit_log (actor, action, target, detail, ip) VALUES ($1, $2, $3, $4, $5)`,
		clip(actor, 300), action, clip(target, 300), clip(detail, 1000), addr)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// EachAudit calls fn for every entry since the time, oldest first.
func EachAudit(ctx context.Context, db *sqlx.DB, since time.Time, fn func(Entry) error) error {
	rows, err := db.QueryxContext(ctx, `SELECT id, at, actor, action, target, detail, host(ip) AS ip FROM audit_log WHERE at >= $1 ORDER BY at, id`, since)
	if err != nil {
		return fmt.Errorf("read audit record: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var e Entry
		if err := rows.StructScan(&e); err != nil {
			return fmt.Errorf("read audit record: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read audit record: %w", err)
	}
	return nil
}

// clip keeps a value on one line and within n bytes, cut at a character.
func clip(s string, n int) string {
	s = strings.ToValidUTF8(strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s), "\uFFFD")
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}
