// Package newsroom holds what an editor does to an edition and to the list:
// import, preview, test send, send, status, pause and resume, find, add and
// unsubscribe a person. The command line, the JSON API and the desk call the
// same operations, so each door follows the same rules and every change
// leaves the same audit entry.
package newsroom

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/editors"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/templates"
)

// Room is the newsroom of one process. Set the fields, then call its
// methods from any goroutine.
type Room struct {
	DB          *sqlx.DB
	Editions    *edition.Store
	Queue       *delivery.Queue
	Subscribers *subscribers.Store
	// Render renders an edition's mail once (templates.Set.RenderEdition
	// with the newsletter's data).
	Render func(*edition.Edition) (*templates.Rendered, error)
	// Compose renders an edition once into what builds each recipient's
	// message, as a send does.
	Compose func(*edition.Edition) (*delivery.Composer, error)
	// Fetch imports the edition of day from url and stores it (the
	// conditional GET of `edition import URL`); unchanged: nothing stored
	// changed.
	Fetch func(ctx context.Context, url string, day time.Time) (date time.Time, unchanged bool, err error)
	SMTP  smtpclient.Config // where test copies go
	// FromDomain is the right-hand side of the Message-IDs.
	FromDomain string
	BaseURL    string
	// SendWindow is how long a send may take (NEWSLETTER_SEND_WINDOW).
	SendWindow time.Duration
	Location   *time.Location // NEWSLETTER_TZ, for "today"
	Log        *slog.Logger

	testMu   sync.Mutex
	testSent map[string][]time.Time // per actor, the test copies of the last TestWindow
}

// Actor is who does something: the audit record names them.
type Actor struct {
	Name string       // an editor's address, or editors.CLI
	Role editors.Role // what they may do
	Via  string       // how: "token NAME", "" on the command line
	IP   string       // the client's address, "" when there is none
}

// CLI is whoever runs the binary with the database's credentials.
var CLI = Actor{Name: editors.CLI, Role: editors.Admin}

var (
	// ErrForbidden: the actor's role may not do that.
	ErrForbidden = errors.New("an admin's account is needed for that")
	// ErrConflict: the edition's state does not allow it.
	ErrConflict = errors.New("conflict")
	// ErrTooMany: too many test copies lately.
	ErrTooMany = errors.New("too many test copies: wait a minute")
	// ErrInvalid: the request is malformed; the message names the field.
	ErrInvalid = errors.New("invalid")
	// ErrFetch: an edition could not be fetched from its URL, or what was
	// fetched was refused.
	ErrFetch = errors.New("import from the URL failed")
)

// InvalidError is a bad value of a named field; it is ErrInvalid.
type InvalidError struct {
	Field string // the field of the request, or "body" for the whole of it
	Err   error
}

func (e *InvalidError) Error() string {
	if e.Field == "body" {
		return e.Err.Error()
	}
	return e.Field + ": " + e.Err.Error()
}
func (e *InvalidError) Unwrap() error        { return e.Err }
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, args ...any) error {
	return &InvalidError{Field: field, Err: fmt.Errorf(format, args...)}
}

// audit records what the actor did.
func (r *Room) audit(ctx context.Context, a Actor, action, target, detail string) error {
	if a.Via != "" {
		if detail != "" {
			detail = a.Via + "; " + detail
		} else {
			detail = a.Via
		}
	}
	return editors.Audit(ctx, r.DB, a.Name, action, target, detail, a.IP)
}

// Today is today's civil date in the newsletter's time zone.
func (r *Room) Today() time.Time {
	loc := r.Location
	if loc == nil {
		loc = time.UTC
	}
	now := time.Now().In(loc)
	return time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, time.UTC)
}

// Imported is what an import did.
type Imported struct {
	*edition.Imported
	Saved edition.Saved
	// EditsDiscarded: the content replaced had an editor's edits, which
	// went with it (edition.Edits).
	EditsDiscarded bool
}

// Import reads an edition (page text, RSS or Atom, or JSON) and stores it.
// It is refused, and nothing stored changes, when the input or the mail it
// makes is over a limit (edition/limits.go), or the edition's send started
// and the content differs.
//
// want, when given, are the formats the caller declared the input is in;
// one of another format is refused as invalid.
func (r *Room) Import(ctx context.Context, a Actor, in io.Reader, opts edition.ParseOptions, from string, want ...edition.Format) (*Imported, error) {
	im, err := edition.Read(in, opts)
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, edition.ErrTooLarge) || errors.As(err, &tooBig):
		return nil, err
	case err != nil:
		return nil, &InvalidError{Field: "body", Err: err}
	case len(want) > 0 && !slices.Contains(want, im.Format):
		return nil, invalid("body", "the body is %s, not the %s its Content-Type says", im.Format, want[0])
	}
	if err := r.CheckRendered(im.Edition); err != nil {
		return nil, err
	}
	edited, err := r.edited(ctx, im.Edition.DateString())
	if err != nil {
		return nil, err
	}
	_, saved, err := r.Editions.Save(ctx, im.Edition, im.Format)
	if err != nil {
		return nil, err
	}
	out := &Imported{Imported: im, Saved: saved, EditsDiscarded: edited && saved == edition.Replaced}
	if saved != edition.Unchanged {
		detail := fmt.Sprintf("%s from %s", im.Format, from)
		if out.EditsDiscarded {
			detail += "; the editor's edits of the replaced content were discarded"
		}
		if err := r.audit(ctx, a, "import", im.Edition.DateString(), detail); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// ImportURL fetches the edition of day (today when zero) from url and
// stores it, as `edition import URL` does.
func (r *Room) ImportURL(ctx context.Context, a Actor, url string, day time.Time) (time.Time, bool, error) {
	if day.IsZero() {
		day = r.Today()
	}
	date, unchanged, err := r.Fetch(ctx, url, day)
	if err != nil {
		return date, false, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	if unchanged {
		return date, true, nil
	}
	return date, false, r.audit(ctx, a, "import", date.Format(edition.DateLayout), "url "+url)
}

// CheckRendered refuses an edition whose mail's HTML is over
// edition.MaxRenderedHTML.
func (r *Room) CheckRendered(ed *edition.Edition) error {
	rendered, err := r.Render(ed)
	if err != nil {
		return fmt.Errorf("render edition %s: %w", ed.DateString(), err)
	}
	html, _ := rendered.Parts()
	if n := PartSize(html); n > edition.MaxRenderedHTML {
		return edition.RenderedTooLarge(n)
	}
	return nil
}

// PartSize is the size of a rendered part without its recipient fields,
// which are short.
func PartSize(p templates.Part) int {
	n := 0
	for _, l := range p.Lits() {
		n += len(l)
	}
	return n
}

// Edition is the stored edition of date, or edition.ErrNotFound.
func (r *Room) Edition(ctx context.Context, date time.Time) (*edition.Stored, error) {
	return r.Editions.Get(ctx, date)
}

// Entry is an edition in the list, with its send's counts; an edition whose
// send never started has none to count.
type Entry struct {
	Date      string     `json:"date"`
	Subject   string     `json:"subject"`
	State     string     `json:"state"`
	StartedAt *time.Time `json:"send_started_at,omitempty"`
	Sent      int64      `json:"sent"`
	Failed    int64      `json:"failed"`
	Pending   int64      `json:"pending"` // queued or being sent
	Skipped   int64      `json:"skipped"`
	Cancelled int64      `json:"cancelled"`
}

// List lists the editions, newest first, with their counts.
func (r *Room) List(ctx context.Context) ([]Entry, error) {
	sums, err := r.Editions.List(ctx)
	if err != nil {
		return nil, err
	}
	out := []Entry{}
	for _, s := range sums {
		e := Entry{Date: s.Date.Format(edition.DateLayout), Subject: s.Subject, State: s.State, StartedAt: s.SendStartedAt}
		if s.SendStartedAt != nil {
			c, err := r.Queue.Count(ctx, s.ID)
			if err != nil {
				return nil, fmt.Errorf("edition %s: %w", e.Date, err)
			}
			e.Sent, e.Failed, e.Pending, e.Skipped, e.Cancelled = c.Sent, c.Failed, c.Queued+c.Sending, c.Skipped, c.Cancelled
		}
		out = append(out, e)
	}
	return out, nil
}
