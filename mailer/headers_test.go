package mailer

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

func TestFeedbackID(t *testing.T) {
	got := FeedbackID("2025-11-13", "edition", "London Daily: ünï", "news.example.com")
	if want := "2025-11-13:edition:London-Daily----n--:news.example.com"; got != want {
		t.Errorf("FeedbackID = %q, want %q", got, want)
	}
	m := sampleMessage()
	m.FeedbackID = "a:b c"
	if _, err := Build(m); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Feedback-ID with a space: %v", err)
	}
	m.FeedbackID = ""
	m.Headers = map[string]string{"feedback-id": "x:y"}
	if _, err := Build(m); !errors.Is(err, ErrInvalidMessage) {
		t.Errorf("Feedback-ID in Headers: %v", err)
	}
}

// Each bulk copy's List-Unsubscribe mailto is the recipient's own mailbox,
// named by their token, next to the one-click link (RFC 2369 section 3.2,
// RFC 8058 section 3.1); without a token it is the shared address.
func TestUnsubscribeMailboxPerRecipient(t *testing.T) {
	in := prepareInput(demo(t))
	p := mustPrepare(t, in)
	rc := testRecipients[0]
	raw, err := p.AppendMessage(nil, rc)
	if err != nil {
		t.Fatal(err)
	}
	want := "<" + rc.UnsubscribeURL + ">,\r\n <mailto:unsubscribe+" + rc.UnsubscribeToken + "@bounces.news.example.com?subject=unsubscribe>\r\n"
	if !bytes.Contains(raw, []byte("List-Unsubscribe: "+want)) {
		t.Errorf("List-Unsubscribe is not %q:\n%s", want, raw[:bytes.Index(raw, []byte("\r\n\r\n"))])
	}
	if !bytes.Contains(raw, []byte("\r\nFeedback-ID: 2025-11-13:edition:london-daily:news.example.com\r\n")) {
		t.Error("no Feedback-ID field")
	}
	rc.UnsubscribeToken = ""
	raw, _ = p.AppendMessage(nil, rc)
	if !bytes.Contains(raw, []byte("<"+in.UnsubscribeMailto+">")) {
		t.Errorf("without a token, the mailto is not the shared %s", in.UnsubscribeMailto)
	}
	for _, bad := range []string{"a.b", "a b", "a@b", strings.Repeat("x", 53), "ü"} {
		rc.UnsubscribeToken = bad
		if _, err := p.AppendMessage(nil, rc); !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	in.UnsubscribeDomain = "not a domain"
	if _, err := Prepare(in); err == nil {
		t.Error("Prepare accepted an UnsubscribeDomain with a space")
	}
}
