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

// Source is where a fetched edition came from: the URL and what the
// server said identifies the page (edition_sources, migration 0012).
type Source struct {
	URL string
	Validators
}

// ErrRepeatedLead matches the error of SaveFetched for a lead story the
// same as the previous edition's.
var ErrRepeatedLead = errors.New("lead story repeats the previous edition's")

type repeatedLeadError struct{ date, previous string }

func (e repeatedLeadError) Error() string {
	return "the lead story of " + e.date + " is the one the edition of " + e.previous +
		" already had: the site has not published a new one yet"
}

func (e repeatedLeadError) Is(target error) bool { return target == ErrRepeatedLead }

const (
	// The validators are for date's edition only, and only while it
	// exists: a fetch for another day reads the whole page.
	validatorsSQL = `SELECT coalesce(s.etag, ''), coalesce(s.last_modified, '') FROM edition_sources s
		JOIN editions e ON e.date = s.edition_date WHERE s.url = $1 AND s.edition_date = $2::date`
	recordSourceSQL = `INSERT INTO edition_sources (url, edition_date, etag, last_modified)
		VALUES ($1, $2::date, nullif($3, ''), nullif($4, ''))
		ON CONFLICT (url) DO UPDATE SET edition_date = excluded.edition_date, etag = excluded.etag,
			last_modified = excluded.last_modified, fetched_at = now()`
	previousLeadSQL = `SELECT date::text, content->'lead' = $2::jsonb FROM editions
		WHERE date < $1::date ORDER BY date DESC LIMIT 1`
)

// Validators returns what the last fetch of url answered, if that fetch
// stored date's edition and it is still there; zero otherwise, for an
// unconditional fetch.
func (s *Store) Validators(ctx context.Context, url string, date time.Time) (Validators, error) {
	var v Validators
	err := s.DB.QueryRowxContext(ctx, validatorsSQL, url, date.Format(DateLayout)).Scan(&v.ETag, &v.LastModified)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return v, fmt.Errorf("read the validators of %s: %w", url, err)
	}
	return v, nil
}

// SaveFetched is Save for an edition fetched from src: in the same
// transaction it refuses a lead story identical to the previous edition's
// (ErrRepeatedLead: a site that has not published today's edition yet
// still shows yesterday's) and records src's validators for the next
// fetch of date.
func (s *Store) SaveFetched(ctx context.Context, e *Edition, f Format, src Source) (id int64, saved Saved, err error) {
	return s.save(ctx, e, f, &src)
}

func refuseRepeatedLead(ctx context.Context, tx *sqlx.Tx, e *Edition) error {
	lead, err := json.Marshal(e.Lead)
	if err != nil {
		return fmt.Errorf("save edition %s: encode its lead story: %w", e.DateString(), err)
	}
	var (
		previous string
		same     bool
	)
	err = tx.QueryRowxContext(ctx, previousLeadSQL, e.DateString(), string(lead)).Scan(&previous, &same)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil
	case err != nil:
		return fmt.Errorf("save edition %s: read the previous edition: %w", e.DateString(), err)
	case same:
		return repeatedLeadError{e.DateString(), previous}
	}
	return nil
}

func (src *Source) record(ctx context.Context, tx *sqlx.Tx, date string) error {
	if _, err := tx.ExecContext(ctx, recordSourceSQL, src.URL, date, src.ETag, src.LastModified); err != nil {
		return fmt.Errorf("save edition %s: record its source %s: %w", date, src.URL, err)
	}
	return nil
}
