package smtpclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

const secret = "s3cr3t-pw"

func TestParseURLGood(t *testing.T) {
	tests := []struct {
		raw  string
		want Config
	}{
		{"smtp://user:pass@smtp.example.com:2525?tls=starttls",
			Config{Host: "smtp.example.com", Port: 2525, Username: "user", Password: "pass", TLS: TLSStartTLS}},
		{"smtp://smtp.example.com",
			Config{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS}},
		{"SMTP://smtp.example.com/",
			Config{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS}},
		{"smtps://user:pass@smtp.example.com",
			Config{Host: "smtp.example.com", Port: 465, Username: "user", Password: "pass", TLS: TLSImplicit}},
		{"smtps://smtp.example.com:4650?tls=tls",
			Config{Host: "smtp.example.com", Port: 4650, TLS: TLSImplicit}},
		{"smtp://smtp.example.com?tls=tls",
			Config{Host: "smtp.example.com", Port: 465, TLS: TLSImplicit}},
		{"smtp://127.0.0.1:1025?tls=none",
			Config{Host: "127.0.0.1", Port: 1025, TLS: TLSNone}},
		{"smtp://[::1]:1025?tls=NONE",
			Config{Host: "::1", Port: 1025, TLS: TLSNone}},
		{"smtp://apikey%40example.com:p%40ss%2Fw%3Ard%23%25@mail.example.com:25?tls=starttls&timeout=5s&helo=news.example.com",
			Config{Host: "mail.example.com", Port: 25, Username: "apikey@example.com", Password: "p@ss/w:rd#%",
				TLS: TLSStartTLS, Timeout: 5 * time.Second, HELO: "news.example.com"}},
		// An unescaped '@' in the password still parses (the last '@' ends userinfo).
		{"smtp://user:p@ss@smtp.example.com",
			Config{Host: "smtp.example.com", Port: 587, Username: "user", Password: "p@ss", TLS: TLSStartTLS}},
		// Surrounding white space (a trailing newline from a secrets file) is ignored.
		{"  smtp://smtp.example.com:587?helo=[192.0.2.1]\n",
			Config{Host: "smtp.example.com", Port: 587, TLS: TLSStartTLS, HELO: "[192.0.2.1]"}},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			got, err := ParseURL(tt.raw)
			if err != nil {
				t.Fatalf("ParseURL: %v", err)
			}
			if got != tt.want {
				t.Errorf("got  %#v\nwant %#v", got, tt.want)
				t.Errorf("got password %q, want %q", got.Password, tt.want.Password)
			}
		})
	}
}

func TestParseURLBadNeverLeaksPassword(t *testing.T) {
	bad := []struct {
		raw  string
		hint string // a substring the error must contain to tell what to fix
	}{
		{"", "empty"},
		{secret, "scheme"},
		{"s3cr3t-pw://host", "scheme"},
		{"://u:s3cr3t-pw@host", "not a valid URL"},
		{"http://u:s3cr3t-pw@host", "smtp://"},
		{"smtp:u:s3cr3t-pw@host", "two slashes"},
		{"smtp://u:s3cr3t-pw@host:99999", "port"},
		{"smtp://u:s3cr3t-pw@host:0", "port"},
		{"smtp://u:s3cr3t-pw@host:abc", "not a valid URL"},
		{"smtp://u:s3cr3t-pw@host:", "empty port"},
		{"smtp://u:s3cr3t-pw@:25", "no host"},
		{"smtp://u:s3cr3t-pw@/x", "path"},
		{"smtp://u:s3cr3t-pw@host/path", "path"},
		{"smtp://u:s3cr3t-pw/@host", "not a valid URL"},
		{"smtp://u:s3cr3t-pw#frag@host", "%23"},
		{"smtp://u:s3cr3t-pw@host#frag", "%23"},
		{"smtp://u:s3cr3t-pw%zz@host", "not a valid URL"},
		{"smtp://u:s3cr3t pw@host", "not a valid URL"},
		{"smtp://u:s3cr3t-pw@ho st", "not a valid URL"},
		{"smtp://u:s3cr3t-pw@[::1", "not a valid URL"},
		{"smtp://u:s3cr3t-pw@ho\nst", "control"},
		{"smtp://u:s3cr3t-pw\t@host", "control"},
		{"smtp://u:s3cr3t-pw@host\x00", "control"},
		{"smtp://:s3cr3t-pw@host", "no user name"},
		{"smtp://u:@host", "no password"},
		{"smtp://u@host", "no password"},
		{"smtp://u:s3cr3t-pw@host?tls=bogus", "tls="},
		{"smtp://u:s3cr3t-pw@host?tls=s3cr3t-pw", "tls="},
		{"smtp://u:s3cr3t-pw@host?tls=", "tls="},
		{"smtps://u:s3cr3t-pw@host?tls=none", "smtps://"},
		{"smtps://u:s3cr3t-pw@host?tls=starttls", "smtps://"},
		{"smtp://u:s3cr3t-pw@host?tls=none&tls=none", "repeats"},
		{"smtp://u:s3cr3t-pw@host?s3cr3t-pw=1", "unknown query parameter"},
		{"smtp://u:s3cr3t-pw@host?s3cr3t-pw=1&s3cr3t-pw=2", "repeats"},
		{"smtp://u:s3cr3t-pw@host?timeout=s3cr3t-pw", "timeout="},
		{"smtp://u:s3cr3t-pw@host?timeout=-1s", "timeout="},
		{"smtp://u:s3cr3t-pw@host?timeout=0", "timeout="},
		{"smtp://u:s3cr3t-pw@host?helo=s3cr3t-pw%0a", "helo="},
		{"smtp://u:s3cr3t-pw@host?helo=a%20b", "helo="},
		{"smtp://u:s3cr3t-pw@host?helo=", "helo="},
		{"smtp://u:s3cr3t-pw@host?%zz", "query"},
		{"smtp://u:s3cr3t-pw@host;x", "invalid host"},
		{"smtp://u:s3cr3t-pw@h%C3%B6st", "punycode"},
	}
	for _, tt := range bad {
		t.Run(fmt.Sprintf("%q", tt.raw), func(t *testing.T) {
			cfg, err := ParseURL(tt.raw)
			if err == nil {
				t.Fatalf("ParseURL accepted %q: %#v", tt.raw, cfg)
			}
			msg := err.Error()
			if strings.Contains(msg, secret) {
				t.Errorf("error leaks the password: %s", msg)
			}
			if !strings.Contains(msg, "SMTP_URL") {
				t.Errorf("error does not name SMTP_URL: %s", msg)
			}
			if !strings.Contains(msg, tt.hint) {
				t.Errorf("error %q does not contain hint %q", msg, tt.hint)
			}
			if cfg.Password != "" {
				t.Errorf("returned Config carries the password next to an error")
			}
		})
	}
}

func TestConfigRedaction(t *testing.T) {
	cfg, err := ParseURL("smtp://user:" + secret + "@smtp.example.com:587?tls=starttls&timeout=30s&helo=news.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := cfg.String(), "smtp://user:xxxxx@smtp.example.com:587?helo=news.example.com&timeout=30s&tls=starttls"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	for _, f := range []string{"%v", "%+v", "%#v", "%s", "%q"} {
		for _, v := range []any{cfg, &cfg} {
			if s := fmt.Sprintf(f, v); strings.Contains(s, secret) {
				t.Errorf("fmt %s leaks password: %s", f, s)
			}
		}
	}
	var buf bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&buf, nil))
	log.Info("dialing", "smtp", cfg)
	if strings.Contains(buf.String(), secret) || !strings.Contains(buf.String(), `"password":"xxxxx"`) {
		t.Errorf("slog output = %s", buf.String())
	}
	buf.Reset()
	slog.New(slog.NewTextHandler(&buf, nil)).Info("dialing", "smtp", cfg)
	if strings.Contains(buf.String(), secret) || !strings.Contains(buf.String(), "smtp.host=smtp.example.com") {
		t.Errorf("slog text output = %s", buf.String())
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Errorf("json leaks password: %s", b)
	}

	// Round trip: same settings, password replaced.
	back, err := ParseURL(cfg.String())
	if err != nil {
		t.Fatal(err)
	}
	want := cfg
	want.Password = "xxxxx"
	if back != want {
		t.Errorf("round trip = %#v, want %#v", back, want)
	}

	for _, c := range []Config{
		{Host: "h.example", TLS: TLSImplicit},
		{Host: "::1", Port: 1025, TLS: TLSNone},
		{Host: "h.example"},
	} {
		back, err := ParseURL(c.String())
		if err != nil {
			t.Fatalf("ParseURL(%q): %v", c.String(), err)
		}
		c.Port, c.TLS = c.port(), c.mode()
		if back != c {
			t.Errorf("round trip of %q = %#v", c.String(), back)
		}
	}
}
