package edition

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/lib/pq"
)

// The caps of an editor's subject line and preheader, in characters. A
// subject over about 60 is cut short in most inboxes and a preheader over
// about 100 never shows; these bound what is stored, with room to spare,
// and migration 0018 checks the same.
const (
	MaxSubject   = 200
	MaxPreheader = 250
)

// Edits are an editor's changes to an edition before its send, kept beside
// the imported content (migration 0018) and applied whenever the edition is
// read, so preview, test send, send and the web edition all show them.
//
// The content's comparison for "unchanged" re-imports (Save) is of the
// imported content alone: importing the same page again after an edit is
// Unchanged and keeps the edit. Importing other content (Replaced) clears
// the edits, which were made for the content it replaces; the caller can
// see that coming in Stored.Edited before saving.
type Edits struct {
	// Subject is the Subject header in place of email/subject.txt's; ""
	// leaves it to the template.
	Subject string
	// Preheader is the inbox preview text in place of the start of the
	// lead story; "" leaves it derived.
	Preheader string
	// Related are the related headlines shown, as indexes into the
	// imported list, in the order shown; nil shows them all as imported.
	// Edition.Related is already this selection.
	Related []int
}

// Edit is a change to an edition's subject, preheader or related
// headlines; a nil field is left as it is.
type Edit struct {
	Subject   *string
	Preheader *string // "" goes back to the derived preheader
	// Related is the new order of the related headlines, each an index
	// into the edition's current Related (as shown, after earlier edits);
	// those left out are dropped. Empty drops them all.
	Related []int
}

// FieldError is an Edit refused for the value of one of its fields.
type FieldError struct {
	Field  string // "subject", "preheader" or "related"
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// ErrNoChange is an Edit that changes no field.
var ErrNoChange = errors.New("nothing to change: give a subject, a preheader or the related headlines")

const (
	// lockEditSQL reads the edits in place under the row lock that
	// MarkSendStarted also takes, so a send cannot start on an edition
	// being edited, nor an edit land on one whose send started.
	lockEditSQL = `SELECT id, send_started_at IS NOT NULL, jsonb_array_length(coalesce(content->'related', '[]')),
		related_order FROM editions WHERE date = $1::date FOR UPDATE`
	// NULL parameters leave a field as it is; '' clears an override.
	editSQL = `UPDATE editions SET
		subject = CASE WHEN $2::text IS NULL THEN subject ELSE nullif($2, '') END,
		preheader = CASE WHEN $3::text IS NULL THEN preheader ELSE nullif($3, '') END,
		related_order = CASE WHEN $4::boolean THEN $5::int[] ELSE related_order END,
		edited_at = clock_timestamp()
		WHERE id = $1`
)

// Edit changes date's edition as ed says, unless its send started (an
// error matching ErrSendStarted): the edition is frozen from then on. A
// value that is not fit is refused with a *FieldError naming the field,
// and nothing changes. It returns the edition as it now is.
func (s *Store) Edit(ctx context.Context, date time.Time, ed Edit) (*Stored, error) {
	d := date.Format(DateLayout)
	if ed.Subject == nil && ed.Preheader == nil && ed.Related == nil {
		return nil, fmt.Errorf("edit edition %s: %w", d, ErrNoChange)
	}
	subject, preheader, err := ed.checkText()
	if err != nil {
		return nil, err
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("edit edition %s: begin: %w", d, err)
	}
	defer tx.Rollback()
	var (
		id       int64
		started  bool
		imported int
		order    pq.Int64Array
	)
	err = tx.QueryRowxContext(ctx, lockEditSQL, d).Scan(&id, &started, &imported, &order)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("edit edition %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("edit edition %s: lock: %w", d, err)
	}
	if started {
		return nil, sendStartedError{d, "edited"}
	}
	var newOrder pq.Int64Array
	if ed.Related != nil {
		if newOrder, err = reorder(shownRelated(order, imported), ed.Related); err != nil {
			return nil, err
		}
	}
	if _, err := tx.ExecContext(ctx, editSQL, id, subject, preheader, ed.Related != nil, newOrder); err != nil {
		return nil, fmt.Errorf("edit edition %s: %w", d, err)
	}
	st, err := scanStored(tx.QueryRowxContext(ctx, getByIDSQL, id))
	if err != nil {
		return nil, fmt.Errorf("edit edition %s: read back: %w", d, err)
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("edit edition %s: commit: %w", d, err)
	}
	return st, nil
}

// checkText checks the subject and preheader, trimmed of surrounding
// space, and returns them as editSQL's parameters: nil leaves a field as
// it is.
func (ed Edit) checkText() (subject, preheader sql.NullString, err error) {
	if ed.Subject != nil {
		v := strings.TrimSpace(*ed.Subject)
		if v == "" {
			return subject, preheader, &FieldError{"subject", "the subject line can't be empty"}
		}
		if err := checkEditLine("subject line", v, MaxSubject); err != nil {
			return subject, preheader, &FieldError{"subject", err.Error()}
		}
		subject = sql.NullString{String: v, Valid: true}
	}
	if ed.Preheader != nil {
		v := strings.TrimSpace(*ed.Preheader)
		if err := checkEditLine("preheader", v, MaxPreheader); err != nil {
			return subject, preheader, &FieldError{"preheader", err.Error()}
		}
		preheader = sql.NullString{String: v, Valid: true}
	}
	return subject, preheader, nil
}

// checkEditLine refuses what would break a header or the inbox's one line
// (control characters, line breaks) and what is over max characters.
func checkEditLine(what, s string, max int) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("the %s is not valid UTF-8", what)
	}
	for _, r := range s {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' {
			return fmt.Errorf("the %s can't contain line breaks or control characters (%U)", what, r)
		}
	}
	if n := utf8.RuneCountInString(s); n > max {
		return fmt.Errorf("the %s is %d characters; at most %d", what, n, max)
	}
	return nil
}

// shownRelated is the imported indexes of the related headlines shown, in
// order: the stored order, or all of them.
func shownRelated(order pq.Int64Array, imported int) []int64 {
	if order != nil {
		return order
	}
	all := make([]int64, imported)
	for i := range all {
		all[i] = int64(i)
	}
	return all
}

// reorder is the stored order for picks, indexes into shown.
func reorder(shown []int64, picks []int) (pq.Int64Array, error) {
	out := make(pq.Int64Array, 0, len(picks))
	seen := make(map[int]bool, len(picks))
	for _, p := range picks {
		switch {
		case p < 0 || p >= len(shown):
			return nil, &FieldError{"related", fmt.Sprintf("no headline %d: the edition shows %d, numbered from 0", p, len(shown))}
		case seen[p]:
			return nil, &FieldError{"related", fmt.Sprintf("headline %d is given twice", p)}
		}
		seen[p] = true
		out = append(out, shown[p])
	}
	return out, nil
}

// applyEdits makes e what the edits say: the related headlines of order,
// skipping any index the content lacks, and the subject and preheader.
func applyEdits(e *Edition, subject, preheader sql.NullString, order pq.Int64Array) {
	e.Edits = Edits{Subject: subject.String, Preheader: preheader.String}
	if order == nil {
		return
	}
	imported := e.Related
	e.Related = make([]Story, 0, len(order))
	e.Edits.Related = make([]int, 0, len(order))
	for _, i := range order {
		if i >= 0 && int(i) < len(imported) {
			e.Related = append(e.Related, imported[i])
			e.Edits.Related = append(e.Edits.Related, int(i))
		}
	}
}

// Edited tells whether the edition has an editor's edits, which a
// re-import with other content would clear.
func (st *Stored) Edited() bool { return st.EditedAt != nil }

// editColumns are the edits' columns, read with storedColumns.
const editColumns = `subject, preheader, related_order, edited_at`

// editScan are the destinations of editColumns.
type editScan struct {
	subject, preheader sql.NullString
	order              pq.Int64Array
	editedAt           sql.NullTime
}

func (es *editScan) dest() []any { return []any{&es.subject, &es.preheader, &es.order, &es.editedAt} }

// apply puts the scanned edits on st.
func (es *editScan) apply(st *Stored) {
	applyEdits(st.Edition, es.subject, es.preheader, es.order)
	if es.editedAt.Valid {
		st.EditedAt = &es.editedAt.Time
	}
}

// Changed is when the version's content last changed: its import, or the
// edit after it.
func (v Version) Changed() time.Time {
	if v.EditedAt != nil && v.EditedAt.After(v.ImportedAt) {
		return *v.EditedAt
	}
	return v.ImportedAt
}

// Same tells whether v and w are the same version of an edition's content.
func (v Version) Same(w Version) bool {
	return v.ID == w.ID && v.ImportedAt.Equal(w.ImportedAt) && v.Changed().Equal(w.Changed())
}
