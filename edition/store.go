package edition

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jmoiron/sqlx"
)

var (
	// ErrNotFound: no edition has that date or id.
	ErrNotFound = errors.New("edition not found")
	// ErrSendStarted: the edition is being (or was) sent, so it is frozen.
	ErrSendStarted = errors.New("edition send already started")
	// ErrCancelled: the edition's send was cancelled; it is not sent again.
	ErrCancelled = errors.New("the edition's send was cancelled")
)

// Dates go to and come from PostgreSQL as YYYY-MM-DD text: a time.Time
// parameter would be converted through the session's time zone and could
// land on the neighbouring day.
const (
	// The content is compared as jsonb, which ignores key order and spacing.
	lockByDateSQL = `SELECT id, send_started_at IS NOT NULL, content = $2::jsonb FROM editions WHERE date = $1::date FOR UPDATE`
	// ON CONFLICT DO NOTHING: a concurrent Save of the same new date makes
	// this insert nothing, and Save then locks and replaces that row.
	insertSQL = `INSERT INTO editions (date, content, source_format) VALUES ($1::date, $2::jsonb, $3)
		ON CONFLICT (date) DO NOTHING RETURNING id`
	// Other content clears the editor's edits (edit.go): they were made
	// for the content it replaces.
	replaceSQL = `UPDATE editions SET content = $2::jsonb, source_format = $3, imported_at = now(),
		subject = NULL, preheader = NULL, related_order = NULL, edited_at = NULL WHERE id = $1`

	storedColumns = `id, date::text, content, source_format, imported_at, send_started_at, ` + editColumns
	getByDateSQL  = `SELECT ` + storedColumns + ` FROM editions WHERE date = $1::date`
	getByIDSQL    = `SELECT ` + storedColumns + ` FROM editions WHERE id = $1`

	versionSQL = `SELECT id, imported_at, send_started_at, edited_at FROM editions WHERE date = $1::date`

	listSQL = `SELECT id, date::text, content->'site'->>'name', content->'lead'->>'title', subject,
		send_started_at, paused_at, finished_at, cancelled_at, send_at FROM editions ORDER BY date DESC`

	// A send starting takes the row lock (MarkSendStarted) and this
	// DELETE re-checks its condition after waiting for it, so an edition
	// is either deleted or sent, never both.
	deleteSQL = `WITH d AS (DELETE FROM editions WHERE date = $1::date AND send_started_at IS NULL RETURNING date),
		s AS (DELETE FROM edition_sources WHERE edition_date IN (SELECT date FROM d))
		SELECT count(*) FROM d`
	nearestSQL = `SELECT (SELECT max(date)::text FROM editions WHERE date < $1::date),
		(SELECT min(date)::text FROM editions WHERE date > $1::date)`

	// markSendStartedSQL freezes the edition and fixes its send-by deadline
	// at the first start: $2 seconds later, or NULL for none ($2 = 0). A
	// later call (a rerun, new confirmations queued) keeps both (the
	// right-hand sides see the row as it was) but reopens a finished send.
	markSendStartedSQL = `
UPDATE editions SET
    send_started_at = coalesce(send_started_at, now()),
    send_by = CASE WHEN send_started_at IS NOT NULL THEN send_by
                   WHEN $2::float8 > 0 THEN now() + make_interval(secs => $2) END,
    message_id_domain = coalesce(message_id_domain, nullif($3, '')),
    finished_at = NULL
WHERE id = $1`
)

// Store keeps editions in the editions table, one per date.
type Store struct{ DB *sqlx.DB }

// Stored is an edition as the table holds it.
type Stored struct {
	ID            int64
	Edition       *Edition
	Format        Format
	ImportedAt    time.Time
	SendStartedAt *time.Time // nil until the send starts; from then on the edition is frozen
	EditedAt      *time.Time // the last Edit; nil when there is none since the import
}

// Summary is an archive entry.
type Summary struct {
	ID            int64
	Date          time.Time
	Subject       string // see Edition.Subject
	LeadTitle     string
	SendStartedAt *time.Time
	State         string // see SendState.State
}

// sendStartedError says which edition is frozen, in words an operator
// importing a correction understands, and matches ErrSendStarted.
type sendStartedError struct{ date, what string }

func (e sendStartedError) Error() string {
	return "edition " + e.date + " is already being sent; it can no longer be " + e.what
}

func (e sendStartedError) Is(target error) bool { return target == ErrSendStarted }

// Saved is what Save did with an edition.
type Saved int

const (
	// Inserted: the date had no edition.
	Inserted Saved = iota + 1
	// Replaced: the date's edition had other content, now replaced.
	Replaced
	// Unchanged: the date's edition already had this content (whether or
	// not its send started), so nothing was written: a cron job that runs
	// its import twice succeeds twice.
	Unchanged
)

// Save stores e as its date's edition, replacing the one already there
// (same id, new content: Replaced) as long as its send has not started;
// afterwards other content is refused with an error matching
// ErrSendStarted, while the same content is Unchanged. The row is locked
// FOR UPDATE while deciding, and MarkSendStarted's UPDATE waits for that
// lock, so a send cannot start on content being replaced.
func (s *Store) Save(ctx context.Context, e *Edition, f Format) (id int64, saved Saved, err error) {
	return s.save(ctx, e, f, nil)
}

// save is Save, and SaveFetched when src is set.
func (s *Store) save(ctx context.Context, e *Edition, f Format, src *Source) (id int64, saved Saved, err error) {
	if err := e.Validate(); err != nil {
		return 0, 0, fmt.Errorf("save edition: %w", err)
	}
	if !f.valid() {
		return 0, 0, fmt.Errorf("save edition %s: unknown source format %q", e.DateString(), f)
	}
	date := e.DateString()
	content, err := json.Marshal(e)
	if err != nil {
		return 0, 0, fmt.Errorf("save edition %s: encode: %w", date, err)
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("save edition %s: begin: %w", date, err)
	}
	defer tx.Rollback()
	if src != nil {
		if err := refuseRepeatedLead(ctx, tx, e); err != nil {
			return 0, 0, err
		}
	}
	if id, saved, err = saveTx(ctx, tx, date, content, f); err != nil {
		return 0, 0, err
	}
	if src != nil {
		if err := src.record(ctx, tx, date); err != nil {
			return 0, 0, err
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, fmt.Errorf("save edition %s: commit: %w", date, err)
	}
	return id, saved, nil
}

// saveTx is Save's decision, in its transaction.
func saveTx(ctx context.Context, tx *sqlx.Tx, date string, content []byte, f Format) (id int64, saved Saved, err error) {
	// Two rounds at most: the second only when a concurrent Save inserted
	// the date between our lock attempt and our insert.
	for range 2 {
		var started, same bool
		err := tx.QueryRowxContext(ctx, lockByDateSQL, date, string(content)).Scan(&id, &started, &same)
		switch {
		case err == nil && same:
			return id, Unchanged, nil
		case err == nil && started:
			return 0, 0, sendStartedError{date, "replaced"}
		case err == nil:
			if _, err := tx.ExecContext(ctx, replaceSQL, id, string(content), f); err != nil {
				return 0, 0, fmt.Errorf("save edition %s: replace: %w", date, err)
			}
			return id, Replaced, nil
		case errors.Is(err, sql.ErrNoRows):
			err = tx.QueryRowxContext(ctx, insertSQL, date, string(content), f).Scan(&id)
			if errors.Is(err, sql.ErrNoRows) {
				continue
			}
			if err != nil {
				return 0, 0, fmt.Errorf("save edition %s: insert: %w", date, err)
			}
			return id, Inserted, nil
		default:
			return 0, 0, fmt.Errorf("save edition %s: lock: %w", date, err)
		}
	}
	return 0, 0, fmt.Errorf("save edition %s: the row kept changing under concurrent saves; try again", date)
}

// Get returns the edition of date's civil day.
func (s *Store) Get(ctx context.Context, date time.Time) (*Stored, error) {
	d := date.Format(DateLayout)
	st, err := scanStored(s.DB.QueryRowxContext(ctx, getByDateSQL, d))
	if err != nil {
		return nil, fmt.Errorf("get edition %s: %w", d, err)
	}
	return st, nil
}

// Version is which content an edition has: the same id, import time and
// edit time mean the same content (Save sets imported_at whenever it
// replaces it, Edit sets the edit time).
type Version struct {
	ID            int64
	ImportedAt    time.Time
	SendStartedAt *time.Time
	EditedAt      *time.Time
}

// Version returns the version of date's edition without reading its
// content, so a cache of what is made from the content can tell whether it
// is still good.
func (s *Store) Version(ctx context.Context, date time.Time) (Version, error) {
	d := date.Format(DateLayout)
	var (
		v               Version
		started, edited sql.NullTime
	)
	err := s.DB.QueryRowxContext(ctx, versionSQL, d).Scan(&v.ID, &v.ImportedAt, &started, &edited)
	if errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("edition %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return v, fmt.Errorf("get version of edition %s: %w", d, err)
	}
	v.SendStartedAt, v.EditedAt = timePtr(started), timePtr(edited)
	return v, nil
}

// GetByID returns the edition with that id.
func (s *Store) GetByID(ctx context.Context, id int64) (*Stored, error) {
	st, err := scanStored(s.DB.QueryRowxContext(ctx, getByIDSQL, id))
	if err != nil {
		return nil, fmt.Errorf("get edition %d: %w", id, err)
	}
	return st, nil
}

func scanStored(row *sqlx.Row) (*Stored, error) {
	var (
		st      Stored
		date    string
		content []byte
		format  string
		started sql.NullTime
		edits   editScan
	)
	err := row.Scan(append([]any{&st.ID, &date, &content, &format, &st.ImportedAt, &started}, edits.dest()...)...)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	st.Edition = &Edition{}
	if err := json.Unmarshal(content, st.Edition); err != nil {
		return nil, fmt.Errorf("decode content: %w", err)
	}
	// The row's date is the one that is unique and looked up; trust it.
	if st.Edition.Date, err = ParseDate(date); err != nil {
		return nil, err
	}
	st.Format = Format(format)
	if started.Valid {
		st.SendStartedAt = &started.Time
	}
	edits.apply(&st)
	return &st, nil
}

// List returns every edition's date, lead title and send start, newest
// first, for the archive.
func (s *Store) List(ctx context.Context) ([]Summary, error) {
	rows, err := s.DB.QueryxContext(ctx, listSQL)
	if err != nil {
		return nil, fmt.Errorf("list editions: %w", err)
	}
	defer rows.Close()
	var out []Summary
	for rows.Next() {
		var (
			sum                       Summary
			date                      string
			site, title, subject      sql.NullString
			started, paused, finished sql.NullTime
			cancelled, sendAt         sql.NullTime
		)
		if err := rows.Scan(&sum.ID, &date, &site, &title, &subject, &started, &paused, &finished, &cancelled, &sendAt); err != nil {
			return nil, fmt.Errorf("list editions: %w", err)
		}
		if sum.Date, err = ParseDate(date); err != nil {
			return nil, fmt.Errorf("list editions: %w", err)
		}
		sum.LeadTitle = title.String
		sum.Subject = (&Edition{Site: Site{Name: site.String}, Lead: Story{Title: title.String}, Edits: Edits{Subject: subject.String}}).Subject()
		state := SendState{StartedAt: timePtr(started), PausedAt: timePtr(paused), FinishedAt: timePtr(finished),
			CancelledAt: timePtr(cancelled), SendAt: timePtr(sendAt)}
		sum.SendStartedAt, sum.State = state.StartedAt, state.State()
		out = append(out, sum)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list editions: %w", err)
	}
	return out, nil
}

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

// Delete removes date's edition, which must exist and never have started
// its send (ErrSendStarted): once a send started, its deliveries refer to
// it.
func (s *Store) Delete(ctx context.Context, date time.Time) error {
	d := date.Format(DateLayout)
	var n int
	if err := s.DB.QueryRowxContext(ctx, deleteSQL, d).Scan(&n); err != nil {
		return fmt.Errorf("delete edition %s: %w", d, err)
	}
	if n == 1 {
		return nil
	}
	if _, err := s.Version(ctx, date); err != nil {
		return fmt.Errorf("delete: %w", err)
	}
	// Its deliveries refer to it: who got it stays on record.
	return sendStartedError{d, "deleted"}
}

// Nearest returns the dates of the editions closest before and after date
// (zero when there is none), for telling someone who asked for a day
// without one which days have one.
func (s *Store) Nearest(ctx context.Context, date time.Time) (before, after time.Time, err error) {
	d := date.Format(DateLayout)
	var b, a sql.NullString
	if err := s.DB.QueryRowxContext(ctx, nearestSQL, d).Scan(&b, &a); err != nil {
		return before, after, fmt.Errorf("find the editions nearest %s: %w", d, err)
	}
	for _, p := range []struct {
		s   sql.NullString
		dst *time.Time
	}{{b, &before}, {a, &after}} {
		if p.s.Valid {
			if *p.dst, err = ParseDate(p.s.String); err != nil {
				return before, after, fmt.Errorf("find the editions nearest %s: %w", d, err)
			}
		}
	}
	return before, after, nil
}

// MarkSendStarted freezes the edition for its send (from now on Save
// refuses to replace it), with a send-by deadline window after the first
// start (0: none, stored as NULL), in the caller's transaction: the
// delivery queue calls it before queueing recipients, and its row lock is
// what keeps a re-import (Save) from slipping in. Marking again keeps the
// first start, deadline and msgIDDomain: the right-hand side of the
// edition's Message-IDs (RFC 5322 section 3.6.4), which the queue derives
// per recipient.
func MarkSendStarted(ctx context.Context, db sqlx.ExecerContext, id int64, window time.Duration, msgIDDomain string) error {
	res, err := db.ExecContext(ctx, markSendStartedSQL, id, max(window.Seconds(), 0), msgIDDomain)
	if err != nil {
		return fmt.Errorf("mark edition %d send started: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("mark edition %d send started: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("mark edition %d send started: %w", id, ErrNotFound)
	}
	return nil
}
