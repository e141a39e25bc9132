package templates

import (
	"testing"

	"newsletter/edition"
)

// assemble splices a part by hand through the exported Part API, the way a
// sender that pre-encodes the literals does.
func assemble(p Part, rc Recipient) string {
	c := Clean(rc)
	lits := p.Lits()
	if len(lits) != p.Holes()+1 {
		panic("Lits is not Holes()+1 long")
	}
	var b []byte
	b = append(b, lits[0]...)
	for i := range p.Holes() {
		b = p.AppendHole(b, i, c)
		b = append(b, lits[i+1]...)
	}
	return string(b)
}

func TestPartsSpliceLikeRendered(t *testing.T) {
	s := builtin(t)
	for _, e := range []*edition.Edition{demoEdition(t), hostile()} {
		for _, d := range append(sampleEditionData(), demoData) {
			r := render(t, s, e, d)
			html, text := r.Parts()
			if html.IsZero() || text.IsZero() || html.Holes() == 0 || text.Holes() == 0 {
				t.Fatalf("parts without holes: html %d, text %d", html.Holes(), text.Holes())
			}
			for _, rc := range awkward {
				if got, want := assemble(html, rc), r.HTML(rc); got != want {
					t.Errorf("HTML for %q:\n%s", rc.Name, firstDiff(want, got))
				}
				if got, want := assemble(text, rc), r.Text(rc); got != want {
					t.Errorf("text for %q:\n%s", rc.Name, firstDiff(want, got))
				}
			}
		}
	}
}

func TestPartsLitsAreACopy(t *testing.T) {
	r := render(t, builtin(t), demoEdition(t), demoData)
	html, _ := r.Parts()
	lits := html.Lits()
	lits[0] = "changed"
	if html.Lits()[0] == "changed" {
		t.Error("Lits returns the Part's own slice")
	}
}

func TestZeroPart(t *testing.T) {
	var p Part
	if !p.IsZero() || p.Holes() != 0 || p.Lits() != nil {
		t.Errorf("zero Part: IsZero %v, Holes %d, Lits %v", p.IsZero(), p.Holes(), p.Lits())
	}
}

func TestCleanedMatchesSplicing(t *testing.T) {
	for _, rc := range awkward {
		if got, want := Clean(rc).rc, cleanRecipient(rc); got != want {
			t.Errorf("Clean(%q) = %+v, want %+v", rc.Name, got, want)
		}
	}
}

func TestAppendHoleDoesNotAllocate(t *testing.T) {
	r := render(t, builtin(t), demoEdition(t), demoData)
	html, text := r.Parts()
	rc := Recipient{Name: "Zoë <Ørsted>", Email: "zoe+news@example.com", UnsubscribeURL: ada.UnsubscribeURL}
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		c := Clean(rc)
		b := buf[:0]
		for _, p := range []Part{html, text} {
			for i := range p.Holes() {
				b = p.AppendHole(b, i, c)
			}
		}
	})
	if allocs != 0 {
		t.Errorf("%v allocations per recipient, want 0", allocs)
	}
}
