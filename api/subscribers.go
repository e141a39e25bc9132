package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"newsletter/newsroom"
	"newsletter/subscribers"
)

func (api *API) findSubscriber(w http.ResponseWriter, r *http.Request, _ newsroom.Actor) error {
	p, err := api.Room.FindSubscriber(r.Context(), r.URL.Query().Get("email"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p)
	return nil
}

func (api *API) addSubscriber(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	var req struct {
		Email  string `json:"email"`
		Name   string `json:"name"`
		Status string `json:"status"`
	}
	if ok, err := readJSON(w, r, &req, false); !ok {
		return err
	}
	status := subscribers.Confirmed
	if req.Status != "" {
		var err error
		if status, err = subscribers.ParseStatus(req.Status); err != nil {
			return &newsroom.InvalidError{Field: "status", Err: err}
		}
	}
	sub, err := api.Room.AddSubscriber(r.Context(), a, req.Email, req.Name, status)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, sub)
	return nil
}

func (api *API) unsubscribe(w http.ResponseWriter, r *http.Request, a newsroom.Actor) error {
	email := r.PathValue("email")
	changed, err := api.Room.Unsubscribe(r.Context(), a, email)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"email": email, "status": subscribers.Unsubscribed, "changed": changed})
	return nil
}

// readAll reads the whole body (bounded by the handler's MaxBytesReader).
func readAll(r *http.Request) ([]byte, error) {
	return io.ReadAll(r.Body)
}

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// urlForm reads {"url": "..."} from a JSON body; isURL is false when the
// body is an edition's JSON instead.
func urlForm(body []byte) (url string, isURL bool, err error) {
	var probe map[string]json.RawMessage
	if json.Unmarshal(body, &probe) != nil {
		return "", false, nil // not an object: let the edition's parser say what is wrong
	}
	raw, ok := probe["url"]
	if !ok {
		return "", false, nil
	}
	if len(probe) != 1 {
		return "", false, &newsroom.InvalidError{Field: "url", Err: errors.New(`give {"url": "..."} alone`)}
	}
	if err := json.Unmarshal(raw, &url); err != nil || !isHTTP(url) {
		return "", false, &newsroom.InvalidError{Field: "url", Err: fmt.Errorf("want an http or https URL")}
	}
	return url, true, nil
}

func isHTTP(s string) bool {
	return len(s) > 8 && (s[:7] == "http://" || s[:8] == "https://")
}
