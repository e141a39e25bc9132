package subscribers

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"
)

// RowError is one bad row of an import, with its line number in the file.
type RowError struct {
	Line int
	Err  error
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %v", e.Line, e.Err) }

// ImportError lists every bad row of a file; nothing of the file was stored.
type ImportError struct {
	Rows []RowError
}

func (e *ImportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d bad row(s), nothing imported:", len(e.Rows))
	for _, r := range e.Rows {
		b.WriteString("\n  ")
		b.WriteString(r.Error())
	}
	return b.String()
}

// ImportResult counts what an import did.
type ImportResult struct {
	Rows    int // data rows read
	Added   int // new people
	Updated int // people already on the list whom the file changed
	// Unchanged counts people already on the list as the file has them:
	// nothing is written for them, not even a consent entry.
	Unchanged int
	// KeptUnsubscribed counts rows that would have confirmed someone who
	// had left (or bounced); they stay as they are.
	KeptUnsubscribed int
	// Suppressed counts rows whose address was erased on its owner's
	// request: they are left out, and the rest of the file is imported.
	Suppressed int
}

// maxRowErrors bounds the errors kept for one file: a file that is wrong
// throughout does not need all of them reported.
const maxRowErrors = 100

// importBatch is how many rows go in one multi-row upsert.
const importBatch = 500

// upsertRows inserts new people and updates existing ones without ever
// bringing back someone who left: an unsubscribed or bounced person keeps
// that status whatever the file says; a confirmed person is not set back to
// pending; a file may still record that someone unsubscribed. Rows whose
// address is suppressed (erased on request, under either hash of
// hashForms) are left out. A row that changes nothing updates nothing and
// gets no consent entry; every row that adds or changes someone gets one.
// The CTE reports what it did: a row the upsert inserted has xmax 0, one it
// updated has its own transaction's, and one it left alone isn't returned.
const upsertRows = `
WITH file AS (
    SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::bytea[], $7::bytea[])
        AS t(uuid, email, name, status, token_hash, email_hash, alt_hash)
), input AS (
    SELECT * FROM file f WHERE NOT EXISTS (SELECT 1 FROM suppressions p WHERE p.email_hash IN (f.email_hash, f.alt_hash))
), existing AS (
    SELECT lower(s.email) AS key, s.status FROM subscribers s
    WHERE lower(s.email) IN (SELECT lower(email) FROM input)
), upserted AS (
    INSERT INTO subscribers AS s (uuid, email, name, status, unsub_token_hash, confirmed_at, unsubscribed_at)
    SELECT uuid, email, name, status, token_hash,
           CASE WHEN status = 'confirmed' THEN now() END,
           CASE WHEN status = 'unsubscribed' THEN now() END
    FROM input
    ON CONFLICT ((lower(email))) DO UPDATE SET
        name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE s.name END,
        status = CASE
            WHEN s.status IN ('unsubscribed', 'bounced') THEN s.status
            WHEN excluded.status = 'unsubscribed' THEN 'unsubscribed'
            WHEN excluded.status = 'confirmed' THEN 'confirmed'
            ELSE s.status END,
        confirmed_at = CASE
            WHEN s.status = 'pending' AND excluded.status = 'confirmed' THEN now()
            ELSE s.confirmed_at END,
        unsubscribed_at = CASE
            WHEN s.status NOT IN ('unsubscribed', 'bounced') AND excluded.status = 'unsubscribed' THEN now()
            ELSE s.unsubscribed_at END,
        updated_at = now()
    WHERE (excluded.name <> '' AND excluded.name <> s.name)
       OR (s.status NOT IN ('unsubscribed', 'bounced') AND excluded.status <> s.status
           AND excluded.status IN ('unsubscribed', 'confirmed'))
    RETURNING s.id, lower(s.email) AS key, s.xmax = 0 AS inserted
), consented AS (
    INSERT INTO consents (subscriber_id, email_hash, action, method, detail)
    SELECT u.id, i.email_hash, 'import', 'import', 'status=' || i.status
    FROM upserted u JOIN input i ON lower(i.email) = u.key
)
SELECT
    (SELECT count(*) FROM upserted WHERE inserted) AS added,
    (SELECT count(*) FROM upserted WHERE NOT inserted) AS updated,
    (SELECT count(*) FROM existing e JOIN input i ON lower(i.email) = e.key
        WHERE e.status IN ('unsubscribed', 'bounced') AND i.status = 'confirmed') AS kept,
    (SELECT count(*) FROM file) - (SELECT count(*) FROM input) AS suppressed`

// Import reads a CSV file with a header row (email required; name and status
// optional, in any order) and stores it all or not at all: every bad row is
// reported with its line number, and then nothing is stored. defaultStatus
// applies to rows without a status.
func (s *Store) Import(ctx context.Context, r io.Reader, defaultStatus Status) (ImportResult, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cols, err := readHeader(cr)
	if err != nil {
		return ImportResult{}, err
	}
	tx, err := s.DB.BeginTxx(ctx, nil)
	if err != nil {
		return ImportResult{}, fmt.Errorf("import: begin: %w", err)
	}
	defer tx.Rollback()
	im := &importer{store: s, tx: tx, cols: cols, defaultStatus: defaultStatus, seen: map[string]int{}}
	if err := im.readRows(ctx, cr); err != nil {
		return im.res, err
	}
	if err := im.flush(ctx); err != nil {
		return im.res, err
	}
	if len(im.bad) > 0 {
		return ImportResult{}, &ImportError{Rows: im.bad}
	}
	if im.res.Rows == 0 {
		return im.res, fmt.Errorf("import: the file has a header but no rows")
	}
	if err := tx.Commit(); err != nil {
		return ImportResult{}, fmt.Errorf("import: commit: %w", err)
	}
	return im.res, nil
}

// readHeader reads the header row and returns each column's index.
func readHeader(cr *csv.Reader) (map[string]int, error) {
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("import: the file is empty; want a CSV with a header row naming an email column")
	}
	if err != nil {
		return nil, fmt.Errorf("import: read header: %w", err)
	}
	cols := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch h {
		case "email", "name", "status":
			if _, dup := cols[h]; dup {
				return nil, fmt.Errorf("import: the header names column %q twice", h)
			}
			cols[h] = i
		default:
			return nil, fmt.Errorf("import: unknown column %q in the header; the columns are email (required), name and status", h)
		}
	}
	if _, ok := cols["email"]; !ok {
		return nil, fmt.Errorf("import: the header row has no email column (found %q)", strings.Join(header, ","))
	}
	return cols, nil
}

// importer is one import under way: the rows read so far, in batches
// stored as they fill while the file has no bad row.
type importer struct {
	store         *Store
	tx            *sqlx.Tx
	cols          map[string]int
	defaultStatus Status
	res           ImportResult
	bad           []RowError
	seen          map[string]int // lower-cased address -> line, to catch duplicates in the file
	batch         importRows
}

// readRows reads the data rows to the end of the file, or until
// maxRowErrors bad ones.
func (im *importer) readRows(ctx context.Context, cr *csv.Reader) error {
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			var pe *csv.ParseError
			if !errors.As(err, &pe) {
				return fmt.Errorf("import: read: %w", err)
			}
			if im.reject(pe.Line, pe.Err) {
				return nil
			}
			continue
		}
		// After the error check: FieldPos panics when the read failed.
		line, _ := cr.FieldPos(0)
		im.res.Rows++
		email, name, status, err := im.row(rec, line)
		if err != nil {
			if im.reject(line, err) {
				return nil
			}
			continue
		}
		id := newUUID()
		keys := im.store.suppressionKeys(email)
		im.batch.add(id, email, name, status, HashToken(im.store.Tokens.Unsubscribe(id)), keys[0], keys[len(keys)-1])
		if len(im.batch.email) >= importBatch {
			if err := im.flush(ctx); err != nil {
				return err
			}
		}
	}
}

// row parses a data row (see parseRow), refusing an address the file
// already had.
func (im *importer) row(rec []string, line int) (email, name string, status Status, err error) {
	email, name, status, err = parseRow(rec, im.cols, im.defaultStatus)
	if err != nil {
		return "", "", "", err
	}
	key := strings.ToLower(email)
	if prev, dup := im.seen[key]; dup {
		return "", "", "", fmt.Errorf("%s is already on line %d", email, prev)
	}
	im.seen[key] = line
	return email, name, status, nil
}

// reject keeps a bad row, and says when there are enough to stop reading.
func (im *importer) reject(line int, err error) (enough bool) {
	im.bad = append(im.bad, RowError{Line: line, Err: err})
	return len(im.bad) >= maxRowErrors
}

// flush stores the batch, unless the file has a bad row (then nothing will
// be stored, and the batch is dropped).
func (im *importer) flush(ctx context.Context) error {
	defer func() { im.batch = importRows{} }()
	if len(im.batch.email) == 0 || len(im.bad) > 0 {
		return nil
	}
	var c struct {
		Added      int `db:"added"`
		Updated    int `db:"updated"`
		Kept       int `db:"kept"`
		Suppressed int `db:"suppressed"`
	}
	if err := im.batch.upsert(ctx, im.tx, &c); err != nil {
		return fmt.Errorf("import: store rows: %w", err)
	}
	im.res.Added += c.Added
	im.res.Updated += c.Updated
	im.res.KeptUnsubscribed += c.Kept
	im.res.Suppressed += c.Suppressed
	im.res.Unchanged += len(im.batch.email) - c.Added - c.Updated - c.Suppressed
	return nil
}

func parseRow(rec []string, cols map[string]int, defaultStatus Status) (email, name string, status Status, err error) {
	field := func(c string) string {
		i, ok := cols[c]
		if !ok || i >= len(rec) {
			return ""
		}
		return strings.TrimSpace(rec[i])
	}
	if email, err = NormalizeAddress(field("email")); err != nil {
		return "", "", "", err
	}
	raw := field("name")
	if strings.ContainsAny(raw, "\r\n") {
		return "", "", "", fmt.Errorf("the name contains a line break")
	}
	if err := CheckName(raw); err != nil {
		return "", "", "", err
	}
	name = CleanName(raw)
	status = defaultStatus
	if st := field("status"); st != "" {
		if status, err = ParseStatus(strings.ToLower(st)); err != nil {
			return "", "", "", err
		}
	}
	return email, name, status, nil
}

// importRows is one batch in the column-wise shape unnest() takes.
type importRows struct {
	uuid, email, name, status []string
	hash, emailHash, altHash  [][]byte
}

func (b *importRows) add(uuid, email, name string, status Status, hash, emailHash, altHash []byte) {
	b.uuid = append(b.uuid, uuid)
	b.email = append(b.email, email)
	b.name = append(b.name, name)
	b.status = append(b.status, string(status))
	b.hash = append(b.hash, hash)
	b.emailHash = append(b.emailHash, emailHash)
	b.altHash = append(b.altHash, altHash)
}

func (b *importRows) upsert(ctx context.Context, tx *sqlx.Tx, dst any) error {
	return tx.GetContext(ctx, dst, upsertRows, pq.Array(b.uuid), pq.Array(b.email), pq.Array(b.name), pq.Array(b.status), pq.ByteaArray(b.hash), pq.ByteaArray(b.emailHash), pq.ByteaArray(b.altHash))
}
