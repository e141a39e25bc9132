// Package edition owns the day's edition: its lead story and related
// headlines, the parsers that read it from a news page, a feed or JSON, and
// the editions table.
package edition

import (
	"fmt"
	"time"
)

// DateLayout is how an edition's date is written everywhere: flags, URLs,
// JSON and the editions table.
const DateLayout = "2006-01-02"

// BlockKind tells body text apart from the page's other blocks so templates
// can style captions as captions.
type BlockKind string

const (
	Paragraph BlockKind = "paragraph"
	Caption   BlockKind = "caption"
	Heading   BlockKind = "heading"
)

// Block is one block of a story's body.
type Block struct {
	Kind BlockKind `json:"kind"`
	Text string    `json:"text"`
}

// Story is a headline with its link; the lead story also carries its body.
type Story struct {
	Title   string  `json:"title"`
	URL     string  `json:"url,omitempty"`
	Summary string  `json:"summary,omitempty"`
	Body    []Block `json:"body,omitempty"`
}

// Site is the publication the edition comes from.
type Site struct {
	Name    string `json:"name"`
	Tagline string `json:"tagline,omitempty"`
	URL     string `json:"url,omitempty"`
}

// Edition is one day's newsletter content. Date is the civil date of the
// edition (midnight UTC; only the year, month and day are meaningful).
type Edition struct {
	Date    time.Time `json:"date"`
	Site    Site      `json:"site"`
	Lead    Story     `json:"lead"`
	Related []Story   `json:"related"`
	// Edits are an editor's changes (edit.go), not part of the content:
	// Related is already the edited selection.
	Edits Edits `json:"-"`
}

// DateString is the edition's date as YYYY-MM-DD.
func (e *Edition) DateString() string { return e.Date.Format(DateLayout) }

// ParseDate reads a YYYY-MM-DD date as a civil date.
func ParseDate(s string) (time.Time, error) {
	d, err := time.Parse(DateLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("date %q: want YYYY-MM-DD", s)
	}
	return d, nil
}
