package api

import (
	"fmt"
	"net/http"
	"time"

	"newsletter/edition"
	"newsletter/newsroom"
)

// importFormats are the formats each Content-Type of POST /editions takes.
var importFormats = map[string][]edition.Format{
	"text/plain":           {edition.FormatText},
	"application/rss+xml":  {edition.FormatRSS},
	"application/atom+xml": {edition.FormatAtom},
	"application/json":     {edition.FormatJSON},
}

// importEdition is POST /editions: the edition in the body, or {"url": ...}
// to fetch it.
func (api *API) importEdition(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	mt := mediaType(r)
	want, ok := importFormats[mt]
	if !ok {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"want text/plain (a news page), application/rss+xml, application/atom+xml, or application/json (the edition, or {\"url\": ...})")
		return nil
	}
	body, err := readAll(r)
	if err != nil {
		return err
	}
	if mt == "application/json" {
		if url, isURL, err := urlForm(body); err != nil {
			return err
		} else if isURL {
			date, unchanged, err := api.Room.ImportURL(r.Context(), a, url, time.Time{})
			if err != nil {
				return err
			}
			writeJSON(w, http.StatusCreated, map[string]any{"date": date.Format(edition.DateLayout), "unchanged": unchanged})
			return nil
		}
	}
	im, err := api.Room.Import(r.Context(), a, bytesReader(body), edition.ParseOptions{}, "api", want...)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{
		"date": im.Edition.DateString(), "subject": im.Edition.Subject(), "format": im.Format,
		"saved": savedName[im.Saved], "paragraphs": im.Kept, "dropped_elements": im.Dropped, "related": len(im.Edition.Related),
		"edits_discarded": im.EditsDiscarded,
	})
	return nil
}

var savedName = map[edition.Saved]string{edition.Inserted: "inserted", edition.Replaced: "replaced", edition.Unchanged: "unchanged"}

// stored is the edition of the path's date.
func (api *API) stored(r *http.Request) (*edition.Stored, error) {
	date, err := edition.ParseDate(r.PathValue("date"))
	if err != nil {
		return nil, &newsroom.InvalidError{Field: "date", Err: err}
	}
	st, err := api.Room.Edition(r.Context(), date)
	if err != nil {
		return nil, fmt.Errorf("edition %s: %w", date.Format(edition.DateLayout), err)
	}
	return st, nil
}

func (api *API) listEditions(w http.ResponseWriter, r *http.Request, _ newsroom.Actor) error {
	list, err := api.Room.List(r.Context())
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"editions": list})
	return nil
}

func (api *API) getEdition(w http.ResponseWriter, r *http.Request, _ newsroom.Actor) error {
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	return api.writeEdition(w, r, st)
}

// previewTypes are the media types of the preview's formats.
var previewTypes = map[string]string{
	newsroom.PreviewHTML: "text/html; charset=utf-8",
	newsroom.PreviewText: "text/plain; charset=utf-8",
	newsroom.PreviewEML:  "message/rfc822",
}

func (api *API) preview(w http.ResponseWriter, r *http.Request, _ newsroom.Actor) error {
	format := r.URL.Query().Get("format")
	if format == "" {
		format = newsroom.PreviewHTML
	}
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	body, err := api.Room.Preview(st.Edition, format)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", previewTypes[format])
	// The edition's HTML is the site's: opened from here it runs nothing.
	w.Header().Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'")
	w.Write(body)
	return nil
}

func (api *API) testSend(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	var req struct {
		To []string `json:"to"`
	}
	if ok, err := readJSON(w, r, &req, false); !ok {
		return err
	}
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	replies, err := api.Room.TestSend(r.Context(), a, st.Edition, req.To, newsroom.TestOptions{MarkSubject: true})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"sent": len(replies), "replies": replies})
	return nil
}

// send is POST /editions/{date}/send: starts the send now, or schedules
// it when "at" is in the future; a time now or past sends now. Calling it
// again sends nobody twice; a new "at" replaces the schedule while the
// send has not started.
func (api *API) send(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	var req struct {
		At *string `json:"at"`
	}
	if ok, err := readJSON(w, r, &req, true); !ok {
		return err
	}
	at := time.Now()
	if req.At != nil {
		var err error
		if at, err = time.Parse(time.RFC3339, *req.At); err != nil {
			return &newsroom.InvalidError{Field: "at", Err: fmt.Errorf("want an RFC 3339 time, like 2025-11-13T06:00:00Z")}
		}
	}
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	queued, err := api.Room.ScheduleSend(r.Context(), a, st, at)
	if err != nil {
		return err
	}
	rep, err := api.Room.Status(r.Context(), st)
	if err != nil {
		return err
	}
	v := statusView(rep)
	v.Queued = &queued
	writeJSON(w, http.StatusAccepted, v)
	return nil
}

// cancel is POST /editions/{date}/cancel: a scheduled send is unscheduled,
// a send going on is stopped for good.
func (api *API) cancel(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	if _, err := api.Room.Cancel(r.Context(), a, st); err != nil {
		return err
	}
	return api.writeStatus(w, r, st)
}

// status is the answer of the status route: the report's counts in the
// API's names.
type status struct {
	Date        string     `json:"date"`
	State       string     `json:"state"`
	PauseReason string     `json:"pause_reason,omitempty"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	SendAt      *time.Time `json:"send_at,omitempty"` // scheduled for
	CancelledAt *time.Time `json:"cancelled_at,omitempty"`
	CancelledBy string     `json:"cancelled_by,omitempty"`
	Counts      struct {
		Total     int64 `json:"total"`
		Sent      int64 `json:"sent"`
		Failed    int64 `json:"failed"`
		Skipped   int64 `json:"skipped"`
		Queued    int64 `json:"queued"` // queued or being sent
		Cancelled int64 `json:"cancelled"`
	} `json:"counts"`
	PercentDone float64    `json:"percent_done"`
	Rate        float64    `json:"rate"` // messages a second over the last minute
	ETA         *time.Time `json:"eta"`
	Queued      *int64     `json:"newly_queued,omitempty"` // the send route's: queued by this call
}

func statusView(rep *newsroom.Report) *status {
	s := &status{Date: rep.Edition, State: rep.State, PauseReason: rep.PauseReason, StartedAt: rep.StartedAt, FinishedAt: rep.FinishedAt,
		SendAt: rep.SendAt, CancelledAt: rep.CancelledAt, CancelledBy: rep.CancelledBy,
		PercentDone: rep.PercentDone, Rate: rep.Rate, ETA: rep.EstimatedFinish}
	c := rep.Counts
	s.Counts.Total, s.Counts.Sent, s.Counts.Failed = c.Total, c.Sent, rep.Failed
	s.Counts.Skipped, s.Counts.Queued, s.Counts.Cancelled = c.Skipped, c.Queued+c.Sending, c.Cancelled
	return s
}

func (api *API) status(w http.ResponseWriter, r *http.Request, _ newsroom.Actor) error {
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	return api.writeStatus(w, r, st)
}

func (api *API) writeStatus(w http.ResponseWriter, r *http.Request, st *edition.Stored) error {
	rep, err := api.Room.Status(r.Context(), st)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, statusView(rep))
	return nil
}

func (api *API) pause(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	if err := api.Room.Pause(r.Context(), a, st); err != nil {
		return err
	}
	return api.writeStatus(w, r, st)
}

func (api *API) resume(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	if _, err := api.Room.Resume(r.Context(), a, st); err != nil {
		return err
	}
	return api.writeStatus(w, r, st)
}
