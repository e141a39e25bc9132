package subscribers_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"

	"newsletter/subscribers"
)

// Every spelling of one mailbox has one canonical form: the domain however
// it was written (Unicode, A-labels, case), the local part in NFC.
func TestNormalizeAddressOneFormPerMailbox(t *testing.T) {
	for _, spellings := range [][]string{
		{"dup@bücher.example", "dup@xn--bcher-kva.example", "dup@XN--BCHER-KVA.EXAMPLE", "dup@BÜCHER.example", "dup@bu\u0308cher.example"},
		{"rene\u0301@example.com", "ren\u00e9@example.com", "ren\u00e9@EXAMPLE.com"},
		{"ada@example.com", `"ada"@example.com`, "ada@Example.Com"},
	} {
		want, err := subscribers.NormalizeAddress(spellings[0])
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spellings[1:] {
			if got, err := subscribers.NormalizeAddress(s); err != nil || got != want {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want %q, the form of %q", s, got, err, want, spellings[0])
			}
		}
	}
}

// Control and invisible characters are refused with a message that names
// them; a NUL is a NUL, not a line break.
func TestNormalizeAddressNamesForbiddenCharacters(t *testing.T) {
	for in, want := range map[string]string{
		"ada\x00@example.com":       "U+0000 NUL",
		"ada\r\n@example.com":       "U+000D CARRIAGE RETURN",
		"ad\u009ba@example.com":     "U+009B",
		"ad\u2028a@example.com":     "U+2028 LINE SEPARATOR",
		"ad\u2029a@example.com":     "U+2029 PARAGRAPH SEPARATOR",
		"moc.\u202eada@example.com": "U+202E RIGHT-TO-LEFT OVERRIDE",
		"ad\u200ba@example.com":     "U+200B ZERO WIDTH SPACE",
		"\ufeffada@example.com":     "U+FEFF",
		"ad\u2066a@example.com":     "U+2066 LEFT-TO-RIGHT ISOLATE",
		"ad\u2060a@example.com":     "U+2060 WORD JOINER",
		"ad\u200da@example.com":     "U+200D ZERO WIDTH JOINER",
	} {
		_, err := subscribers.NormalizeAddress(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NormalizeAddress(%q) = %v; want an error naming %s", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "line break") && !strings.Contains(want, "line break") && strings.Contains(in, "\x00") {
			t.Errorf("NormalizeAddress(%q) calls a NUL a line break: %v", in, err)
		}
	}
}

// A quoted local part is valid (RFC 5321 section 4.1.2): one that is a
// dot-atom in quotes is the same mailbox without them; one that needs its
// quotes is refused saying so, not as "not an email address".
func TestNormalizeAddressQuotedLocalPart(t *testing.T) {
	if got, err := subscribers.NormalizeAddress(`"ada.l"@example.com`); err != nil || got != "ada.l@example.com" {
		t.Errorf(`"ada.l"@example.com: %q, %v`, got, err)
	}
	_, err := subscribers.NormalizeAddress(`"x y"@example.com`)
	if err == nil || !strings.Contains(err.Error(), "quoted") || !strings.Contains(err.Error(), "RFC 5321") {
		t.Errorf(`"x y"@example.com: %v; want a refusal that says the quoted form is why`, err)
	}
}

func TestCheckName(t *testing.T) {
	if err := subscribers.CheckName(strings.Repeat("é", subscribers.MaxNameLen)); err != nil {
		t.Errorf("a name of %d characters: %v", subscribers.MaxNameLen, err)
	}
	if err := subscribers.CheckName(strings.Repeat("a", 200000)); err == nil || !strings.Contains(err.Error(), "100") {
		t.Errorf("a name of 200000 characters: %v; want an error naming the limit", err)
	}
}

// Two spellings of one mailbox are one subscriber, and an address erased
// under one spelling stays erased under the other.
func TestOneMailboxOneSubscriber(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	res, err := s.Import(ctx, strings.NewReader("email\ndup@bücher.example\n"), subscribers.Confirmed)
	if err != nil || res.Added != 1 {
		t.Fatalf("first import: %+v, %v", res, err)
	}
	if _, err := s.Add(ctx, "dup@xn--bcher-kva.example", "", subscribers.Confirmed); !errors.Is(err, subscribers.ErrExists) {
		t.Fatalf("adding the A-label spelling: %v, want ErrExists", err)
	}
	res, err = s.Import(ctx, strings.NewReader("email\ndup@xn--bcher-kva.example\n"), subscribers.Confirmed)
	if err != nil || res.Added != 0 || res.Unchanged != 1 {
		t.Fatalf("import of the A-label spelling: %+v, %v; want it to be the same person, unchanged", res, err)
	}
	if _, err := s.Erase(ctx, "dup@XN--BCHER-KVA.example", subscribers.Source{Method: subscribers.MethodEditor}); err != nil {
		t.Fatalf("erase by the A-label spelling: %v", err)
	}
	for _, spelling := range []string{"dup@bücher.example", "dup@xn--bcher-kva.example"} {
		res, err = s.Import(ctx, strings.NewReader("email\n"+spelling+"\n"), subscribers.Confirmed)
		if err != nil || res.Added != 0 || res.Suppressed != 1 {
			t.Errorf("import of erased %s: %+v, %v; want it suppressed", spelling, res, err)
		}
		if _, err := s.Add(ctx, spelling, "", subscribers.Confirmed); !errors.Is(err, subscribers.ErrSuppressed) {
			t.Errorf("add of erased %s: %v, want ErrSuppressed", spelling, err)
		}
	}
}

// Suppressions written before addresses had one form hold the hash of the
// address as it was typed; an A-label spelling erased then is still found.
func TestSuppressionUnderTheOldASCIISpelling(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.DB.Exec(`INSERT INTO suppressions (email_hash, reason) VALUES ($1, 'erased')`, s.Tokens.AddressHash("dup@xn--bcher-kva.example")); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Suppressed(ctx, "dup@bücher.example"); err != nil || !ok {
		t.Fatalf("Suppressed = %v, %v; want the old A-label entry found", ok, err)
	}
	res, err := s.Import(ctx, strings.NewReader("email\ndup@bücher.example\n"), subscribers.Confirmed)
	if err != nil || res.Suppressed != 1 {
		t.Fatalf("import: %+v, %v; want it suppressed", res, err)
	}
}

// The per-address limit on confirmation mail counts one mailbox however
// it is spelt.
func TestConfirmationLimitOneMailbox(t *testing.T) {
	s := newStore(t)
	s.Confirm = subscribers.ConfirmPolicy{PerWindow: 1, Gap: -1}
	if signUp(t, s, "dup@bücher.example", "").Mailing == nil {
		t.Fatal("first sign-up got no mail")
	}
	if m := signUp(t, s, "dup@xn--bcher-kva.example", "").Mailing; m != nil {
		t.Fatal("the other spelling got a second confirmation mail past the limit of 1")
	}
}

func TestNamesCappedAtEveryEntrance(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	long := strings.Repeat("W", 200000)
	if _, err := s.Add(ctx, "a@example.com", long, subscribers.Confirmed); err == nil {
		t.Error("Add took a 200000-character name")
	}
	if _, err := s.SignUp(ctx, "b@example.com", long, formSource); err == nil {
		t.Error("SignUp took a 200000-character name")
	}
	_, err := s.Import(ctx, strings.NewReader("email,name\nc@example.com,"+long+"\n"), subscribers.Confirmed)
	var ie *subscribers.ImportError
	if !errors.As(err, &ie) || !strings.Contains(ie.Error(), "line 2") {
		t.Errorf("Import of a 200000-character name: %v; want line 2 refused", err)
	}
	sub, err := s.Add(ctx, "d@example.com", "D", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.ChangeName(ctx, sub.ID, long); err == nil {
		t.Error("ChangeName took a 200000-character name")
	}
}

// A sign-up of a known address does not change its name, and the
// confirmation carries no name.
func TestSignUpDoesNotRename(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	first := signUp(t, s, "pending@example.com", "Pat")
	second := signUp(t, s, "pending@example.com", "WINNER! Claim at https://evil.example")
	if sub, _ := s.ByEmail(ctx, "pending@example.com"); sub.Name != "Pat" {
		t.Errorf("a second sign-up renamed the pending subscriber to %q", sub.Name)
	}
	if second.SubscriberID != first.SubscriberID {
		t.Fatal("two subscribers for one address")
	}
	if _, err := s.Add(ctx, "conf@example.com", "Carol", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	signUp(t, s, "conf@example.com", "Mallory")
	if sub, _ := s.ByEmail(ctx, "conf@example.com"); sub.Name != "Carol" {
		t.Errorf("a sign-up renamed the confirmed subscriber to %q", sub.Name)
	}
}

// The sign-up of a confirmed address does the work of any other sign-up
// (and then undoes it), so the answer takes as long: both use a consent id
// and a subscriber id from the sequences, which no rollback gives back.
func TestSignUpConfirmedDoesTheSameWork(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Add(ctx, "conf@example.com", "", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	seq := func() (subs, consents int64) {
		t.Helper()
		if err := s.DB.QueryRow(`SELECT (SELECT last_value FROM subscribers_id_seq), (SELECT last_value FROM consents_id_seq)`).Scan(&subs, &consents); err != nil {
			t.Fatal(err)
		}
		return
	}
	step := func(email string) [2]int64 {
		s0, c0 := seq()
		signUp(t, s, email, "")
		s1, c1 := seq()
		return [2]int64{s1 - s0, c1 - c0}
	}
	newWork := step("new@example.com")
	confirmedWork := step("conf@example.com")
	if newWork != confirmedWork {
		t.Fatalf("a new address used %v (subscriber, consent) ids, a confirmed one %v: the paths differ", newWork, confirmedWork)
	}
	sub, _ := s.ByEmail(ctx, "conf@example.com")
	if got := strings.Join(consentActions(t, s, sub.ID), " "); got != "add/editor" {
		t.Fatalf("the confirmed subscriber's consent record %q: the undone work was kept", got)
	}
	var tokens int
	s.DB.Get(&tokens, `SELECT count(*) FROM subscriber_tokens WHERE subscriber_id = $1`, sub.ID)
	if tokens != 0 {
		t.Fatalf("%d tokens for a confirmed subscriber's sign-up", tokens)
	}
}

// Re-importing a file whose people are all there adds nobody, however many
// batches it takes, and writes no consent entry for anyone unchanged.
func TestReimportCountsExact(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	var b strings.Builder
	b.WriteString("email,name\n")
	for i := range 1234 {
		fmt.Fprintf(&b, "reader%d@example.com,Reader %d\n", i, i)
	}
	if _, err := s.Import(ctx, strings.NewReader(b.String()), subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	var before int
	s.DB.Get(&before, `SELECT count(*) FROM consents`)
	res, err := s.Import(ctx, strings.NewReader(b.String()), subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if want := (subscribers.ImportResult{Rows: 1234, Unchanged: 1234}); res != want {
		t.Fatalf("re-import: %+v, want %+v", res, want)
	}
	var after int
	s.DB.Get(&after, `SELECT count(*) FROM consents`)
	if after != before {
		t.Fatalf("re-import of unchanged people wrote %d consent entries", after-before)
	}
	res, err = s.Import(ctx, strings.NewReader("email,name,status\nreader1@example.com,Renamed,\nreader2@example.com,,unsubscribed\nreader3@example.com,,\n"), subscribers.Pending)
	if err != nil {
		t.Fatal(err)
	}
	if want := (subscribers.ImportResult{Rows: 3, Updated: 2, Unchanged: 1}); res != want {
		t.Fatalf("import of two changes: %+v, want %+v", res, want)
	}
	s.DB.Get(&after, `SELECT count(*) FROM consents`)
	if after != before+2 {
		t.Fatalf("%d consent entries for 2 changes", after-before)
	}
}

// FuzzNormalizeAddress: the canonical form is a fixed point, holds no
// control or invisible character, and the A-label spelling of the domain
// has the same form.
func FuzzNormalizeAddress(f *testing.F) {
	for _, s := range []string{"ada@example.com", "dup@bücher.example", "dup@xn--bcher-kva.example", `"x y"@example.com`,
		`"ada"@example.com`, "re\u0301ne@example.com", "a\u202eb@example.com", "a\x00@b.cd", "jürgen@müller.de", "a@b@c.de"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := subscribers.NormalizeAddress(in)
		if err != nil {
			return
		}
		for _, r := range got {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '\u2028' || r == '\u2029' {
				t.Fatalf("NormalizeAddress(%q) = %q holds U+%04X", in, got, r)
			}
		}
		again, err := subscribers.NormalizeAddress(got)
		if err != nil || again != got {
			t.Fatalf("not idempotent: %q -> %q -> %q, %v", in, got, again, err)
		}
		ascii, err := subscribers.NormalizeAddress(subscribers.SMTPAddress(got))
		if err != nil || ascii != got {
			t.Fatalf("the A-label spelling %q of %q has the form %q, %v", subscribers.SMTPAddress(got), got, ascii, err)
		}
	})
}
