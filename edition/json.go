package edition

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// editionJSON is Edition's JSON form: the struct's own fields, with the
// date as "YYYY-MM-DD" rather than a timestamp, since an edition is a day,
// not an instant, and a timestamp invites time zone slips.
type editionJSON struct {
	Date    string  `json:"date"`
	Site    Site    `json:"site"`
	Lead    Story   `json:"lead"`
	Related []Story `json:"related"`
}

// MarshalJSON writes the edition with its date as YYYY-MM-DD.
func (e Edition) MarshalJSON() ([]byte, error) {
	w := editionJSON{Site: e.Site, Lead: e.Lead, Related: e.Related}
	if !e.Date.IsZero() {
		w.Date = e.DateString()
	}
	return json.Marshal(w)
}

// UnmarshalJSON reads what MarshalJSON writes. It is lenient about unknown
// fields, so content stored by a newer version still loads; Parse is strict.
func (e *Edition) UnmarshalJSON(data []byte) error {
	var w editionJSON
	if err := json.Unmarshal(data, &w); err != nil {
		return err
	}
	return e.fromJSON(w)
}

func (e *Edition) fromJSON(w editionJSON) error {
	*e = Edition{Site: w.Site, Lead: w.Lead, Related: w.Related}
	if w.Date != "" {
		d, err := ParseDate(w.Date)
		if err != nil {
			return err
		}
		e.Date = d
	}
	return nil
}

// parseJSON reads an edition written by hand or by another tool, so it
// refuses unknown fields (a misspelt "titel" should not vanish silently)
// and anything after the object.
func parseJSON(data []byte) (*Edition, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.DisallowUnknownFields()
	var w editionJSON
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("want an edition object (date, site, lead, related): %w", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the edition object")
	}
	e := &Edition{}
	if err := e.fromJSON(w); err != nil {
		return nil, err
	}
	return e, nil
}
