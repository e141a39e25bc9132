package desk

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"newsletter/edition"
	"newsletter/newsroom"
)

// The edition page's edit, schedule and cancel forms: each a POST with the
// session's CSRF token, each one newsroom operation (Room.Edit,
// Room.ScheduleSend, Room.Cancel), audited there.

// edit applies the fields that differ from the edition as it is: the
// subject, the preheader, and the related headlines by their numbers in
// the order to show them (those left out are dropped).
func (d *Desk) edit(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	var ed edition.Edit
	if v := strings.TrimSpace(r.PostFormValue("subject")); v != st.Edition.Subject() {
		ed.Subject = &v
	}
	if v := strings.TrimSpace(r.PostFormValue("preheader")); v != st.Edition.Edits.Preheader {
		ed.Preheader = &v
	}
	order, err := parseOrder(r.PostFormValue("related"))
	if err != nil {
		return err
	}
	if !isIdentity(order, len(st.Edition.Related)) {
		ed.Related = order
	}
	if ed.Subject == nil && ed.Preheader == nil && ed.Related == nil {
		http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString(), http.StatusSeeOther)
		return nil
	}
	if _, err := d.Room.Edit(r.Context(), actor(r, s), st, ed); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=edit", http.StatusSeeOther)
	return nil
}

// parseOrder reads "3, 0, 1" (or spaces between); blank keeps none.
func parseOrder(s string) ([]int, error) {
	out := []int{}
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, &newsroom.InvalidError{Field: "related", Err: fmt.Errorf("%q is not a headline's number", f)}
		}
		out = append(out, n)
	}
	return out, nil
}

func isIdentity(order []int, n int) bool {
	if len(order) != n {
		return false
	}
	for i, v := range order {
		if v != i {
			return false
		}
	}
	return true
}

// schedule sends the edition at a local time (NEWSLETTER_TZ), or at once
// when that time has passed.
func (d *Desk) schedule(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	loc := d.Room.Location
	if loc == nil {
		loc = time.Local
	}
	at, err := time.ParseInLocation("2006-01-02T15:04", r.PostFormValue("at"), loc)
	if err != nil {
		return &newsroom.InvalidError{Field: "at", Err: fmt.Errorf("give a date and time such as 2025-11-13T07:00")}
	}
	if _, err := d.Room.ScheduleSend(r.Context(), actor(r, s), st, at); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=schedule", http.StatusSeeOther)
	return nil
}

// cancel unschedules a scheduled send or stops one under way; the
// recipients not yet sent are recorded cancelled.
func (d *Desk) cancel(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	if _, err := d.Room.Cancel(r.Context(), actor(r, s), st); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=cancel", http.StatusSeeOther)
	return nil
}
