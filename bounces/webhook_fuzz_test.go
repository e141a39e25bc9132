package bounces

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzSESEvents feeds hostile SES notifications (what an SNS message
// carries, once its signature verified) to the parser: an error or events
// whose evidence is fit to keep, never a panic.
func FuzzSESEvents(f *testing.F) {
	f.Add(`{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bouncedRecipients":[{"emailAddress":"a@example.org","status":"5.1.1","diagnosticCode":"smtp; 550 5.1.1 <a@example.org> unknown"}]},"mail":{"source":"bounces+x@example.com","commonHeaders":{"messageId":"<m@example.com>"}}}`)
	f.Add(`{"eventType":"Complaint","complaint":{"complainedRecipients":[{"emailAddress":"a@example.org"}],"complaintFeedbackType":"abuse"}}`)
	f.Add(`{"notificationType":"Delivery"}`)
	f.Fuzz(func(t *testing.T, msg string) {
		evs, err := sesEvents(msg)
		if err != nil {
			return
		}
		for _, ev := range evs {
			switch ev.Kind {
			case Hard, Soft, Complaint, Ignored:
			default:
				t.Fatalf("kind %q", ev.Kind)
			}
			if len(ev.Diagnostic) > MaxDiagnostic || strings.ContainsAny(ev.Diagnostic, "\r\n") || !utf8.ValidString(ev.Diagnostic) {
				t.Fatalf("diagnostic %q", ev.Diagnostic)
			}
			if ev.Status != "" && enhanced(ev.Status) != ev.Status {
				t.Fatalf("status %q", ev.Status)
			}
		}
	})
}
