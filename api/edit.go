package api

import (
	"net/http"

	"newsletter/edition"
	"newsletter/newsroom"
	"newsletter/templates"
)

// editEdition is PATCH /editions/{date}: {"subject", "preheader",
// "related"}, each optional; "related" is the new order of the related
// headlines by their current index, those left out dropped. It answers the
// edition as GET does.
func (api *API) editEdition(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	var req struct {
		Subject   *string `json:"subject"`
		Preheader *string `json:"preheader"`
		Related   *[]int  `json:"related"`
	}
	if ok, err := readJSON(w, r, &req, false); !ok {
		return err
	}
	ed := edition.Edit{Subject: req.Subject, Preheader: req.Preheader}
	if req.Related != nil {
		// "related": [] drops them all, and must not read as "unchanged".
		ed.Related = append([]int{}, *req.Related...)
	}
	st, err := api.stored(r)
	if err != nil {
		return err
	}
	st, err = api.Room.Edit(r.Context(), a, st, ed)
	if err != nil {
		return err
	}
	return api.writeEdition(w, r, st)
}

// writeEdition answers the edition, with its subject and preheader as
// they will be sent and its related headlines numbered as PATCH takes them.
func (api *API) writeEdition(w http.ResponseWriter, r *http.Request, st *edition.Stored) error {
	state, err := api.Room.Editions.SendState(r.Context(), st.ID)
	if err != nil {
		return err
	}
	related := make([]map[string]any, len(st.Edition.Related))
	for i, s := range st.Edition.Related {
		related[i] = map[string]any{"index": i, "title": s.Title, "url": s.URL}
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"date": st.Edition.DateString(), "subject": st.Edition.Subject(), "preheader": templates.Preheader(st.Edition),
		"edited_subject": st.Edition.Edits.Subject != "", "edited_preheader": st.Edition.Edits.Preheader != "",
		"edited_at": st.EditedAt, "related": related,
		"format": st.Format, "imported_at": st.ImportedAt, "state": state.State(), "send_started_at": state.StartedAt, "edition": st.Edition,
	})
	return nil
}
