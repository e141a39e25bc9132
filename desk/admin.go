package desk

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"newsletter/editors"
	"newsletter/newsroom"
	"newsletter/subscribers"
)

type subscribersData struct {
	Email  string
	Person *newsroom.Person
	Error  string
}

// subscribersPage finds a person by address: their status and consent
// history.
func (d *Desk) subscribersPage(w http.ResponseWriter, r *http.Request, s *session) error {
	data := subscribersData{Email: r.URL.Query().Get("email")}
	status := http.StatusOK
	if data.Email != "" {
		p, err := d.Room.FindSubscriber(r.Context(), data.Email)
		switch {
		case errors.Is(err, subscribers.ErrNotFound):
			data.Error, status = "Nobody on the list has that address.", http.StatusNotFound
		case errors.Is(err, newsroom.ErrInvalid):
			data.Error, status = err.Error(), http.StatusBadRequest
		case err != nil:
			return err
		}
		data.Person = p
	}
	notice := ""
	if r.URL.Query().Get("done") == "unsubscribed" {
		notice = "Unsubscribed: no newsletter goes to this address any more."
	}
	d.render(w, status, "subscribers", page{Title: "Subscribers", Session: s, Notice: notice, Data: data})
	return nil
}

func (d *Desk) unsubscribe(w http.ResponseWriter, r *http.Request, s *session) error {
	email := r.PostFormValue("email")
	if _, err := d.Room.Unsubscribe(r.Context(), actor(r, s), email); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/subscribers?done=unsubscribed&email="+url.QueryEscape(email), http.StatusSeeOther)
	return nil
}

func (d *Desk) editorsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	list, err := d.Accounts.List(r.Context())
	if err != nil {
		return err
	}
	d.render(w, http.StatusOK, "editors", page{Title: "Editors", Session: s, Data: list})
	return nil
}

// auditDays and auditMax bound the audit page: the latest entries of the
// last days, newest first; `newsletter audit --since` has the rest.
const (
	auditDays = 30
	auditMax  = 500
)

func (d *Desk) auditPage(w http.ResponseWriter, r *http.Request, s *session) error {
	var list []editors.Entry
	err := editors.EachAudit(r.Context(), d.DB, time.Now().AddDate(0, 0, -auditDays), func(e editors.Entry) error {
		list = append(list, e)
		if len(list) > 2*auditMax {
			list = slices.Clone(list[len(list)-auditMax:])
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(list) > auditMax {
		list = list[len(list)-auditMax:]
	}
	slices.Reverse(list)
	d.render(w, http.StatusOK, "audit", page{Title: "Audit", Session: s, Data: list})
	return nil
}
