package mailer

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"newsletter/internal/smtptest"
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
			if m.Len() != len(want) {
				t.Errorf("Len %d, want %d", m.Len(), len(want))
			}
			if !dotStuffed(m.Data) {
				t.Errorf("parts for %q are not dot-stuffed", rc.Name)
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

// stuffedReference is the stuffing rule read literally, line start by line
// start (a bare CR starts a line too), as the oracle for dotStuffed.
func stuffedReference(s string) bool {
	for i := 0; i < len(s); i++ {
		if (i == 0 || s[i-1] == '\n' || s[i-1] == '\r') && s[i] == '.' {
			if i+1 >= len(s) || s[i+1] != '.' {
				return false
			}
			i++ // the stuffed dot; what follows does not start a line
		}
	}
	return true
}

// However the data is split into pieces, the stuffing check agrees with the
// rule.
func TestDotStuffedParts(t *testing.T) {
	samples := []string{
		"", "a\r\nb\r\n", "..a\r\n", ".a\r\n", "a\r\n.\r\nMAIL FROM:<x>", "a\r\n..\r\n",
		"a\r\n...\r\n", "a.b. c.\r\n", "a\n.\n", "a\r.\r\n", "a\r\n.", "a\r\n..", ".", "..",
		"x\r\n..y\r\n.z", "\r\n.\r\n", "a\r\n..\r\n..\r\n.",
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		var b strings.Builder
		for range rng.IntN(20) {
			b.WriteString([]string{".", "..", "\r\n", "\n", "\r", "a"}[rng.IntN(6)])
		}
		samples = append(samples, b.String())
	}
	for _, s := range samples {
		want := stuffedReference(s)
		for range 20 {
			var parts [][]byte
			rest := []byte(s)
			for len(rest) > 0 {
				n := rng.IntN(len(rest) + 1)
				parts = append(parts, rest[:n]) // empty parts too
				rest = rest[n:]
			}
			if got := dotStuffed(parts); got != want {
				t.Fatalf("dotStuffed(%q) = %v, the rule says %v", parts, got, want)
			}
		}
	}
}

// A message sent in parts arrives as the same bytes as one sent whole, over
// a plain connection and a TLS one.
func TestBulkSendParts(t *testing.T) {
	for _, tlsMode := range []string{"plain", "starttls"} {
		t.Run(tlsMode, func(t *testing.T) {
			var s *smtptest.Server
			if tlsMode == "plain" {
				s = smtptest.Start(t)
			} else {
				s = smtptest.Start(t, smtptest.WithTLS())
			}
			cfg := plainConfig(s)
			if tlsMode == "starttls" {
				cfg.TLS, cfg.TLSConfig = TLSStartTLS, s.ClientTLSConfig()
			}
			c := dialBulkT(t, cfg)
			p := mustPrepare(t, prepareInput(demo(t)))
			const n = 30
			msgs := make([]Parts, n)
			envs := make([]Envelope, n)
			whole := make([]Envelope, n)
			for i := range n {
				rc := Recipient{Name: fmt.Sprintf("Reader %d", i), Email: rcptN(i), MessageID: fmt.Sprintf("%d@news.example.com", i),
					UnsubscribeURL: fmt.Sprintf("https://news.example.com/u/%d", i), Date: testDate}
				if err := p.AppendParts(&msgs[i], rc); err != nil {
					t.Fatal(err)
				}
				envs[i] = Envelope{From: bounceAddr, To: rc.Email, Data: msgs[i].Data}
				whole[i] = Envelope{From: bounceAddr, To: rc.Email, Data: [][]byte{bytes.Join(msgs[i].Data, nil)}}
			}
			results := make([]Result, n)
			c.Send(context.Background(), envs, results)
			checkAccepted(t, s.WaitFor(t, n, 5*time.Second), whole, results)
		})
	}
}
