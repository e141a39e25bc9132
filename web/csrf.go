package web

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
)

// CSRF protection of the forms: a signed double-submit token, with the
// browser's own cross-origin signals checked first.
//
// A browser gets a random cookie (csrfCookie) with the first form it is
// shown; each form carries HMAC(key, cookie) in the hidden field csrfField.
// A cross-site page can make a browser post a form and send the cookie
// along, but it can neither read the cookie nor compute its MAC without the
// server secret, so it can't fill in the field. Nothing is stored on the
// server. The cookie is SameSite=Lax (not sent on cross-site POSTs at all
// in browsers that honour it), HttpOnly, and Secure when the pages are
// served over HTTPS.
//
// Before the token, http.CrossOriginProtection refuses a POST the browser
// marks as cross-site (Sec-Fetch-Site, or an Origin that is neither this
// host nor NEWSLETTER_BASE_URL's).
//
// The RFC 8058 one-click POST to /u/{token} is exempt by design: mailbox
// providers send it from their servers, with no cookie and no form.
const (
	csrfCookie = "nl_csrf"
	csrfField  = "csrf"
	// csrfIDLen is the length of the cookie value: 256 random bits,
	// base64url without padding.
	csrfIDLen = 43
)

type csrf struct {
	key    []byte // derived from the server secret for this use only
	secure bool
	path   string
	origin *http.CrossOriginProtection
}

// token returns the form token for the browser behind r, giving it a cookie
// first when it has none.
func (c *csrf) token(w http.ResponseWriter, r *http.Request) string {
	id := c.cookie(r)
	if id == "" {
		var b [32]byte
		rand.Read(b[:])
		id = base64.RawURLEncoding.EncodeToString(b[:])
		http.SetCookie(w, &http.Cookie{
			Name: csrfCookie, Value: id, Path: c.path,
			HttpOnly: true, Secure: c.secure, SameSite: http.SameSiteLaxMode,
		})
	}
	return c.mac(id)
}

// existingToken is the form token for the cookie r already has, or "" (it
// sets no cookie: the one-click answer must not).
func (c *csrf) existingToken(r *http.Request) string {
	if id := c.cookie(r); id != "" {
		return c.mac(id)
	}
	return ""
}

func (c *csrf) cookie(r *http.Request) string {
	ck, err := r.Cookie(csrfCookie)
	if err != nil || len(ck.Value) != csrfIDLen {
		return ""
	}
	return ck.Value
}

func (c *csrf) mac(id string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(id))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// check tells whether a POST of a form came from one of our pages: the
// browser doesn't call it cross-origin, and the form's field is the MAC of
// the cookie, compared in constant time. The form must be parsed.
func (c *csrf) check(r *http.Request) bool {
	if err := c.origin.Check(r); err != nil {
		return false
	}
	id := c.cookie(r)
	field := r.PostFormValue(csrfField)
	if id == "" || field == "" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(field), []byte(c.mac(id))) == 1
}
