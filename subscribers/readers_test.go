package subscribers_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"newsletter/subscribers"
)

var formSource = subscribers.Source{Method: subscribers.MethodForm, IP: "203.0.113.7", UserAgent: "Mozilla/5.0 (test)\r\nX-Injected: 1"}

func signUp(t *testing.T, s *subscribers.Store, email, name string) subscribers.SignUpResult {
	t.Helper()
	res, err := s.SignUp(context.Background(), email, name, formSource)
	if err != nil {
		t.Fatalf("SignUp(%q): %v", email, err)
	}
	return res
}

func consentActions(t *testing.T, s *subscribers.Store, id int64) []string {
	t.Helper()
	cs, err := s.Consents(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, string(c.Action)+"/"+string(c.Method))
	}
	return out
}

// expire makes a subscriber's tokens look a week old.
func expire(t *testing.T, s *subscribers.Store, id int64) {
	t.Helper()
	if _, err := s.DB.Exec(`UPDATE subscriber_tokens SET created_at = now() - interval '8 days', expires_at = now() - interval '1 day' WHERE subscriber_id = $1`, id); err != nil {
		t.Fatal(err)
	}
}

func TestSignUpDoubleOptIn(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	res := signUp(t, s, "Ada@Example.com", "Ada\r\nBcc: evil@example.com")
	if res.Outcome != "new" || res.Mailing == nil || res.Mailing.To != "Ada@example.com" || len(res.Mailing.Token) != 43 {
		t.Fatalf("new sign-up: %+v %+v", res, res.Mailing)
	}
	sub, _ := s.Get(ctx, res.SubscriberID)
	if sub.Status != subscribers.Pending || sub.Name != "Ada Bcc: evil@example.com" {
		t.Fatalf("after sign-up: %+v", sub)
	}
	// Only the hash of the token is stored.
	var n int
	s.DB.Get(&n, `SELECT count(*) FROM subscriber_tokens WHERE token_hash = $1`, subscribers.HashToken(res.Mailing.Token))
	if n != 1 {
		t.Fatal("the token's hash is not stored")
	}
	s.DB.Get(&n, `SELECT count(*) FROM subscriber_tokens WHERE encode(token_hash, 'escape') LIKE '%' || $1 || '%'`, res.Mailing.Token)
	if n != 0 {
		t.Fatal("the token is stored in the clear")
	}

	// The GET side changes nothing.
	info, err := s.LookupToken(ctx, res.Mailing.Token)
	if err != nil || info.Purpose != subscribers.PurposeConfirm || info.Email != "Ada@example.com" || info.Status != subscribers.Pending {
		t.Fatalf("LookupToken: %+v %v", info, err)
	}
	if sub, _ := s.Get(ctx, res.SubscriberID); sub.Status != subscribers.Pending {
		t.Fatal("looking a token up changed the subscriber")
	}
	c, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource)
	if err != nil || c.Already || c.SubscriberID != res.SubscriberID {
		t.Fatalf("ConfirmToken: %+v %v", c, err)
	}
	sub, _ = s.Get(ctx, res.SubscriberID)
	if sub.Status != subscribers.Confirmed || sub.ConfirmedAt == nil {
		t.Fatalf("after confirming: %+v", sub)
	}
	// Single use.
	if _, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource); !errors.Is(err, subscribers.ErrTokenUsed) {
		t.Fatalf("second ConfirmToken: %v, want ErrTokenUsed", err)
	}
	// Signing up a confirmed address changes nothing and mails nothing.
	again := signUp(t, s, "ada@example.com", "Someone Else")
	if again.Outcome != "confirmed" || again.Mailing != nil {
		t.Fatalf("sign-up of a confirmed address: %+v", again)
	}
	if sub, _ := s.Get(ctx, res.SubscriberID); sub.Name != "Ada Bcc: evil@example.com" || sub.Status != subscribers.Confirmed {
		t.Fatalf("a sign-up changed a confirmed subscriber: %+v", sub)
	}
	got := strings.Join(consentActions(t, s, res.SubscriberID), " ")
	if got != "signup/form confirm/form" {
		t.Fatalf("consent record %q", got)
	}
	cs, _ := s.Consents(ctx, res.SubscriberID)
	if cs[0].IP == nil || *cs[0].IP != "203.0.113.7" || cs[0].UserAgent != "Mozilla/5.0 (test)  X-Injected: 1" {
		t.Fatalf("consent entry %+v (ip %v)", cs[0], cs[0].IP)
	}
}

func TestSignUpAfterUnsubscribeNeedsConfirmation(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, err := s.Add(ctx, "left@example.com", "Left", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if changed, err := s.UnsubscribeBy(ctx, a, subscribers.Source{Method: subscribers.MethodOneClick, IP: "::ffff:198.51.100.1"}); err != nil || !changed {
		t.Fatalf("UnsubscribeBy: %v %v", changed, err)
	}
	if changed, _ := s.UnsubscribeBy(ctx, a, subscribers.Source{Method: subscribers.MethodOneClick}); changed {
		t.Fatal("a second unsubscribe reported a change")
	}
	res := signUp(t, s, "LEFT@example.com", "")
	if res.Outcome != "returning" || res.Mailing == nil {
		t.Fatalf("sign-up after leaving: %+v", res)
	}
	if st := statusOf(t, s, "left@example.com"); st != subscribers.Unsubscribed {
		t.Fatalf("status %s before confirming, want unsubscribed", st)
	}
	if _, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	sub, _ := s.Get(ctx, a.ID)
	if sub.Status != subscribers.Confirmed || sub.UnsubscribedAt != nil {
		t.Fatalf("after confirming again: %+v", sub)
	}
	got := strings.Join(consentActions(t, s, a.ID), " ")
	if got != "add/editor unsubscribe/one-click signup/form confirm/form" {
		t.Fatalf("consent record %q", got)
	}
	cs, _ := s.Consents(ctx, a.ID)
	if cs[1].IP == nil || *cs[1].IP != "198.51.100.1" {
		t.Fatalf("IPv4-mapped address kept as %v", cs[1].IP)
	}
}

func TestConfirmationLimitsPerAddress(t *testing.T) {
	s := newStore(t)
	s.Confirm = subscribers.ConfirmPolicy{PerWindow: 3, Gap: -1} // no gap, so three in a row count
	var mailed int
	for range 5 {
		if res := signUp(t, s, "often@example.com", ""); res.Mailing != nil {
			mailed++
		}
	}
	if mailed != 3 {
		t.Fatalf("%d confirmation emails for 5 sign-ups, want 3", mailed)
	}
	// With the default gap, two in quick succession make one email.
	s2 := newStore(t)
	first, second := signUp(t, s2, "twice@example.com", ""), signUp(t, s2, "twice@example.com", "")
	if first.Mailing == nil || second.Mailing != nil {
		t.Fatalf("two quick sign-ups mailed %v and %v, want the first only", first.Mailing != nil, second.Mailing != nil)
	}
}

// A form submitted twice at once makes one subscriber and one email.
func TestConcurrentSignUps(t *testing.T) {
	s := newStore(t)
	var wg sync.WaitGroup
	results := make([]subscribers.SignUpResult, 8)
	errs := make([]error, 8)
	for i := range results {
		wg.Go(func() {
			results[i], errs[i] = s.SignUp(context.Background(), "race@example.com", "Racer", formSource)
		})
	}
	wg.Wait()
	mailed := 0
	for i, r := range results {
		if errs[i] != nil {
			t.Fatalf("sign-up %d: %v", i, errs[i])
		}
		if r.Mailing != nil {
			mailed++
		}
	}
	var subs, toks int
	s.DB.Get(&subs, `SELECT count(*) FROM subscribers`)
	s.DB.Get(&toks, `SELECT count(*) FROM subscriber_tokens`)
	if subs != 1 || toks != 1 || mailed != 1 {
		t.Fatalf("%d subscribers, %d tokens, %d mailings; want 1 each", subs, toks, mailed)
	}
}

func TestTokensExpireAndAreVoidedByUnsubscribe(t *testing.T) {
	s := newStore(t)
	s.Confirm = subscribers.ConfirmPolicy{Gap: -1}
	ctx := context.Background()
	res := signUp(t, s, "late@example.com", "")
	expire(t, s, res.SubscriberID)
	if _, err := s.LookupToken(ctx, res.Mailing.Token); !errors.Is(err, subscribers.ErrTokenExpired) {
		t.Fatalf("LookupToken of an expired token: %v", err)
	}
	if _, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource); !errors.Is(err, subscribers.ErrTokenExpired) {
		t.Fatalf("ConfirmToken of an expired token: %v", err)
	}
	tampered := []byte(res.Mailing.Token)
	tampered[3] ^= 1
	for _, tok := range []string{string(tampered), "", "short", res.Mailing.Token + "x"} {
		if _, err := s.ConfirmToken(ctx, tok, formSource); !errors.Is(err, subscribers.ErrTokenNotFound) {
			t.Errorf("ConfirmToken(%q): %v, want ErrTokenNotFound", tok, err)
		}
	}

	// Two links of one sign-up: pressing one spends both.
	a, b := signUp(t, s, "two@example.com", ""), signUp(t, s, "two@example.com", "")
	if _, err := s.ConfirmToken(ctx, b.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ConfirmToken(ctx, a.Mailing.Token, formSource); !errors.Is(err, subscribers.ErrTokenUsed) {
		t.Fatalf("the other link of a confirmed sign-up: %v, want ErrTokenUsed", err)
	}

	// Leaving voids a pending resubscribe link: an old email can't bring
	// someone back after they left again.
	sub, _ := s.Get(ctx, a.SubscriberID)
	s.UnsubscribeBy(ctx, sub, subscribers.Source{Method: subscribers.MethodOneClick})
	m, err := s.RequestConfirmation(ctx, sub.ID, formSource)
	if err != nil || m == nil {
		t.Fatalf("RequestConfirmation: %v %v", m, err)
	}
	s.UnsubscribeBy(ctx, sub, subscribers.Source{Method: subscribers.MethodOneClick})
	if _, err := s.ConfirmToken(ctx, m.Token, formSource); !errors.Is(err, subscribers.ErrTokenUsed) {
		t.Fatalf("resubscribe link after leaving again: %v, want ErrTokenUsed", err)
	}
	if st := statusOf(t, s, "two@example.com"); st != subscribers.Unsubscribed {
		t.Fatalf("status %s", st)
	}
}

func TestChangeAddress(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	a, _ := s.Add(ctx, "old@example.com", "Ada", subscribers.Confirmed)
	other, _ := s.Add(ctx, "taken@example.com", "", subscribers.Confirmed)
	if _, err := s.RequestAddressChange(ctx, a.ID, "OLD@example.com"); !errors.Is(err, subscribers.ErrSameAddress) {
		t.Fatalf("change to the same address: %v", err)
	}
	if _, err := s.RequestAddressChange(ctx, a.ID, "not an address"); err == nil {
		t.Fatal("change to a bad address accepted")
	}
	m, err := s.RequestAddressChange(ctx, a.ID, "new@example.com")
	if err != nil || m == nil || m.To != "new@example.com" || m.Purpose != subscribers.PurposeChangeAddress {
		t.Fatalf("RequestAddressChange: %+v %v", m, err)
	}
	// Nothing changes until the new address confirms.
	if sub, _ := s.Get(ctx, a.ID); sub.Email != "old@example.com" {
		t.Fatalf("address changed before confirmation: %s", sub.Email)
	}
	c, err := s.ConfirmToken(ctx, m.Token, formSource)
	if err != nil || c.Email != "new@example.com" {
		t.Fatalf("confirm change: %+v %v", c, err)
	}
	sub, _ := s.Get(ctx, a.ID)
	if sub.Email != "new@example.com" || sub.Status != subscribers.Confirmed || sub.UUID != a.UUID {
		t.Fatalf("after the change: %+v", sub)
	}
	// The unsubscribe link is unchanged (it never expires).
	if got, err := s.ByUnsubscribeToken(ctx, s.Tokens.Unsubscribe(a.UUID)); err != nil || got.ID != a.ID {
		t.Fatalf("unsubscribe link after the change: %v", err)
	}
	// A change to an address that has its own subscription mails the link
	// (the requester learns nothing) and is refused when pressed.
	m, err = s.RequestAddressChange(ctx, a.ID, "Taken@example.com")
	if err != nil || m == nil {
		t.Fatalf("RequestAddressChange to a taken address: %+v %v", m, err)
	}
	if _, err := s.ConfirmToken(ctx, m.Token, formSource); !errors.Is(err, subscribers.ErrAddressTaken) {
		t.Fatalf("confirm change to a taken address: %v", err)
	}
	if sub, _ := s.Get(ctx, a.ID); sub.Email != "new@example.com" {
		t.Fatal("a refused change changed the address")
	}
	if o, _ := s.Get(ctx, other.ID); o.Email != "taken@example.com" {
		t.Fatal("a refused change touched the other subscriber")
	}
	if got := strings.Join(consentActions(t, s, a.ID), " "); got != "add/editor address_change/form" {
		t.Fatalf("consent record %q", got)
	}
}

func TestEraseExportAndSuppression(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	res := signUp(t, s, "gone@example.com", "Gone Person")
	if _, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	x, err := s.ExportPerson(ctx, "GONE@example.com")
	if err != nil {
		t.Fatal(err)
	}
	if x.Subscriber.Name != "Gone Person" || len(x.Consents) != 2 || len(x.Tokens) != 1 || x.Suppressed {
		t.Fatalf("export: %+v", x)
	}
	old, _ := s.Get(ctx, res.SubscriberID)
	e, err := s.Erase(ctx, "gone@example.com", subscribers.Source{Method: subscribers.MethodEditor})
	if err != nil {
		t.Fatal(err)
	}
	if e.TokensDeleted != 1 || e.ConsentsKept != 3 || e.SuppressedKeys != 1 {
		t.Fatalf("erasure %+v", e)
	}
	sub, _ := s.Get(ctx, res.SubscriberID)
	if sub.Name != "" || sub.Status != subscribers.Unsubscribed || !strings.HasSuffix(sub.Email, "@invalid") || strings.Contains(sub.Email, "gone") {
		t.Fatalf("after erasure: %+v", sub)
	}
	if _, err := s.ByUnsubscribeToken(ctx, s.Tokens.Unsubscribe(old.UUID)); !errors.Is(err, subscribers.ErrNotFound) {
		t.Fatalf("the old unsubscribe link still finds the erased person: %v", err)
	}
	var personal int
	s.DB.Get(&personal, `SELECT count(*) FROM consents WHERE ip IS NOT NULL OR user_agent <> ''`)
	if personal != 0 {
		t.Fatalf("%d consent entries keep an IP or user agent after erasure", personal)
	}
	if _, err := s.ExportPerson(ctx, "gone@example.com"); !errors.Is(err, subscribers.ErrNotFound) {
		t.Fatalf("export after erasure: %v", err)
	}
	// Neither an import nor an editor brings the person back silently.
	r, err := s.Import(ctx, strings.NewReader("email,name\ngone@example.com,Gone Again\nfresh@example.com,Fresh\n"), subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if r.Suppressed != 1 || r.Added != 1 {
		t.Fatalf("import: %+v, want 1 suppressed and 1 added", r)
	}
	if _, err := s.ByEmail(ctx, "gone@example.com"); !errors.Is(err, subscribers.ErrNotFound) {
		t.Fatal("an import re-added an erased person")
	}
	if _, err := s.Add(ctx, "Gone@Example.com", "", subscribers.Confirmed); !errors.Is(err, subscribers.ErrSuppressed) {
		t.Fatalf("Add of an erased address: %v, want ErrSuppressed", err)
	}
	// The import's rows are in the consent record.
	fresh, _ := s.ByEmail(ctx, "fresh@example.com")
	if got := strings.Join(consentActions(t, s, fresh.ID), " "); got != "import/import" {
		t.Fatalf("consent record of an imported person %q", got)
	}
	// The person may come back on the form, with their confirmation.
	back := signUp(t, s, "gone@example.com", "Back")
	if back.Mailing == nil {
		t.Fatal("an erased person can't sign up again on the form")
	}
	if ok, _ := s.Suppressed(ctx, "gone@example.com"); !ok {
		t.Fatal("the suppression was lifted before the person confirmed")
	}
	if _, err := s.ConfirmToken(ctx, back.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Suppressed(ctx, "gone@example.com"); ok {
		t.Fatal("the suppression stays after the person confirmed")
	}
}

func TestInternationalisedAddresses(t *testing.T) {
	for in, want := range map[string]string{
		"reader@Bücher.example":    "reader@bücher.example",
		"reader@BÜCHER.example":    "reader@bücher.example",
		"jürgen@müller.de":         "jürgen@müller.de",
		"reader@xn--bcher-kva.com": "reader@bücher.com", // one form however written
	} {
		got, err := subscribers.NormalizeAddress(in)
		if err != nil || got != want {
			t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"reader@bü_cher.example", "reader@\u200dbücher.example"} {
		if got, err := subscribers.NormalizeAddress(bad); err == nil {
			t.Errorf("NormalizeAddress(%q) = %q, want an error", bad, got)
		}
	}
	for in, want := range map[string]string{
		"reader@bücher.example": "reader@xn--bcher-kva.example",
		"jürgen@müller.de":      "jürgen@xn--mller-kva.de",
		"ada@example.com":       "ada@example.com",
	} {
		if got := subscribers.SMTPAddress(in); got != want {
			t.Errorf("SMTPAddress(%q) = %q, want %q", in, got, want)
		}
	}
}
