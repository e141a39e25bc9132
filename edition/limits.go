package edition

import (
	"errors"
	"fmt"
	"io"
)

// An edition is one day's mail, so these limits are far above any real one
// (a long lead story has a few dozen paragraphs, a feed a few dozen items);
// they are there so that a runaway feed or a hostile file cannot make an
// import, a preview or the web edition take the server's memory. Each error
// names its limit.
const (
	// MaxInputBytes bounds what Read reads and Parse accepts. Parsing
	// takes some tens of times the input in memory.
	MaxInputBytes = 4 << 20
	// MaxParagraphs bounds the blocks of the lead story's body.
	MaxParagraphs = 1000
	// MaxRelated bounds the related stories.
	MaxRelated = 200
	// MaxRenderedHTML bounds the HTML part of the rendered mail, checked at
	// import by whoever renders it (cmd/newsletter). Gmail clips a message
	// at 102 KB; this limit is ten times that, there for safety, not for
	// the reader.
	MaxRenderedHTML = 1 << 20
)

// ErrTooLarge matches every error about an edition over one of the limits.
var ErrTooLarge = errors.New("edition too large")

// limitError says which limit an edition or its source is over.
type limitError struct {
	what  string // "the input", "the lead story's body", ...
	n     int64  // how much there is, -1 if unknown (the input was not read to its end)
	limit int64
	unit  string
	name  string // the limit's constant
}

func (e *limitError) Error() string {
	have := "more than"
	if e.n >= 0 {
		have = fmt.Sprintf("%d %s,", e.n, e.unit)
	}
	return fmt.Sprintf("%s has %s over the limit of %d %s (edition.%s)", e.what, have, e.limit, e.unit, e.name)
}

func (e *limitError) Is(target error) bool { return target == ErrTooLarge }

func inputTooLarge(n int64) error {
	return &limitError{what: "the input", n: n, limit: MaxInputBytes, unit: "bytes", name: "MaxInputBytes"}
}

// RenderedTooLarge is the error for a rendered HTML part of n bytes over
// MaxRenderedHTML.
func RenderedTooLarge(n int) error {
	return &limitError{what: "the rendered HTML", n: int64(n), limit: MaxRenderedHTML, unit: "bytes", name: "MaxRenderedHTML"}
}

// checkCounts is Validate's part about the limits on counts.
func (e *Edition) checkCounts() error {
	if n := len(e.Lead.Body); n > MaxParagraphs {
		return &limitError{what: "the lead story's body", n: int64(n), limit: MaxParagraphs, unit: "paragraphs", name: "MaxParagraphs"}
	}
	if n := len(e.Related); n > MaxRelated {
		return &limitError{what: "the edition", n: int64(n), limit: MaxRelated, unit: "related stories", name: "MaxRelated"}
	}
	return nil
}

// Imported is what Read made of its input.
type Imported struct {
	Edition *Edition
	Format  Format
	// Kept is how many blocks the lead story's body has; Dropped how many
	// elements of its HTML with text in them were left out (scripts,
	// frames, SVG and the like), so whoever imports knows.
	Kept, Dropped int
}

// Read reads an edition from r, at most MaxInputBytes of it: a larger input
// is refused without being read to its end. See Parse.
func Read(r io.Reader, opts ParseOptions) (*Imported, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxInputBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read edition: %w", err)
	}
	if len(data) > MaxInputBytes {
		return nil, fmt.Errorf("read edition: %w", inputTooLarge(-1))
	}
	return parse(data, opts)
}
