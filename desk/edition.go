package desk

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"newsletter/edition"
	"newsletter/newsroom"
)

// stored is the edition of the path's date.
func (d *Desk) stored(r *http.Request) (*edition.Stored, error) {
	date, err := edition.ParseDate(r.PathValue("date"))
	if err != nil {
		return nil, &newsroom.InvalidError{Field: "date", Err: err}
	}
	st, err := d.Room.Edition(r.Context(), date)
	if err != nil {
		return nil, fmt.Errorf("edition %s: %w", date.Format(edition.DateLayout), err)
	}
	return st, nil
}

// editionData is the edition page: the edition, its preview, its send.
type editionData struct {
	Date, Subject string
	Preview       *preview
	Report        *newsroom.Report
	Started       bool
	Failures      []failureGroup
	TestTo        string
	TestError     string
	// The edit form: the preheader an editor set, the related headlines
	// as shown, and their numbers in order.
	Preheader string
	Related   []string
	Order     string
}

// notices are the page's messages after an action, by the done= key of
// the redirect, so no text from the URL reaches the page.
var notices = map[string]string{
	"imported": "The edition is in. Check the preview, send a test copy, then send it.",
	"test":     "Test copy sent: look in the inbox.",
	"send":     "The send has started.",
	"pause":    "The send is paused. Nothing more goes out until you resume it.",
	"resume":   "The send goes on.",
	"edit":     "Your changes are saved: the preview shows them.",
	"schedule": "The send is scheduled. Cancel unschedules it.",
	"cancel":   "Cancelled: nothing more of this edition goes out.",
}

func (d *Desk) editionPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return d.showEdition(w, r, s, http.StatusOK, editionData{}, notices[r.URL.Query().Get("done")])
}

// showEdition renders the edition page with what data already holds (a
// test form's input and error).
func (d *Desk) showEdition(w http.ResponseWriter, r *http.Request, s *session, status int, data editionData, notice string) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	data.Date, data.Subject = st.Edition.DateString(), st.Edition.Subject()
	data.Preheader = st.Edition.Edits.Preheader
	nums := make([]string, len(st.Edition.Related))
	for i, h := range st.Edition.Related {
		data.Related = append(data.Related, h.Title)
		nums[i] = strconv.Itoa(i)
	}
	data.Order = strings.Join(nums, ", ")
	if data.Preview, err = d.preview(st.Edition); err != nil {
		return err
	}
	if data.Report, err = d.Room.Status(r.Context(), st); err != nil {
		return err
	}
	data.Started = data.Report.StartedAt != nil
	if data.Report.Failed > 0 {
		if data.Failures, err = d.failures(r.Context(), st.ID, data.Report); err != nil {
			return err
		}
	}
	d.render(w, status, "edition", page{Title: data.Date, Session: s, Notice: notice, Data: data})
	return nil
}

// previewFrame is the edition's HTML as a subscriber gets it, for the
// page's sandboxed frames. Its own policy lets it run nothing and be
// framed only by the desk: the HTML is the site's, not the desk's.
func (d *Desk) previewFrame(w http.ResponseWriter, r *http.Request, _ *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	body, err := d.Room.Preview(st.Edition, newsroom.PreviewHTML)
	if err != nil {
		return err
	}
	hd := w.Header()
	hd.Set("Content-Type", "text/html; charset=utf-8")
	hd.Set("Content-Security-Policy", "sandbox; default-src 'none'; img-src * data:; style-src 'unsafe-inline'; frame-ancestors 'self'")
	hd.Set("X-Frame-Options", "SAMEORIGIN")
	w.Write(body)
	return nil
}

func (d *Desk) testSend(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	to := strings.FieldsFunc(r.PostFormValue("to"), func(c rune) bool { return c == ',' || c == ';' || c == ' ' || c == '\n' || c == '\r' || c == '\t' })
	_, err = d.Room.TestSend(r.Context(), actor(r, s), st.Edition, to, newsroom.TestOptions{MarkSubject: true})
	if status := problem(err); err != nil && status != http.StatusInternalServerError {
		return d.showEdition(w, r, s, status, editionData{TestTo: r.PostFormValue("to"), TestError: err.Error()}, "")
	}
	if err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=test", http.StatusSeeOther)
	return nil
}

// confirmSend asks before the send, saying how many will get it.
func (d *Desk) confirmSend(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	var n int64
	if err := d.DB.GetContext(r.Context(), &n, `SELECT count(*) FROM subscribers WHERE status = 'confirmed'`); err != nil {
		return fmt.Errorf("count confirmed subscribers: %w", err)
	}
	d.render(w, http.StatusOK, "send", page{Title: "Send " + st.Edition.DateString(), Session: s,
		Data: map[string]any{"Date": st.Edition.DateString(), "Subject": st.Edition.Subject(), "Confirmed": n}})
	return nil
}

func (d *Desk) send(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	if _, err := d.Room.StartSend(r.Context(), actor(r, s), st); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=send", http.StatusSeeOther)
	return nil
}

func (d *Desk) pause(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	if err := d.Room.Pause(r.Context(), actor(r, s), st); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=pause", http.StatusSeeOther)
	return nil
}

func (d *Desk) resume(w http.ResponseWriter, r *http.Request, s *session) error {
	st, err := d.stored(r)
	if err != nil {
		return err
	}
	if _, err := d.Room.Resume(r.Context(), actor(r, s), st); err != nil {
		return err
	}
	http.Redirect(w, r, Prefix+"/editions/"+st.Edition.DateString()+"?done=resume", http.StatusSeeOther)
	return nil
}
