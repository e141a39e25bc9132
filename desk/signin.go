package desk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"newsletter/editors"
	"newsletter/subscribers"
)

// Failed sign-ins are limited per address and per client over
// failWindow, counted from the audit record (so every process of the
// desk, and a restarted one, counts the same failures): past the limit a
// sign-in is refused without its password being looked at. A person
// mistyping meets neither; a guesser gets a few tries per window.
const (
	failWindow     = 15 * time.Minute
	maxFailsPerAcc = 5
	maxFailsPerIP  = 20
)

// badSignIn is the one answer to a wrong password and to an unknown
// account, so the form tells nobody which addresses have accounts.
const badSignIn = "Unknown account or wrong password."

type signInForm struct {
	Email string
	Error string
}

func (d *Desk) signInPage(w http.ResponseWriter, r *http.Request) {
	if _, err := d.session(r); err == nil {
		http.Redirect(w, r, Prefix+"/editions", http.StatusSeeOther)
		return
	}
	d.render(w, http.StatusOK, "signin", page{Title: "Sign in", Data: signInForm{}})
}

// signIn checks the address and password and starts a session. There is
// no session to take a CSRF token from yet; the cross-origin check stands
// in for it, so no other site can sign a browser in to an account of its
// choosing.
func (d *Desk) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil || origin.Check(r) != nil {
		d.errorPage(w, r, nil, http.StatusForbidden, "This form did not come from the desk: reload the page and try again.")
		return
	}
	ctx := r.Context()
	email, password := strings.TrimSpace(r.PostFormValue("email")), r.PostFormValue("password")
	form := signInForm{Email: email}
	ip := clientIP(r)
	limited, err := d.tooManyFailures(ctx, email, ip)
	if err != nil {
		d.fail(w, r, nil, err)
		return
	}
	if limited {
		form.Error = "Too many failed sign-ins: wait a quarter of an hour and try again."
		d.render(w, http.StatusTooManyRequests, "signin", page{Title: "Sign in", Data: form})
		return
	}
	acct, err := d.Accounts.Authenticate(ctx, email, password)
	if errors.Is(err, editors.ErrBadPassword) {
		if err := editors.Audit(ctx, d.DB, auditName(email), "sign-in-failed", "", "desk", ip); err != nil {
			d.fail(w, r, nil, err)
			return
		}
		form.Error = badSignIn
		d.render(w, http.StatusUnauthorized, "signin", page{Title: "Sign in", Data: form})
		return
	}
	if err == nil {
		err = d.newSession(ctx, w, acct)
	}
	if err == nil {
		err = editors.Audit(ctx, d.DB, acct.Email, "sign-in", "", "desk", ip)
	}
	if err != nil {
		d.fail(w, r, nil, err)
		return
	}
	http.Redirect(w, r, Prefix+"/editions", http.StatusSeeOther)
}

// auditName is the address a failed sign-in is recorded under: the
// account's lookup form, lowercased as accounts are looked up, so the limit
// per account counts every spelling.
func auditName(email string) string {
	if email == "" {
		return "(no address)"
	}
	return strings.ToLower(subscribers.LookupForm(email))
}

// tooManyFailures tells whether the address or the client has failed to
// sign in too often lately.
func (d *Desk) tooManyFailures(ctx context.Context, email, ip string) (bool, error) {
	var n struct {
		Account int `db:"account"`
		IP      int `db:"ip"`
	}
	var ipArg any
	if ip != "" {
		ipArg = ip
	}
	err := d.DB.GetContext(ctx, &n, `SELECT count(*) FILTER (WHERE actor = $1) AS account,
		count(*) FILTER (WHERE ip = $2::inet) AS ip
		FROM audit_log WHERE action = 'sign-in-failed' AND at > now() - $3 * interval '1 second'`,
		auditName(email), ipArg, failWindow.Seconds())
	if err != nil {
		return false, fmt.Errorf("count failed sign-ins: %w", err)
	}
	return n.Account >= maxFailsPerAcc || n.IP >= maxFailsPerIP, nil
}

func (d *Desk) signOut(w http.ResponseWriter, r *http.Request, s *session) error {
	if err := d.endSession(r.Context(), w, s); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/signin", http.StatusSeeOther)
	return nil
}
