package web_test

import (
	"testing"

	"newsletter/subscribers"
	"newsletter/web"
)

// Every page forbids framing in both the CSP and the older header; with an
// https base URL, browsers are told to keep to https (RFC 6797), and with
// a plain http one they are not, as it would lock readers out.
func TestSecurityHeaders(t *testing.T) {
	for _, c := range []struct {
		base, hsts string
	}{
		{"", ""},
		{"https://news.example/newsletter", "max-age=31536000"},
	} {
		f := newFixtureWith(t, func(s *web.Server, _ *subscribers.Store) {
			if c.base != "" {
				s.BaseURL = c.base
			}
		})
		for _, p := range []string{"/healthz", "/subscribe", "/editions/2030-01-01"} {
			resp, _ := f.get(t, p)
			if got := resp.Header.Get("X-Frame-Options"); got != "DENY" {
				t.Errorf("base %q, %s: X-Frame-Options %q, want DENY", c.base, p, got)
			}
			if got := resp.Header.Get("Strict-Transport-Security"); got != c.hsts {
				t.Errorf("base %q, %s: Strict-Transport-Security %q, want %q", c.base, p, got, c.hsts)
			}
		}
	}
}
