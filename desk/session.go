package desk

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"time"

	"newsletter/editors"
)

// Session cookie. Its value is the session id: 256 random bits, base64url.
// Path=/desk keeps it off the reader pages and the API (which takes no
// cookies); HttpOnly keeps it from script; SameSite=Lax keeps browsers
// from sending it on cross-site POSTs.
const (
	sessionCookie = "nl_desk"
	sessionIDLen  = 43
	csrfField     = "csrf"
)

// session is a signed-in editor's session.
type session struct {
	id      string // the cookie's value; only its hash is stored
	account editors.Account
}

// csrf is the session's form token: a MAC of the purpose under the session
// id, which only the server and the browser holding the cookie know, so a
// cross-site page can't compute it, and nothing more is stored.
func (s *session) csrf() string {
	m := hmac.New(sha256.New, []byte(s.id))
	m.Write([]byte("desk csrf"))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkCSRF compares the form's token in constant time.
func (s *session) checkCSRF(r *http.Request) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf())) == 1
}

func hashID(id string) []byte {
	h := sha256.Sum256([]byte(id))
	return h[:]
}

// newSession starts a session for the account and sets its cookie.
func (d *Desk) newSession(ctx context.Context, w http.ResponseWriter, acct *editors.Account) error {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	id := base64.RawURLEncoding.EncodeToString(b[:])
	// Sessions long over are removed as new ones start: sign-ins are
	// rare, and the table stays small without a janitor.
	if _, err := d.DB.ExecContext(ctx, `DELETE FROM desk_sessions WHERE expires_at < now() OR last_seen_at < now() - $1 * interval '1 second'`,
		d.idle().Seconds()); err != nil {
		return fmt.Errorf("prune sessions: %w", err)
	}
	_, err := d.DB.ExecContext(ctx, `INSERT INTO desk_sessions (id_hash, editor_id, expires_at) VALUES ($1, $2, now() + $3 * interval '1 second')`,
		hashID(id), acct.ID, d.lifetime().Seconds())
	if err != nil {
		return fmt.Errorf("new session: %w", err)
	}
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookie, Value: id, Path: Prefix, MaxAge: int(d.lifetime().Seconds()),
		HttpOnly: true, Secure: d.secure(), SameSite: http.SameSiteLaxMode,
	})
	return nil
}

// errNoSession: no cookie, or one of no live session.
var errNoSession = errors.New("no session")

// session is the live session of the request's cookie, its last use
// moved to now; errNoSession when there is none.
func (d *Desk) session(r *http.Request) (*session, error) {
	ck, err := r.Cookie(sessionCookie)
	if err != nil || len(ck.Value) != sessionIDLen {
		return nil, errNoSession
	}
	var a editors.Account
	err = d.DB.GetContext(r.Context(), &a, `UPDATE desk_sessions s SET last_seen_at = now()
		FROM editors e
		WHERE s.id_hash = $1 AND e.id = s.editor_id AND s.expires_at > now() AND s.last_seen_at > now() - $2 * interval '1 second'
		RETURNING e.id, e.email, e.role, e.created_at, 0 AS tokens`, hashID(ck.Value), d.idle().Seconds())
	if errors.Is(err, sql.ErrNoRows) {
		return nil, errNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("look up session: %w", err)
	}
	return &session{id: ck.Value, account: a}, nil
}

// endSession deletes the session on the server and the cookie in the
// browser.
func (d *Desk) endSession(ctx context.Context, w http.ResponseWriter, s *session) error {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: "", Path: Prefix, MaxAge: -1,
		HttpOnly: true, Secure: d.secure(), SameSite: http.SameSiteLaxMode})
	if _, err := d.DB.ExecContext(ctx, `DELETE FROM desk_sessions WHERE id_hash = $1`, hashID(s.id)); err != nil {
		return fmt.Errorf("end session: %w", err)
	}
	return nil
}

// Session lifetimes: a desk left open signs out after IdleTimeout without
// a request, and every session ends after Lifetime, whatever its use
// (OWASP's session management advice: both timeouts, on the server).
const (
	DefaultIdleTimeout = 30 * time.Minute
	DefaultLifetime    = 12 * time.Hour
)

func (d *Desk) idle() time.Duration {
	if d.IdleTimeout > 0 {
		return d.IdleTimeout
	}
	return DefaultIdleTimeout
}

func (d *Desk) lifetime() time.Duration {
	if d.Lifetime > 0 {
		return d.Lifetime
	}
	return DefaultLifetime
}
