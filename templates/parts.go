package templates

// This file exposes a rendered part's splice structure - its literal text
// and its splice points - so that a sender can pre-encode the literal text
// once per edition (quoted-printable, dot-stuffing) and splice only the
// recipient's values per message, without building the part as a string.

// Part is one part of a Rendered edition (the HTML or the plain-text part)
// cut at its splice points: Lits()[0], hole 0, Lits()[1], ..., hole n-1,
// Lits()[n] with n = Holes(). The zero Part is empty (no literals, no holes).
// A Part is immutable and safe for concurrent use.
type Part struct{ s *spliced }

// Cleaned is a Recipient cleaned as RenderEdition's splicing cleans it
// (white space runs collapsed, the name capped). It exists so that a sender
// splicing many holes per message cleans the recipient once, not once per
// hole; only Clean makes one.
type Cleaned struct{ rc Recipient }

// Clean cleans rc for AppendHole. It does not allocate unless rc has
// white space to collapse.
func Clean(rc Recipient) Cleaned { return Cleaned{cleanRecipient(rc)} }

// Parts returns the HTML and the plain-text part of r.
func (r *Rendered) Parts() (html, text Part) { return Part{&r.html}, Part{&r.text} }

// IsZero reports whether p is the zero Part (not taken from a Rendered).
func (p Part) IsZero() bool { return p.s == nil }

// Lits returns a copy of the literal text between the splice points:
// Holes()+1 strings (none for the zero Part).
func (p Part) Lits() []string {
	if p.s == nil {
		return nil
	}
	return append([]string(nil), p.s.lits...)
}

// Holes returns the number of splice points.
func (p Part) Holes() int {
	if p.s == nil {
		return 0
	}
	return len(p.s.holes)
}

// AppendHole appends splice point i's value for rc, escaped as the
// template's context there requires (exactly what r.HTML or r.Text put
// there), and returns the extended buffer. It panics if i is out of range,
// like an index expression.
func (p Part) AppendHole(dst []byte, i int, rc Cleaned) []byte {
	return appendField(dst, rc.rc, p.s.holes[i])
}
