package subscribers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

func newStore(t *testing.T) *subscribers.Store {
	t.Helper()
	tok, err := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	return &subscribers.Store{DB: pgtest.New(t), Tokens: tok}
}

func TestNormalizeAddress(t *testing.T) {
	good := map[string]string{
		"ada@example.com":         "ada@example.com",
		"  Ada.L@Example.COM ":    "Ada.L@example.com",
		"o'brien+news@mail.co.uk": "o'brien+news@mail.co.uk",
		"jürgen@müller.de":        "jürgen@müller.de",
		"reader@xn--mller-kva.de": "reader@müller.de",
	}
	for in, want := range good {
		got, err := subscribers.NormalizeAddress(in)
		if err != nil || got != want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	bad := []string{"", "ada", "ada@", "@example.com", "ada@example", "ada@@example.com",
		"Ada <ada@example.com>", "ada@example.com\r\nBcc: x@y.z", "ada@exa mple.com",
		"ada@-example.com", "ada@example..com", "a,b@example.com", "ada@example.c",
		strings.Repeat("a", 65) + "@example.com"}
	for _, in := range bad {
		if got, err := subscribers.NormalizeAddress(in); err == nil {
			t.Errorf("NormalizeAddress(%q) = %q, want an error", in, got)
		}
	}
}

func TestAddAndUnsubscribeToken(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, err := s.Add(ctx, "Ada@Example.com", "Ada\r\nBcc: evil@example.com", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if a.Name != "Ada Bcc: evil@example.com" || a.Email != "Ada@example.com" || a.Status != subscribers.Confirmed || a.ConfirmedAt == nil {
		t.Fatalf("stored %+v", a)
	}
	if _, err := s.Add(ctx, "ada@EXAMPLE.com", "", subscribers.Pending); !errors.Is(err, subscribers.ErrExists) {
		t.Fatalf("second add of the same address: %v, want ErrExists", err)
	}
	b, err := s.Add(ctx, "bob@example.com", "", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}

	tokA := s.Tokens.Unsubscribe(a.UUID)
	if len(tokA) != 43 || tokA == s.Tokens.Unsubscribe(b.UUID) {
		t.Fatalf("tokens %q / %q: want 43 distinct characters each", tokA, s.Tokens.Unsubscribe(b.UUID))
	}
	got, err := s.ByUnsubscribeToken(ctx, tokA)
	if err != nil || got.ID != a.ID {
		t.Fatalf("ByUnsubscribeToken = %+v, %v; want subscriber %d", got, err, a.ID)
	}
	// The database keeps only the hash, never the token.
	var stored []byte
	if err := s.DB.Get(&stored, `SELECT unsub_token_hash FROM subscribers WHERE id = $1`, a.ID); err != nil {
		t.Fatal(err)
	}
	if string(stored) == tokA || strings.Contains(string(stored), tokA) {
		t.Fatal("the token is stored in the clear")
	}
	// A tampered token (one character changed) and a token made with another
	// secret are both refused.
	tampered := []byte(tokA)
	tampered[10] ^= 1
	other, _ := subscribers.NewTokens([]byte(strings.Repeat("x", 32)))
	for _, tok := range []string{string(tampered), other.Unsubscribe(a.UUID), "", "short", tokA + "x"} {
		if _, err := s.ByUnsubscribeToken(ctx, tok); !errors.Is(err, subscribers.ErrNotFound) {
			t.Errorf("ByUnsubscribeToken(%q) = %v, want ErrNotFound", tok, err)
		}
	}
	if err := s.Unsubscribe(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.Unsubscribe(ctx, a.ID); err != nil { // idempotent
		t.Fatal(err)
	}
	got, _ = s.Get(ctx, a.ID)
	if got.Status != subscribers.Unsubscribed || got.UnsubscribedAt == nil {
		t.Fatalf("after unsubscribe: %+v", got)
	}
	// The link keeps working after unsubscribing (it never expires).
	if _, err := s.ByUnsubscribeToken(ctx, tokA); err != nil {
		t.Fatalf("token after unsubscribe: %v", err)
	}
}

func TestNewTokensRefusesShortSecret(t *testing.T) {
	if _, err := subscribers.NewTokens([]byte("short")); err == nil {
		t.Fatal("a 5-byte secret was accepted")
	}
}

func statusOf(t *testing.T, s *subscribers.Store, email string) subscribers.Status {
	t.Helper()
	sub, err := s.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("%s: %v", email, err)
	}
	return sub.Status
}

func TestImport(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Add(ctx, "left@example.com", "Left", subscribers.Unsubscribed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "waiting@example.com", "", subscribers.Pending); err != nil {
		t.Fatal(err)
	}
	csv := "name,email,status\n" +
		"Ada,ada@example.com,confirmed\n" +
		"\"Brontë, Charlotte\",charlotte@example.com,\n" +
		"Left Again,LEFT@example.com,confirmed\n" +
		",waiting@example.com,confirmed\n" +
		"Quitter,quit@example.com,unsubscribed\n"
	res, err := s.Import(ctx, strings.NewReader(csv), subscribers.Pending)
	if err != nil {
		t.Fatal(err)
	}
	want := subscribers.ImportResult{Rows: 5, Added: 3, Updated: 2, KeptUnsubscribed: 1}
	if res != want {
		t.Fatalf("import result %+v, want %+v", res, want)
	}
	for email, st := range map[string]subscribers.Status{
		"ada@example.com":       subscribers.Confirmed,
		"charlotte@example.com": subscribers.Pending,
		"left@example.com":      subscribers.Unsubscribed, // never brought back
		"waiting@example.com":   subscribers.Confirmed,
		"quit@example.com":      subscribers.Unsubscribed,
	} {
		if got := statusOf(t, s, email); got != st {
			t.Errorf("%s: status %s, want %s", email, got, st)
		}
	}
	c, _ := s.ByEmail(ctx, "charlotte@example.com")
	if c.Name != "Brontë, Charlotte" {
		t.Errorf("name %q", c.Name)
	}
	w, _ := s.ByEmail(ctx, "waiting@example.com")
	if w.ConfirmedAt == nil {
		t.Error("pending person confirmed by import has no confirmed_at")
	}
}

func TestImportBadRowsImportsNothing(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Add(ctx, "kept@example.com", "Kept", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	csv := "email,name,status\n" +
		"good@example.com,Good,confirmed\n" + // line 2
		"not-an-address,Bad,confirmed\n" + // line 3
		"kept@example.com,Renamed,unsubscribed\n" + // line 4 (valid)
		"x@example.com,X,subscribed\n" + // line 5: bad status
		"good@example.com,Twice,\n" + // line 6: duplicate
		"y@example.com,\"Y\r\nBcc: z@example.com\",\n" // line 7: line break in name
	_, err := s.Import(ctx, strings.NewReader(csv), subscribers.Confirmed)
	var ie *subscribers.ImportError
	if !errors.As(err, &ie) {
		t.Fatalf("import of a bad file: %v, want an ImportError", err)
	}
	var lines []int
	for _, r := range ie.Rows {
		lines = append(lines, r.Line)
	}
	if len(lines) != 4 || lines[0] != 3 || lines[1] != 5 || lines[2] != 6 || lines[3] != 7 {
		t.Fatalf("bad lines %v (%v), want [3 5 6 7]", lines, err)
	}
	// Nothing of the file was stored, and what was there is intact.
	var n int
	s.DB.Get(&n, `SELECT count(*) FROM subscribers`)
	if n != 1 {
		t.Fatalf("%d subscribers after a failed import, want the 1 already there", n)
	}
	k, _ := s.ByEmail(ctx, "kept@example.com")
	if k.Name != "Kept" || k.Status != subscribers.Confirmed {
		t.Fatalf("existing subscriber changed by a failed import: %+v", k)
	}
}

func TestImportRejectsFilesThatAreNotLists(t *testing.T) {
	s := newStore(t)
	for name, in := range map[string]string{
		"empty":        "",
		"no email col": "name,status\nAda,confirmed\n",
		"unknown col":  "email,phone\nada@example.com,123\n",
		"header only":  "email\n",
	} {
		if _, err := s.Import(context.Background(), strings.NewReader(in), subscribers.Confirmed); err == nil {
			t.Errorf("%s: import succeeded, want an error", name)
		}
	}
}

func TestImportLargeFileInBatches(t *testing.T) {
	s := newStore(t)
	var b strings.Builder
	b.WriteString("email\n")
	for i := range 1234 {
		fmt.Fprintf(&b, "reader%d@example.com\n", i)
	}
	res, err := s.Import(context.Background(), strings.NewReader(b.String()), subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if res.Added != 1234 {
		t.Fatalf("added %d, want 1234", res.Added)
	}
	n := 0
	if err := s.Each(context.Background(), subscribers.Confirmed, func(subscribers.Subscriber) error { n++; return nil }); err != nil || n != 1234 {
		t.Fatalf("Each saw %d (%v), want 1234", n, err)
	}
}
