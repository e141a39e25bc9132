package smtpclient

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"newsletter/internal/smtptest"
)

// Both dialers, the pipelined one and go-mail's: a misconfigured relay is
// told apart from a bad moment the same way whichever sends.
var dialers = map[string]func(context.Context, Config) error{
	"Dial": func(ctx context.Context, cfg Config) error {
		c, err := Dial(ctx, cfg)
		if err == nil {
			c.Close()
		}
		return err
	},
	"DialMsg": func(ctx context.Context, cfg Config) error {
		c, err := DialMsg(ctx, cfg)
		if err == nil {
			c.Close()
		}
		return err
	},
}

func TestMisconfiguredRelayHasAFix(t *testing.T) {
	tlsAuth := smtptest.Start(t, smtptest.WithTLS(), smtptest.WithAuth("user", secret))
	plainAuth := smtptest.Start(t, smtptest.WithAuth("user", secret))
	plain := smtptest.Start(t)
	implicit := smtptest.Start(t, smtptest.WithImplicitTLS())
	good := plainConfig(tlsAuth)
	good.TLS, good.Username, good.Password, good.TLSConfig = TLSStartTLS, "user", secret, tlsAuth.ClientTLSConfig()

	cases := []struct {
		name string
		cfg  func() Config
		fix  string
	}{
		{"wrong password", func() Config { c := good; c.Password = "wrong-" + secret; return c }, fixCredentials},
		{"untrusted certificate", func() Config { c := good; c.TLSConfig = nil; return c }, fixUntrusted},
		{"no STARTTLS", func() Config { c := plainConfig(plainAuth); c.TLS = TLSStartTLS; return c }, fixNoStartTLS},
		{"no AUTH", func() Config { c := plainConfig(plain); c.Username, c.Password = "user", secret; return c }, fixNoAuth},
		{"plain port as smtps", func() Config { c := plainConfig(plain); c.TLS = TLSImplicit; return c }, fixNotTLS},
		{"host not in the certificate", func() Config {
			c := good
			c.TLSConfig = tlsAuth.ClientTLSConfig()
			c.TLSConfig.ServerName = "relay.example.com"
			return c
		}, fixHostname},
	}
	for dname, dial := range dialers {
		for _, tc := range cases {
			t.Run(dname+"/"+tc.name, func(t *testing.T) {
				err := dial(context.Background(), tc.cfg())
				if !errors.Is(err, ErrMisconfigured) {
					t.Fatalf("not misconfigured: %v", err)
				}
				e := Classify(err)
				if e.Fix != tc.fix || !strings.Contains(err.Error(), "fix: "+tc.fix) {
					t.Errorf("fix %q, want %q; error: %v", e.Fix, tc.fix, err)
				}
				assertNoSecret(t, err)
			})
		}
	}
	// A relay that is merely away is not misconfigured.
	away := plainConfig(plain)
	away.Port = implicit.Port() + 0
	implicit.Close()
	if err := dialers["Dial"](context.Background(), away); err == nil || errors.Is(err, ErrMisconfigured) {
		t.Errorf("unreachable relay: %v, want an error that is not a misconfiguration", err)
	}
}

// A relay that wants AUTH says so to MAIL FROM when we have no credentials:
// every message would get the same answer.
func TestAuthRequiredAtMailIsMisconfigured(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithAuth("user", secret))
	c := dialBulkT(t, plainConfig(s))
	envs := envelopes(t, small(t), 3, rcptN)
	results := make([]Result, 3)
	c.Send(context.Background(), envs, results)
	for i, r := range results {
		if r.OK || r.Err == nil || !r.Err.Misconfigured || r.Err.Fix != fixNeedsAuth || r.Err.Code != CodeAuthRequired {
			t.Errorf("message %d: %+v", i, r.Err)
		}
	}
}

func TestCAFileTrustsAPrivateCA(t *testing.T) {
	s := smtptest.Start(t, smtptest.WithTLS(), smtptest.WithAuth("user", secret))
	dir := t.TempDir()
	ca := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(ca, s.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseURL(fmt.Sprintf("smtp://user:%s@%s?ca=%s", secret, s.Addr(), ca))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.CAFile != ca || !strings.Contains(cfg.String(), "ca=") {
		t.Errorf("CAFile %q, String %s", cfg.CAFile, cfg)
	}
	for name, dial := range dialers {
		if err := dial(context.Background(), cfg); err != nil {
			t.Errorf("%s with ca=%s: %v", name, ca, err)
		}
	}
	// Without it the same relay is untrusted (the test's certificate is in
	// no system store).
	cfg.TLSConfig = nil
	if err := dialers["Dial"](context.Background(), cfg); !errors.Is(err, ErrMisconfigured) {
		t.Errorf("without ca=: %v", err)
	}

	empty := filepath.Join(dir, "empty.pem")
	os.WriteFile(empty, []byte("not a certificate\n"), 0o600)
	for file, hint := range map[string]string{
		filepath.Join(dir, "missing.pem"): "cannot read",
		empty:                             "no PEM certificate",
	} {
		_, err := ParseURL(fmt.Sprintf("smtp://user:%s@%s?ca=%s", secret, s.Addr(), file))
		if err == nil || !strings.Contains(err.Error(), file) || !strings.Contains(err.Error(), hint) || strings.Contains(err.Error(), secret) {
			t.Errorf("ca=%s: %v, want the file named and %q", file, err, hint)
		}
	}
}

func TestUnknownParameterNamed(t *testing.T) {
	_, err := ParseURL("smtp://u:" + secret + "@host?tsl=none")
	if err == nil || !strings.Contains(err.Error(), `unknown query parameter "tsl"`) {
		t.Errorf("misspelt tls: %v", err)
	}
	// Part of the password pushed into the query by an unencoded '?'
	// is never named.
	for _, raw := range []string{"smtp://u:" + secret + "@host?" + secret + "=1", "smtp://u:pw@host?a@b.c=1"} {
		_, err := ParseURL(raw)
		if err == nil || !strings.Contains(err.Error(), "unknown query parameter (not shown)") {
			t.Errorf("%s: %v", raw, err)
		}
	}
}
