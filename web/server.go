// Package web is the HTTP server of the reader pages: sign-up with double
// opt-in, the confirmation links, the one-click unsubscribe endpoint every
// email links to (where a reader also resubscribes and changes their name
// or address), the web edition and its archive, and health checks.
package web

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/mail"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/jmoiron/sqlx"

	"newsletter/edition"
	"newsletter/mailer"
	"newsletter/subscribers"
	"newsletter/templates"
)

// Server serves the reader pages. Set the fields, then call Handler once.
type Server struct {
	DB          *sqlx.DB
	Subscribers *subscribers.Store
	Editions    *edition.Store
	Templates   *templates.Set
	SiteName    string
	BaseURL     string // public address of these pages, for absolute links
	Log         *slog.Logger

	// Outbox sends the confirmation emails, from From.
	Outbox *Outbox
	From   *mail.Address
	// DKIM signs the confirmation mails when set.
	DKIM *mailer.DKIM
	// TrustedProxies are the reverse proxies whose X-Forwarded-For names
	// the client (NEWSLETTER_TRUSTED_PROXIES); from anyone else the
	// header is ignored.
	TrustedProxies []netip.Prefix
	// IPLimit limits, per client, the forms that send email; the zero
	// value is DefaultIPLimit.
	IPLimit RateLimit
	// MaxRenders bounds the requests rendering at once (see
	// DefaultMaxRenders, the value for 0).
	MaxRenders int
	// Counts counts the sign-ups, confirmations and unsubscribes (nil:
	// counted for nobody).
	Counts *Counts
	// API, when set, serves /api/v1/ (package api).
	API http.Handler

	once     sync.Once
	basePath string // BaseURL's path, which prefixes every link and form
	csrf     *csrf
	https    bool // BaseURL is https: browsers are told to keep to it
	limiter  *ipLimiter
	now      func() time.Time
	renders  chan struct{} // a semaphore: one token per render under way
	editions editionCache
}

func (s *Server) init() {
	s.now = time.Now
	if s.Counts == nil {
		s.Counts = new(Counts)
	}
	secure := false
	if u, err := url.Parse(s.BaseURL); err == nil {
		s.basePath = strings.TrimRight(u.Path, "/")
		secure = u.Scheme == "https"
	}
	s.https = secure
	origin := http.NewCrossOriginProtection()
	if u, err := url.Parse(s.BaseURL); err == nil && u.Host != "" {
		// The pages' public origin, for when a proxy in front changes
		// the Host header; a malformed one is simply not added.
		_ = origin.AddTrustedOrigin(u.Scheme + "://" + u.Host)
	}
	path := s.basePath + "/"
	s.csrf = &csrf{key: s.Subscribers.Tokens.Derive("csrf"), secure: secure, path: path, origin: origin}
	s.limiter = newIPLimiter(s.IPLimit)
	n := s.MaxRenders
	if n <= 0 {
		n = DefaultMaxRenders
	}
	s.renders = make(chan struct{}, n)
}

// Handler routes the reader pages. Routes use the standard library's
// pattern syntax; logs name the pattern, never the path, which holds tokens.
func (s *Server) Handler() http.Handler {
	s.once.Do(s.init)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.HandleFunc("GET /{$}", s.subscribeForm)
	mux.HandleFunc("GET /subscribe", s.subscribeForm)
	mux.HandleFunc("POST /subscribe", s.subscribe)
	mux.HandleFunc("GET /confirm/{token}", s.confirmPage)
	mux.HandleFunc("POST /confirm/{token}", s.confirm)
	mux.HandleFunc("GET /u/{token}", s.unsubscribePage)
	mux.HandleFunc("POST /u/{token}", s.unsubscribe)
	mux.HandleFunc("POST /u/{token}/resubscribe", s.resubscribe)
	mux.HandleFunc("POST /u/{token}/name", s.changeName)
	mux.HandleFunc("POST /u/{token}/email", s.changeEmail)
	mux.HandleFunc("GET /editions", s.archive)
	mux.HandleFunc("GET /editions/{date}", s.webEdition)
	if s.API != nil {
		mux.Handle("/api/v1/", s.API)
	}
	return s.logRequests(securityHeaders(mux, s.https))
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.DB.PingContext(ctx); err != nil {
		s.Log.Warn("readyz: database unreachable", "err", err)
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
		return
	}
	w.Write([]byte("ok\n"))
}

// unsubscribePage answers the GET of a List-Unsubscribe link with a page
// whose button unsubscribes, and where a reader manages the subscription.
// The GET itself changes nothing: link scanners and mail-client previews
// fetch links nobody clicked.
func (s *Server) unsubscribePage(w http.ResponseWriter, r *http.Request) {
	sub, ok := s.subscriber(w, r)
	if !ok {
		return
	}
	s.managePage(w, r, http.StatusOK, sub, s.csrf.token(w, r), templates.UnsubscribePage{})
}

// managePage renders the subscription's page; p brings what the handler
// has to add (a notice, an error, Done).
func (s *Server) managePage(w http.ResponseWriter, r *http.Request, status int, sub *subscribers.Subscriber, csrfToken string, p templates.UnsubscribePage) {
	link := s.basePath + "/u/" + r.PathValue("token")
	p.SiteName = s.SiteName
	p.Action = link
	p.ManageURL = link
	p.ResubscribeAction = link + "/resubscribe"
	p.NameAction = link + "/name"
	p.EmailAction = link + "/email"
	p.CSRF = csrfToken
	// The page is reachable by whoever holds the link: it shows the
	// address masked, never whole.
	p.MaskedEmail = templates.MaskEmail(sub.Email)
	p.Left = sub.Status == subscribers.Unsubscribed || sub.Status == subscribers.Bounced
	p.Pending = sub.Status == subscribers.Pending
	if p.Name == "" && p.NameError == "" {
		p.Name = sub.Name
	}
	s.page(w, status, "unsubscribe.html", p)
}

// unsubscribe is the RFC 8058 one-click endpoint, also used by the page's
// button. RFC 8058 section 3.1: the POST carries List-Unsubscribe=One-Click
// and no cookie; it must work without any further step, so it answers 200
// with no redirect (section 3.2: no redirect-based confirmation), no CSRF
// check and no cookie.
func (s *Server) unsubscribe(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseMultipartForm(64 << 10); err != nil && !errors.Is(err, http.ErrNotMultipart) {
		s.page(w, http.StatusBadRequest, "message.html", message("Bad request", "The form could not be read."))
		return
	}
	if r.PostFormValue("List-Unsubscribe") != "One-Click" {
		s.page(w, http.StatusBadRequest, "message.html", message("Bad request", "This address unsubscribes with a one-click POST (RFC 8058)."))
		return
	}
	sub, ok := s.subscriber(w, r)
	if !ok {
		return
	}
	changed, err := s.Subscribers.UnsubscribeBy(r.Context(), sub, s.source(r, subscribers.MethodOneClick))
	if err != nil {
		s.Log.Error("unsubscribe failed", "subscriber", sub.ID, "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "We could not unsubscribe you just now. Please try again in a minute."))
		return
	}
	s.Log.Info("unsubscribed", "subscriber", sub.ID, "how", "one-click", "changed", changed)
	// The page's button posts here too; a browser that came from the page
	// has its CSRF cookie, a mailbox provider has none.
	csrfToken := s.csrf.existingToken(r)
	switch {
	case !changed:
	case csrfToken != "":
		s.Counts.PageUnsubscribes.Add(1)
	default:
		s.Counts.OneClickUnsubscribes.Add(1)
	}
	sub.Status = subscribers.Unsubscribed
	// A browser that came from the page has the CSRF cookie, so the
	// answer can offer "subscribe again" as a button; a mailbox provider
	// has none and gets a link to the page instead.
	s.managePage(w, r, http.StatusOK, sub, csrfToken, templates.UnsubscribePage{Done: true})
}

// subscriber finds the subscriber of the token in the path, or answers 404.
func (s *Server) subscriber(w http.ResponseWriter, r *http.Request) (*subscribers.Subscriber, bool) {
	sub, err := s.Subscribers.ByUnsubscribeToken(r.Context(), r.PathValue("token"))
	if errors.Is(err, subscribers.ErrNotFound) {
		s.page(w, http.StatusNotFound, "message.html", message("This link is not valid", "Check that the whole link from the email was copied."))
		return nil, false
	}
	if err != nil {
		s.Log.Error("find subscriber by token", "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return nil, false
	}
	return sub, true
}

func message(title, text string) templates.MessagePage {
	return templates.MessagePage{Title: title, Message: text}
}

// messageLink is a message with a link onwards.
func messageLink(title, text, linkURL, linkText string) templates.MessagePage {
	return templates.MessagePage{Title: title, Message: text, LinkURL: linkURL, LinkText: linkText}
}

// page renders a template into a buffer first, so a template error becomes a
// clean 500 rather than half a page.
func (s *Server) page(w http.ResponseWriter, status int, name string, data any) {
	if m, ok := data.(templates.MessagePage); ok {
		m.SiteName = s.SiteName
		data = m
	}
	var buf bytes.Buffer
	if err := s.Templates.Page(&buf, name, data); err != nil {
		s.Log.Error("render page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// securityHeaders sets the headers every page carries. X-Frame-Options
// says what CSP's frame-ancestors does, for browsers that predate it. With
// an https base URL the pages are only ever meant to be reached over TLS,
// so browsers are told to remember that for a year (RFC 6797 section 6.1);
// includeSubDomains is left out, as other hosts of the domain are not
// ours to speak for.
func securityHeaders(h http.Handler, https bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		if https {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// logRequests logs each request by its route pattern: the path itself holds
// tokens, which must never reach a log.
func (s *Server) logRequests(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		h.ServeHTTP(rec, r)
		route := r.Pattern
		if route == "" {
			route = r.Method + " (no route)"
		}
		if strings.HasPrefix(route, "GET /healthz") || strings.HasPrefix(route, "GET /readyz") {
			return
		}
		s.Log.Info("http", "route", route, "status", rec.status, "duration", time.Since(start).Round(time.Microsecond))
	})
}

// archive lists the published editions, newest first.
func (s *Server) archive(w http.ResponseWriter, r *http.Request) {
	if !s.acquireRender(w, r) {
		return
	}
	defer s.releaseRender()
	list, err := s.Editions.List(r.Context())
	if err != nil {
		s.Log.Error("list editions", "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return
	}
	page := templates.ArchivePage{SiteName: s.SiteName, BaseURL: s.BaseURL}
	for _, e := range list {
		if e.SendStartedAt != nil {
			page.Editions = append(page.Editions, templates.ArchiveEntry{Date: e.Date, Title: e.LeadTitle})
		}
	}
	s.page(w, http.StatusOK, "archive.html", page)
}

// DBPoolSize is how many database connections the reader pages keep open,
// and at most: HTTP requests are not bounded otherwise. database/sql keeps
// only 2 idle by default, so under a burst (a mailbox provider's one-click
// POSTs after an edition) every further query would open a new PostgreSQL
// connection, a process fork each; a pool this size keeps them. The process
// sizes its pool once, from what it runs (cmd/newsletter's poolFor).
const DBPoolSize = 16
