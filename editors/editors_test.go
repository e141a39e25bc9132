package editors_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"newsletter/editors"
	"newsletter/internal/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

const pw = "correct horse battery staple"

func TestAccounts(t *testing.T) {
	s := &editors.Store{DB: pgtest.New(t)}
	ctx := context.Background()
	admin, err := s.Add(ctx, "Chief@News.Example", editors.Admin, pw)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "chief@news.example", editors.Editor, pw); !errors.Is(err, editors.ErrExists) {
		t.Fatalf("second account for the same address: %v", err)
	}
	for _, bad := range []string{"short", strings.Repeat("x", editors.MaxPassword+1)} {
		if _, err := s.Add(ctx, "ed@news.example", editors.Editor, bad); err == nil {
			t.Errorf("password of %d bytes accepted", len(bad))
		}
	}
	if _, err := s.Add(ctx, "not an address", editors.Editor, pw); err == nil {
		t.Error("a malformed address accepted")
	}
	// The same answer for a wrong password and an unknown account.
	if a, err := s.Authenticate(ctx, "chief@news.example", pw); err != nil || a.ID != admin.ID || a.Role != editors.Admin {
		t.Fatalf("sign-in: %+v %v", a, err)
	}
	_, wrong := s.Authenticate(ctx, "chief@news.example", pw+"!")
	_, unknown := s.Authenticate(ctx, "nobody@news.example", pw)
	if !errors.Is(wrong, editors.ErrBadPassword) || !errors.Is(unknown, editors.ErrBadPassword) || wrong.Error() != unknown.Error() {
		t.Fatalf("wrong password %v, unknown account %v", wrong, unknown)
	}
	// The password hash is Argon2id with a salt: two accounts with one
	// password have different hashes, and neither holds the password.
	if _, err := s.Add(ctx, "ed@news.example", editors.Editor, pw); err != nil {
		t.Fatal(err)
	}
	var hashes []string
	s.DB.Select(&hashes, `SELECT password_hash FROM editors`)
	if len(hashes) != 2 || hashes[0] == hashes[1] || !strings.HasPrefix(hashes[0], "$argon2id$") || strings.Contains(hashes[0]+hashes[1], pw) {
		t.Fatalf("hashes %q", hashes)
	}
	if err := s.SetPassword(ctx, "ed@news.example", "another long password"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "ed@news.example", pw); !errors.Is(err, editors.ErrBadPassword) {
		t.Fatalf("old password after a change: %v", err)
	}
	// The last admin stays; an editor goes.
	if _, err := s.Remove(ctx, "chief@news.example"); !errors.Is(err, editors.ErrLastAdmin) {
		t.Fatalf("removing the last admin: %v", err)
	}
	if _, err := s.Remove(ctx, "ed@news.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Remove(ctx, "ed@news.example"); !errors.Is(err, editors.ErrNotFound) {
		t.Fatalf("removing twice: %v", err)
	}
}

func TestTokens(t *testing.T) {
	s := &editors.Store{DB: pgtest.New(t)}
	ctx := context.Background()
	if _, err := s.Add(ctx, "cms@news.example", editors.Editor, pw); err != nil {
		t.Fatal(err)
	}
	tok, err := s.NewToken(ctx, "cms@news.example", "cms-morning")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.NewToken(ctx, "cms@news.example", "cms-morning"); !errors.Is(err, editors.ErrTokenName) {
		t.Fatalf("a second token of that name: %v", err)
	}
	if _, err := s.NewToken(ctx, "nobody@news.example", "x"); !errors.Is(err, editors.ErrNotFound) {
		t.Fatalf("a token for nobody: %v", err)
	}
	if _, err := s.NewToken(ctx, "cms@news.example", "bad name\n"); err == nil {
		t.Fatal("a token name with a line break accepted")
	}
	a, name, err := s.ByToken(ctx, tok)
	if err != nil || a.Email != "cms@news.example" || a.Role != editors.Editor || name != "cms-morning" {
		t.Fatalf("ByToken: %+v %q %v", a, name, err)
	}
	for _, bad := range []string{"", "nlt_", tok[:len(tok)-1] + "A", strings.ToUpper(tok), "Bearer " + tok} {
		if _, _, err := s.ByToken(ctx, bad); !errors.Is(err, editors.ErrBadToken) {
			t.Errorf("token %q: %v", bad, err)
		}
	}
	if err := s.Revoke(ctx, "cms-morning"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.ByToken(ctx, tok); !errors.Is(err, editors.ErrBadToken) {
		t.Fatalf("a revoked token: %v", err)
	}
	if err := s.Revoke(ctx, "cms-morning"); !errors.Is(err, editors.ErrBadToken) {
		t.Fatalf("revoking twice: %v", err)
	}
}

func TestAudit(t *testing.T) {
	db := pgtest.New(t)
	ctx := context.Background()
	if err := editors.Audit(ctx, db, "chief@news.example", "send", "2025-11-13", "to 5000\nsubscribers", "203.0.113.9"); err != nil {
		t.Fatal(err)
	}
	if err := editors.Audit(ctx, db, editors.CLI, "Bad Action", "", "", ""); err == nil {
		t.Fatal("a malformed action accepted")
	}
	var got []editors.Entry
	if err := editors.EachAudit(ctx, db, time.Now().Add(-time.Hour), func(e editors.Entry) error { got = append(got, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Detail != "to 5000 subscribers" || got[0].IP == nil || *got[0].IP != "203.0.113.9" || got[0].Action != "send" {
		t.Fatalf("audit record: %+v", got)
	}
}
