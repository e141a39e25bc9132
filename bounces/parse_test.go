package bounces

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseFixtures(t *testing.T) {
	cases := []struct {
		file, shape, status string
		kind                Kind
		diag                string // a part of the diagnostic
	}{
		{"rfc3464-hard.eml", "dsn", "5.0.0", Hard, "Host larry.slip.umd.edu unreachable"},
		{"postfix-hard.eml", "dsn", "5.1.1", Hard, "550 5.1.1 <address>: Recipient address rejected: User unknown"},
		{"postfix-delayed.eml", "dsn", "4.4.1", Soft, "Connection timed out"},
		{"exim-hard.eml", "text", "5.1.1", Hard, "Recipient address rejected: User unknown"},
		{"exim-delayed.eml", "text", "4.2.2", Soft, "Mailbox full"},
		{"exchange-hard.eml", "dsn", "5.1.10", Hard, "RESOLVER.ADR.RecipientNotFound"},
		{"exchange-prose.eml", "text", "5.1.1", Hard, "RecipNotFound"},
		{"gmail-hard.eml", "dsn", "5.1.1", Hard, "The email account that you tried to reach does not exist"},
		{"gmail-full.eml", "dsn", "4.2.2", Soft, "out of storage space"},
		{"yahoo-hard.eml", "text", "554", Hard, "doesn't have a yahoo.example account (<address>)"},
		{"arf-abuse.eml", "arf", "abuse", Complaint, ""},
		{"arf-yahoo.eml", "arf", "abuse", Complaint, ""},
		{"arf-not-spam.eml", "arf", "not-spam", Ignored, ""},
		{"autoreply-rfc3834.eml", "auto-reply", "", AutoReply, ""},
		{"autoreply-outlook.eml", "auto-reply", "", AutoReply, ""},
	}
	for _, c := range cases {
		t.Run(c.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", c.file))
			if err != nil {
				t.Fatal(err)
			}
			rep, err := Parse(bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if rep.Kind != c.kind || rep.Shape != c.shape || rep.Status != c.status || !strings.Contains(rep.Diagnostic, c.diag) {
				t.Fatalf("got %+v; want kind %s shape %s status %s, diagnostic with %q", rep, c.kind, c.shape, c.status, c.diag)
			}
			if strings.Contains(rep.Diagnostic, "@") || len(rep.Diagnostic) > MaxDiagnostic || strings.ContainsAny(rep.Diagnostic, "\r\n") {
				t.Fatalf("diagnostic %q: an address, a line break or too long", rep.Diagnostic)
			}
		})
	}
}

func TestParseRefusesHostileMessages(t *testing.T) {
	deep := "Content-Type: multipart/mixed; boundary=b0\r\n\r\n"
	for i := 1; i <= MaxDepth+2; i++ {
		deep += "--b" + string(rune('0'+i-1)) + "\r\nContent-Type: multipart/mixed; boundary=b" + string(rune('0'+i)) + "\r\n\r\n"
	}
	many := "Content-Type: multipart/mixed; boundary=x\r\n\r\n" + strings.Repeat("--x\r\nContent-Type: text/html\r\n\r\nhi\r\n", MaxParts+5) + "--x--\r\n"
	cases := map[string]string{
		"empty":              "",
		"no header end":      "From: a@b.example",
		"bad content type":   "Content-Type: multipart/report; boundary=\"\r\n\r\nbody",
		"no boundary":        "Content-Type: multipart/report; report-type=delivery-status\r\n\r\nbody",
		"truncated MIME":     "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n\r\nAction: fail",
		"status w/o rcpt":    "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; x\r\n--b--\r\n",
		"arf w/o type":       "Content-Type: multipart/report; boundary=b\r\n\r\n--b\r\nContent-Type: message/feedback-report\r\n\r\nVersion: 1\r\n\r\n--b--\r\n",
		"too deep":           deep,
		"too many parts":     many,
		"a plain message":    "From: someone@example.org\r\nSubject: hello\r\n\r\nJust saying hi.\r\n",
		"bounce-ish no code": "From: MAILER-DAEMON@x.example\r\nSubject: hi\r\n\r\nnothing to see\r\n",
	}
	for name, msg := range cases {
		if rep, err := Parse(strings.NewReader(msg)); err == nil {
			t.Errorf("%s: parsed as %+v, want an error", name, rep)
		}
	}
	big := "From: MAILER-DAEMON@x.example\r\nSubject: Undeliverable\r\n\r\n" + strings.Repeat("550 5.1.1 x\r\n", MaxMessage/12+1)
	if _, err := Parse(strings.NewReader(big)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a message over the limit: %v, want ErrTooLarge", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.eml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := Parse(bytes.NewReader(data))
		if err != nil {
			return
		}
		switch rep.Kind {
		case Hard, Soft, Complaint, AutoReply, Ignored:
		default:
			t.Fatalf("kind %q", rep.Kind)
		}
		if len(rep.Diagnostic) > MaxDiagnostic || strings.ContainsAny(rep.Diagnostic, "\r\n") {
			t.Fatalf("diagnostic %q", rep.Diagnostic)
		}
	})
}
