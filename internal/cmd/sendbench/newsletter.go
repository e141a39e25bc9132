package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// newsletterBin is the binary under test and the configuration every run
// gives it.
type newsletterBin struct {
	path   string
	secret string
}

func buildNewsletter(ctx context.Context, bin, work string) (*newsletterBin, error) {
	nl := &newsletterBin{path: bin}
	if nl.path == "" {
		nl.path = filepath.Join(work, "newsletter")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nl.path, "./cmd/newsletter")
		if out, err := cmd.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/newsletter (run sendbench from the repository root): %w: %s", err, out)
		}
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	nl.secret = hex.EncodeToString(secret)
	return nl, nil
}

// env is the newsletter's environment: ours without any newsletter
// setting (a developer's own NEWSLETTER_* must not change the runs), plus
// the bench's.
func (nl *newsletterBin) env(dbURL string, extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "NEWSLETTER_") || k == "DATABASE_URL" || k == "SMTP_URL" {
			continue
		}
		env = append(env, kv)
	}
	env = append(env,
		"DATABASE_URL="+dbURL,
		"NEWSLETTER_FROM=London Daily <newsletter@example.com>",
		"NEWSLETTER_BASE_URL=https://news.example.com",
		"NEWSLETTER_SECRET="+nl.secret,
		"NEWSLETTER_TZ=UTC",
	)
	return append(env, extra...)
}

// run runs a short subcommand (migrate, edition import, preview).
func (nl *newsletterBin) run(ctx context.Context, dbURL string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, nl.path, args...)
	cmd.Env = nl.env(dbURL)
	return cmd.CombinedOutput()
}
