package desk

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"newsletter/edition"
	"newsletter/newsroom"
)

// importForm is the three ways in of the editions page, with what was
// typed and the errors beside their fields.
type importForm struct {
	URL, Date, Site, LeadTitle, LeadURL, Paragraphs, Related string
	Errors                                                   map[string]string
}

type editionsData struct {
	List []newsroom.Entry
	Form importForm
}

func (d *Desk) editionsPage(w http.ResponseWriter, r *http.Request, s *session) error {
	return d.showEditions(w, r, s, http.StatusOK, importForm{Date: d.Room.Today().Format(edition.DateLayout)}, "")
}

func (d *Desk) showEditions(w http.ResponseWriter, r *http.Request, s *session, status int, f importForm, notice string) error {
	list, err := d.Room.List(r.Context())
	if err != nil {
		return err
	}
	d.render(w, status, "editions", page{Title: "Editions", Session: s, Notice: notice, Data: editionsData{List: list, Form: f}})
	return nil
}

// importEdition brings an edition in from a URL, an uploaded file or the
// typed form, whichever button was pressed, and opens it; an error goes
// back beside the field it concerns.
func (d *Desk) importEdition(w http.ResponseWriter, r *http.Request, s *session) error {
	ctx, a := r.Context(), actor(r, s)
	f := formFrom(r)
	var date string
	var err error
	field := r.PostFormValue("source")
	switch field {
	case "url":
		var day time.Time
		day, _, err = d.Room.ImportURL(ctx, a, f.URL, time.Time{})
		date = day.Format(edition.DateLayout)
	case "file":
		file, hdr, ferr := r.FormFile("file")
		if ferr != nil {
			err = &newsroom.InvalidError{Field: "file", Err: errors.New("choose a file to upload")}
			break
		}
		defer file.Close()
		var im *newsroom.Imported
		if im, err = d.Room.Import(ctx, a, file, edition.ParseOptions{}, "desk upload "+hdr.Filename); err == nil {
			date = im.Edition.DateString()
		}
	default:
		field = ""
		var body []byte
		if body, err = f.editionJSON(); err == nil {
			var im *newsroom.Imported
			if im, err = d.Room.Import(ctx, a, bytes.NewReader(body), edition.ParseOptions{}, "desk form", edition.FormatJSON); err == nil {
				date = im.Edition.DateString()
			}
		}
	}
	if err != nil {
		status := problem(err)
		if status == http.StatusInternalServerError || status == http.StatusForbidden {
			return err
		}
		f.Errors = map[string]string{fieldOf(field, err): err.Error()}
		return d.showEditions(w, r, s, status, f, "")
	}
	http.Redirect(w, r, Prefix+"/editions/"+date+"?done=imported", http.StatusSeeOther)
	return nil
}

func formFrom(r *http.Request) importForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return importForm{URL: v("url"), Date: v("date"), Site: v("site"), LeadTitle: v("lead_title"), LeadURL: v("lead_url"),
		Paragraphs: v("paragraphs"), Related: v("related")}
}

// editionJSON is the typed edition in the JSON form the newsroom imports:
// paragraphs are separated by blank lines, related headlines are one a
// line, "Title | https://link".
func (f importForm) editionJSON() ([]byte, error) {
	date, err := edition.ParseDate(f.Date)
	if err != nil {
		return nil, &newsroom.InvalidError{Field: "date", Err: err}
	}
	ed := edition.Edition{Date: date, Site: edition.Site{Name: f.Site}, Lead: edition.Story{Title: f.LeadTitle, URL: f.LeadURL}, Related: []edition.Story{}}
	for _, p := range strings.Split(strings.ReplaceAll(f.Paragraphs, "\r\n", "\n"), "\n\n") {
		if p = strings.Join(strings.Fields(p), " "); p != "" {
			ed.Lead.Body = append(ed.Lead.Body, edition.Block{Kind: edition.Paragraph, Text: p})
		}
	}
	for _, line := range strings.Split(f.Related, "\n") {
		title, link, _ := strings.Cut(line, "|")
		if title = strings.TrimSpace(title); title != "" {
			ed.Related = append(ed.Related, edition.Story{Title: title, URL: strings.TrimSpace(link)})
		}
	}
	return json.Marshal(ed)
}

// fieldOf is the form field an import error concerns: the source's own
// for a URL or a file, else the typed field the edition's validation names.
func fieldOf(source string, err error) string {
	if source != "" {
		return source
	}
	var inv *newsroom.InvalidError
	if errors.As(err, &inv) && inv.Field == "date" {
		return "date"
	}
	msg := err.Error()
	for _, m := range []struct{ says, field string }{
		{"site name", "site"}, {"lead title", "lead_title"}, {"lead URL", "lead_url"}, {"lead block", "paragraphs"},
		{"paragraph", "paragraphs"}, {"related", "related"}, {"date", "date"},
	} {
		if strings.Contains(msg, m.says) {
			return m.field
		}
	}
	return "form"
}
