package subscribers_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"newsletter/subscribers"
)

var editorSource = subscribers.Source{Method: subscribers.MethodEditor}

func status(t *testing.T, s *subscribers.Store, email string) subscribers.Status {
	t.Helper()
	sub, err := s.ByEmail(context.Background(), email)
	if err != nil {
		t.Fatalf("ByEmail(%q): %v", email, err)
	}
	return sub.Status
}

func suppressions(t *testing.T, s *subscribers.Store) []subscribers.Suppression {
	t.Helper()
	var list []subscribers.Suppression
	if err := s.EachSuppression(context.Background(), func(e subscribers.Suppression) error {
		list = append(list, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return list
}

// An address put on the list by hand leaves every send, and no import or
// editor brings it back, whichever way the address is written; the person
// comes back only by confirming a sign-up.
func TestSuppressionKeepsAddressOut(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, e := range []string{"dup@bücher.example", "kept@example.com"} {
		if _, err := s.Add(ctx, e, "", subscribers.Confirmed); err != nil {
			t.Fatal(err)
		}
	}
	res, err := s.Suppress(ctx, "DUP@xn--bcher-kva.example", subscribers.ReasonManual, "asked by phone", editorSource)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Added || !res.Stopped || res.Subscriber == 0 {
		t.Fatalf("Suppress: %+v", res)
	}
	if st := status(t, s, "dup@bücher.example"); st != subscribers.Unsubscribed {
		t.Fatalf("suppressed subscriber is %s", st)
	}
	if st := status(t, s, "kept@example.com"); st != subscribers.Confirmed {
		t.Fatalf("another subscriber is %s", st)
	}
	if got := consentActions(t, s, res.Subscriber); !slices.Contains(got, "suppress/editor") {
		t.Errorf("consent record %v has no suppress", got)
	}
	again, err := s.Suppress(ctx, "dup@bücher.example", subscribers.ReasonComplained, "", editorSource)
	if err != nil || again.Added || again.Stopped {
		t.Fatalf("second Suppress: %+v, %v", again, err)
	}
	// An import of the confirmed list and an editor's add: refused.
	r, err := s.Import(ctx, strings.NewReader("email\ndup@xn--bcher-kva.example\nnew@example.com\n"), subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	if r.Suppressed != 1 || r.Added != 1 {
		t.Fatalf("import: %+v, want 1 suppressed, 1 added", r)
	}
	if st := status(t, s, "dup@bücher.example"); st != subscribers.Unsubscribed {
		t.Fatalf("after import the suppressed subscriber is %s", st)
	}
	if _, err := s.Add(ctx, "nobody-yet@example.com", "", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Suppress(ctx, "unknown@example.com", subscribers.ReasonManual, "", editorSource); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Add(ctx, "Unknown@Example.com", "", subscribers.Confirmed); !errors.Is(err, subscribers.ErrSuppressed) {
		t.Fatalf("Add of a suppressed address: %v", err)
	}
	// Taken off the list, they are still not mailed: only a confirmed
	// sign-up brings them back.
	if ok, err := s.Unsuppress(ctx, "dup@bücher.example", editorSource); err != nil || !ok {
		t.Fatalf("Unsuppress: %v %v", ok, err)
	}
	if st := status(t, s, "dup@bücher.example"); st != subscribers.Unsubscribed {
		t.Fatalf("after Unsuppress the subscriber is %s", st)
	}
	if ok, err := s.Unsuppress(ctx, "dup@bücher.example", editorSource); err != nil || ok {
		t.Fatalf("second Unsuppress: %v %v", ok, err)
	}
	su := signUp(t, s, "dup@bücher.example", "")
	if _, err := s.ConfirmToken(ctx, su.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "dup@bücher.example"); st != subscribers.Confirmed {
		t.Fatalf("after a confirmed sign-up the subscriber is %s", st)
	}
}

// A signed-up person put on the list for a complaint, then confirming
// again: confirmation lifts the suppression.
func TestSuppressedPersonConfirmsAgain(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	if _, err := s.Add(ctx, "back@example.com", "", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Suppress(ctx, "back@example.com", subscribers.ReasonComplained, "", editorSource); err != nil {
		t.Fatal(err)
	}
	su := signUp(t, s, "back@example.com", "")
	if st := status(t, s, "back@example.com"); st != subscribers.Unsubscribed {
		t.Fatalf("a sign-up alone made them %s", st)
	}
	if _, err := s.ConfirmToken(ctx, su.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	if gone, err := s.Suppressed(ctx, "back@example.com"); err != nil || gone {
		t.Fatalf("after confirming: suppressed %v, %v", gone, err)
	}
}

// The list shows every entry: by hand with its note, an erasure by hash
// only, and subscribers a send marked bounced.
func TestSuppressionList(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, e := range []string{"gone@example.com", "hard@example.com", "bounce@example.com"} {
		if _, err := s.Add(ctx, e, "", subscribers.Confirmed); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Erase(ctx, "gone@example.com", editorSource); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Suppress(ctx, "hard@example.com", subscribers.ReasonBounced, "550 5.1.1 from the relay's log", editorSource); err != nil {
		t.Fatal(err)
	}
	if st := status(t, s, "hard@example.com"); st != subscribers.Bounced {
		t.Fatalf("suppressed as bounced: %s", st)
	}
	s.DB.MustExec(`UPDATE subscribers SET status = 'bounced' WHERE email = 'bounce@example.com'`)
	got := map[string]subscribers.Suppression{}
	for _, e := range suppressions(t, s) {
		key := e.Email
		if key == "" {
			key = "erased"
			if len(e.Hash) != 12 {
				t.Errorf("erasure's hash %q", e.Hash)
			}
		}
		got[key] = e
	}
	if len(got) != 3 || got["erased"].Reason != subscribers.ReasonErased ||
		got["hard@example.com"].Reason != subscribers.ReasonBounced || got["hard@example.com"].Note != "550 5.1.1 from the relay's log" ||
		got["bounce@example.com"].Reason != subscribers.ReasonBounced || got["bounce@example.com"].Subscriber == 0 {
		t.Fatalf("list: %+v", got)
	}
}

// What the list can't keep is refused, and nothing is stored.
func TestSuppressBadInput(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	for _, c := range []struct{ email, reason, note string }{
		{"not an address", "manual", ""},
		{"a@example.com", "erased", ""},
		{"a@example.com", "manual", "two\nlines"},
		{"a@example.com", "manual", strings.Repeat("x", subscribers.MaxNote+1)},
		{"a@example.com", "manual", "bad \xff utf-8"},
	} {
		if _, err := s.Suppress(ctx, c.email, subscribers.Reason(c.reason), c.note, editorSource); err == nil {
			t.Errorf("Suppress(%q, %q, %q) accepted", c.email, c.reason, c.note)
		}
	}
	if list := suppressions(t, s); len(list) != 0 {
		t.Fatalf("bad input stored %+v", list)
	}
}
