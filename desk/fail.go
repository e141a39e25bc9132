package desk

import (
	"context"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/subscribers"
)

// problem is the status of an error from the newsroom, by what it is.
func problem(err error) int {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, newsroom.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, newsroom.ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, edition.ErrNotFound), errors.Is(err, subscribers.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, newsroom.ErrConflict), errors.Is(err, edition.ErrSendStarted), errors.Is(err, edition.ErrRepeatedLead),
		errors.Is(err, subscribers.ErrExists), errors.Is(err, subscribers.ErrSuppressed), errors.Is(err, delivery.ErrPruned):
		return http.StatusConflict
	case errors.Is(err, edition.ErrTooLarge), errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge
	case errors.Is(err, newsroom.ErrTooMany):
		return http.StatusTooManyRequests
	case errors.Is(err, newsroom.ErrFetch):
		return http.StatusBadGateway
	}
	return http.StatusInternalServerError
}

// fail answers err with a page saying what went wrong. What the server got
// wrong is logged, and the editor told only that: its text may name the
// database's internals.
func (d *Desk) fail(w http.ResponseWriter, r *http.Request, s *session, err error) {
	status := problem(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		if !errors.Is(err, context.Canceled) {
			d.Log.Error("desk", "route", r.Pattern, "err", err)
		}
		msg = "Something went wrong on the server; it is logged."
	}
	d.errorPage(w, r, s, status, msg)
}

var funcs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			return v.Format("2 Jan 2006 15:04 MST")
		case *time.Time:
			if v != nil {
				return v.Format("2 Jan 2006 15:04 MST")
			}
		}
		return ""
	},
	"kb":  func(n int) string { return fmt.Sprintf("%.1f KB", float64(n)/1024) },
	"add": func(a, b int64) int64 { return a + b },
	// dict passes named values to a sub-template.
	"dict": func(kv ...any) map[string]any {
		m := make(map[string]any, len(kv)/2)
		for i := 0; i+1 < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	},
}
