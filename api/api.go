// Package api is the JSON API under /api/v1: a thin door onto the
// newsroom's operations (package newsroom), which the command line and the
// desk share. Bearer tokens only (RFC 6750), no cookies; JSON in and out;
// errors as {"error": {"code": ..., "message": ...}} with a matching status.
package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"strings"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/editors"
	"newsletter/newsroom"
	"newsletter/subscribers"
)

// Prefix is where the API is mounted.
const Prefix = "/api/v1"

// API serves the JSON API. Set the fields, then call Handler.
type API struct {
	Room     *newsroom.Room
	Accounts *editors.Store
	Log      *slog.Logger
}

// route is one operation: its method and path (net/http's pattern syntax,
// which is also OpenAPI's for path parameters), whether only an admin may
// call it, and its handler. The OpenAPI document lists the same routes
// (TestOpenAPIMatchesRoutes).
type route struct {
	method, path string
	admin        bool
	public       bool // no token needed
	handle       func(*API, http.ResponseWriter, *http.Request, newsroom.Actor) error
}

var routes = []route{
	{method: "GET", path: "/openapi.json", public: true, handle: (*API).openAPI},
	{method: "POST", path: "/editions", handle: (*API).importEdition},
	{method: "GET", path: "/editions", handle: (*API).listEditions},
	{method: "GET", path: "/editions/{date}", handle: (*API).getEdition},
	{method: "PATCH", path: "/editions/{date}", handle: (*API).editEdition},
	{method: "GET", path: "/editions/{date}/preview", handle: (*API).preview},
	{method: "POST", path: "/editions/{date}/test", handle: (*API).testSend},
	{method: "POST", path: "/editions/{date}/send", handle: (*API).send},
	{method: "GET", path: "/editions/{date}/status", handle: (*API).status},
	{method: "POST", path: "/editions/{date}/pause", handle: (*API).pause},
	{method: "POST", path: "/editions/{date}/resume", handle: (*API).resume},
	{method: "POST", path: "/editions/{date}/cancel", handle: (*API).cancel},
	{method: "GET", path: "/subscribers", handle: (*API).findSubscriber},
	{method: "POST", path: "/subscribers", admin: true, handle: (*API).addSubscriber},
	{method: "POST", path: "/subscribers/{email}/unsubscribe", admin: true, handle: (*API).unsubscribe},
}

// Handler routes the API; mount it at Prefix+"/".
func (api *API) Handler() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range routes {
		mux.HandleFunc(rt.method+" "+Prefix+rt.path, api.serve(rt))
	}
	mux.HandleFunc(Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such route: see "+Prefix+"/openapi.json")
	})
	return mux
}

// serve authenticates the request, checks the role and runs the route.
func (api *API) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		var actor newsroom.Actor
		if !rt.public {
			var ok bool
			if actor, ok = api.authenticate(w, r); !ok {
				return
			}
			if rt.admin && actor.Role != editors.Admin {
				writeError(w, http.StatusForbidden, "forbidden", "this route is for admins; the token's account is an editor")
				return
			}
		}
		// One bound for every body: the largest is an edition.
		r.Body = http.MaxBytesReader(w, r.Body, edition.MaxInputBytes+1)
		if err := rt.handle(api, w, r, actor); err != nil {
			api.fail(w, r, err)
		}
	}
}

// authenticate finds the account of the request's bearer token (RFC 6750
// section 2.1), or answers 401 with a WWW-Authenticate challenge (section 3).
func (api *API) authenticate(w http.ResponseWriter, r *http.Request) (newsroom.Actor, bool) {
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="newsletter"`)
		writeError(w, http.StatusUnauthorized, "unauthorized", "send an API token: Authorization: Bearer TOKEN (newsletter editors token EMAIL --name NAME)")
		return newsroom.Actor{}, false
	}
	acct, name, err := api.Accounts.ByToken(r.Context(), strings.TrimSpace(token))
	if errors.Is(err, editors.ErrBadToken) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="newsletter", error="invalid_token"`)
		writeError(w, http.StatusUnauthorized, "invalid_token", "the token is unknown or revoked")
		return newsroom.Actor{}, false
	}
	if err != nil {
		api.fail(w, r, err)
		return newsroom.Actor{}, false
	}
	ip, _, _ := net.SplitHostPort(r.RemoteAddr)
	return newsroom.Actor{Name: acct.Email, Role: acct.Role, Via: "token " + name, IP: ip}, true
}

// notYet answers a route whose operation needs schema work still to come.
func notYet(what string) func(*API, http.ResponseWriter, *http.Request, newsroom.Actor) error {
	return func(_ *API, w http.ResponseWriter, _ *http.Request, _ newsroom.Actor) error {
		writeError(w, http.StatusNotImplemented, "not_implemented", what+" comes with the desk; not yet available")
		return nil
	}
}

// problem is an error's status and code, by what it is.
func problem(err error) (int, string) {
	var tooBig *http.MaxBytesError
	switch {
	case errors.Is(err, newsroom.ErrInvalid):
		return http.StatusBadRequest, "invalid"
	case errors.Is(err, newsroom.ErrForbidden):
		return http.StatusForbidden, "forbidden"
	case errors.Is(err, edition.ErrNotFound), errors.Is(err, subscribers.ErrNotFound):
		return http.StatusNotFound, "not_found"
	case errors.Is(err, newsroom.ErrConflict), errors.Is(err, edition.ErrSendStarted), errors.Is(err, edition.ErrRepeatedLead),
		errors.Is(err, subscribers.ErrExists), errors.Is(err, subscribers.ErrSuppressed), errors.Is(err, delivery.ErrPruned):
		return http.StatusConflict, "conflict"
	case errors.Is(err, edition.ErrTooLarge), errors.As(err, &tooBig):
		return http.StatusRequestEntityTooLarge, "too_large"
	case errors.Is(err, newsroom.ErrTooMany):
		return http.StatusTooManyRequests, "too_many"
	case errors.Is(err, newsroom.ErrFetch):
		return http.StatusBadGateway, "fetch_failed"
	}
	return http.StatusInternalServerError, "internal"
}

// fail answers err. What the server got wrong is logged, and the client
// told only that: its text may name the database's internals.
func (api *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, code := problem(err)
	msg := err.Error()
	if status == http.StatusInternalServerError {
		if !errors.Is(err, context.Canceled) {
			api.Log.Error("api", "route", r.Pattern, "err", err)
		}
		msg = "something went wrong on the server; it is logged"
	}
	e := errorBody{Code: code, Message: msg}
	// A bad value names its field, so a form can show the error next to it.
	if inv := (*newsroom.InvalidError)(nil); errors.As(err, &inv) {
		e.Field = inv.Field
	}
	writeJSON(w, status, map[string]errorBody{"error": e})
}

type errorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Field   string `json:"field,omitempty"`
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]errorBody{"error": {Code: code, Message: msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

// mediaType is the request's media type, lowercased, without parameters.
func mediaType(r *http.Request) string {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return ""
	}
	return mt
}

// errMediaType is a body of a type the route does not take.
type errMediaType struct{ want string }

func (e errMediaType) Error() string { return "want a body of Content-Type " + e.want }

// readJSON decodes the JSON body into dst; an empty body leaves dst as it
// is when optional. Unknown fields are refused, so a misspelt one is not
// silently ignored.
func readJSON(w http.ResponseWriter, r *http.Request, dst any, optional bool) (ok bool, err error) {
	if optional && r.ContentLength == 0 {
		return true, nil
	}
	if mediaType(r) != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type", errMediaType{"application/json"}.Error())
		return false, nil
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return false, err
		}
		return false, &newsroom.InvalidError{Field: "body", Err: fmt.Errorf("not the JSON this route takes: %v", err)}
	}
	return true, nil
}
