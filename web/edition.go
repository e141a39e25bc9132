package web

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"sync"
	"time"

	"newsletter/edition"
	"newsletter/templates"
)

const (
	// DefaultMaxRenders bounds the requests that render at the same time
	// (a web edition not yet cached, the archive): each holds an edition
	// and its page in memory.
	DefaultMaxRenders = 4
	// renderWait is how long a request waits for its turn to render
	// before it is answered 503.
	renderWait = 10 * time.Second
	// maxCachedEditions bounds the web editions kept rendered; most
	// requests are for the last few days'.
	maxCachedEditions = 32
)

// renderedEdition is a web edition's page as served, with the version of
// the edition it was made from.
type renderedEdition struct {
	version edition.Version
	page    []byte
	etag    string
}

// editionCache keeps each published edition's web page, rendered once per
// version of the edition (id, import and edit time: a re-import or an edit
// makes a new one).
type editionCache struct {
	mu      sync.Mutex
	entries map[string]*renderedEdition // by date
}

func (c *editionCache) get(date string, v edition.Version) *renderedEdition {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[date]
	if e == nil || !e.version.Same(v) {
		return nil
	}
	return e
}

func (c *editionCache) put(date string, e *renderedEdition) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]*renderedEdition{}
	}
	if _, ok := c.entries[date]; !ok && len(c.entries) >= maxCachedEditions {
		for d := range c.entries { // any one: the map's order is random enough
			delete(c.entries, d)
			break
		}
	}
	c.entries[date] = e
}

// acquireRender waits for a turn to render; false (and the 503 already
// answered) when none came in time.
func (s *Server) acquireRender(w http.ResponseWriter, r *http.Request) bool {
	ctx, cancel := context.WithTimeout(r.Context(), renderWait)
	defer cancel()
	select {
	case s.renders <- struct{}{}:
		return true
	case <-ctx.Done():
		w.Header().Set("Retry-After", "10")
		s.page(w, http.StatusServiceUnavailable, "message.html", message("Busy", "Too many pages are being prepared just now. Please try again in a minute."))
		return false
	}
}

func (s *Server) releaseRender() { <-s.renders }

// webEdition is the "view in browser" page of an edition that has been
// sent: the email's content with nothing personal in it. Editions not yet
// sent are not public. The page is rendered once per version of the
// edition and served with an ETag and Last-Modified, so a conditional GET
// is answered 304 (RFC 9110 section 13.1).
func (s *Server) webEdition(w http.ResponseWriter, r *http.Request) {
	d, err := edition.ParseDate(r.PathValue("date"))
	if err != nil {
		s.page(w, http.StatusNotFound, "message.html", message("No such edition", "Edition addresses end in a date, like /editions/2025-11-13."))
		return
	}
	date := d.Format(edition.DateLayout)
	v, err := s.Editions.Version(r.Context(), d)
	if err != nil && !errors.Is(err, edition.ErrNotFound) {
		s.Log.Error("load edition", "date", date, "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return
	}
	if err != nil || v.SendStartedAt == nil {
		s.page(w, http.StatusNotFound, "message.html", message("No such edition", "There is no published edition for that date."))
		return
	}
	re := s.editions.get(date, v)
	if re == nil {
		if !s.acquireRender(w, r) {
			return
		}
		re, err = s.renderEdition(r.Context(), date, v)
		s.releaseRender()
		if err != nil {
			s.Log.Error("render web edition", "date", date, "err", err)
			s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
			return
		}
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "public, max-age=300")
	h.Set("ETag", re.etag)
	http.ServeContent(w, r, "", re.version.Changed(), bytes.NewReader(re.page))
}

// renderEdition renders date's web edition and caches it. A request that
// waited for its turn may find it rendered by the one before.
func (s *Server) renderEdition(ctx context.Context, date string, v edition.Version) (*renderedEdition, error) {
	if re := s.editions.get(date, v); re != nil {
		return re, nil
	}
	st, err := s.Editions.GetByID(ctx, v.ID)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if err := s.Templates.WebEdition(&buf, st.Edition, templates.EditionData{BaseURL: s.BaseURL}); err != nil {
		return nil, err
	}
	// The version read now, with the content: a re-import between the two
	// reads makes this page the newer version's.
	sum := sha256.Sum256(buf.Bytes())
	re := &renderedEdition{
		version: edition.Version{ID: st.ID, ImportedAt: st.ImportedAt, SendStartedAt: st.SendStartedAt, EditedAt: st.EditedAt},
		page:    buf.Bytes(),
		etag:    `"` + base64.RawURLEncoding.EncodeToString(sum[:16]) + `"`,
	}
	s.editions.put(date, re)
	return re, nil
}
