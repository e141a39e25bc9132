package mailer

import (
	"bytes"
	"strings"
	"testing"

	"newsletter/templates"
)

// AppendParts lays out exactly the bytes AppendMessage writes, with the
// edition's static chunks shared rather than copied.
func TestAppendPartsMatchesAppendMessage(t *testing.T) {
	for _, r := range []*templates.Rendered{demo(t), renderCustom(t, ".a", "..", ".", strings.Repeat("x", 75)+".y", "")} {
		p := mustPrepare(t, prepareInput(r))
		var m Parts // reused, as the bulk path does
		for _, rc := range testRecipients {
			rc.Date = testDate
			want, err := p.AppendMessage(nil, rc)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.AppendParts(&m, rc); err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(m.Data, nil); !bytes.Equal(got, want) {
				t.Fatalf("parts for %q differ from AppendMessage:\n%s", rc.Name, firstDiff(string(want), string(got)))
			}
			unstuff(t, want) // checks the stuffing
			if m.Len() != len(want) {
				t.Errorf("Len %d, want %d", m.Len(), len(want))
			}
		}
	}
	// The shared chunks are the bulk of a demo message: a copy costs the
	// recipient's own lines only.
	p := mustPrepare(t, prepareInput(demo(t)))
	var m Parts
	if err := p.AppendParts(&m, testRecipients[0]); err != nil {
		t.Fatal(err)
	}
	if own := len(m.own); own*5 > m.Len() {
		t.Errorf("%d of %d bytes copied per recipient", own, m.Len())
	}
}
