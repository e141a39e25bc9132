package subscribers_test

import (
	"context"
	"strings"
	"testing"

	"newsletter/delivery"
	"newsletter/subscribers"
)

// After an erasure no table holds the person's address or name in any
// column: every row of every table is read whole, as text.
func TestEraseLeavesNoTrace(t *testing.T) {
	s := newStore(t)
	ctx := context.Background()
	const email, name = "Gone.Person@example.com", "Gone Person"
	res := signUp(t, s, email, name)
	if _, err := s.ConfirmToken(ctx, res.Mailing.Token, formSource); err != nil {
		t.Fatal(err)
	}
	// A change of address asked for and never confirmed leaves a token
	// naming another address of theirs.
	if _, err := s.RequestAddressChange(ctx, res.SubscriberID, "gone.person.new@example.org"); err != nil {
		t.Fatal(err)
	}
	other, err := s.Add(ctx, "kept@example.com", "Kept Reader", subscribers.Confirmed)
	if err != nil {
		t.Fatal(err)
	}
	var editions [2]int64
	for i, date := range []string{"2025-11-12", "2025-11-13"} {
		if err := s.DB.Get(&editions[i], `INSERT INTO editions (date, content, source_format) VALUES ($1, '{}', 'text') RETURNING id`, date); err != nil {
			t.Fatal(err)
		}
	}
	// What a relay writes back: the address, in any case, inside the reply,
	// and a send paused on it.
	s.DB.MustExec(`INSERT INTO deliveries (edition_id, subscriber_id, status, permanent, smtp_code, smtp_enhanced, smtp_reply, send_month)
		SELECT *, date_trunc('month', now() AT TIME ZONE 'UTC')::date FROM (VALUES
		       ($1::bigint, $3::bigint, 'failed', true, 550, '5.1.1', '<GONE.PERSON@EXAMPLE.COM>: Recipient address rejected: User unknown'),
		       ($2, $3, 'failed', false, 452, '4.2.2', 'mailbox of Gone Person full'),
		       ($1, $4, 'failed', true, 550, '5.1.1', '<kept@example.com>: Recipient address rejected')) v`,
		editions[0], editions[1], res.SubscriberID, other.ID)
	s.DB.MustExec(`UPDATE editions SET paused_at = now(),
		pause_reason = '100 temporary failures in a row with nothing delivered; the last: 451 4.3.0 <gone.person@example.com> try later'
		WHERE id = $1`, editions[1])

	e, err := s.Erase(ctx, email, subscribers.Source{Method: subscribers.MethodEditor})
	if err != nil {
		t.Fatal(err)
	}
	if e.RepliesRemoved != 2 || e.PauseReasons != 1 {
		t.Errorf("erasure %+v: want 2 replies and 1 pause reason", e)
	}
	for _, needle := range []string{email, "gone.person", name} { // "gone.person" covers the new address too
		if where := tablesQuoting(t, s, needle); len(where) > 0 {
			t.Errorf("after erasure %q is still in %v", needle, where)
		}
	}

	// What isn't theirs stays: the other reader's reply, the rest of the
	// pause reason, and the codes of their deliveries.
	var reply string
	s.DB.Get(&reply, `SELECT smtp_reply FROM deliveries WHERE subscriber_id = $1`, other.ID)
	if !strings.Contains(reply, "kept@example.com") {
		t.Errorf("another reader's reply changed: %q", reply)
	}
	var reason string
	s.DB.Get(&reason, `SELECT pause_reason FROM editions WHERE id = $1`, editions[1])
	if reason != "100 temporary failures in a row with nothing delivered; the last: 451 4.3.0 <[erased address]> try later" {
		t.Errorf("pause reason after erasure: %q", reason)
	}
	var kept []struct {
		Code     int    `db:"smtp_code"`
		Enhanced string `db:"smtp_enhanced"`
		Reply    string `db:"smtp_reply"`
	}
	if err := s.DB.Select(&kept, `SELECT smtp_code, smtp_enhanced, smtp_reply FROM deliveries WHERE subscriber_id = $1 ORDER BY edition_id`, res.SubscriberID); err != nil {
		t.Fatal(err)
	}
	if len(kept) != 2 || kept[0].Code != 550 || kept[0].Enhanced != "5.1.1" || kept[1].Code != 452 || kept[0].Reply != delivery.ErasedReply {
		t.Errorf("their deliveries after erasure: %+v", kept)
	}
}

// tablesQuoting lists the tables with a row whose text holds needle, in
// any case.
func tablesQuoting(t *testing.T, s *subscribers.Store, needle string) []string {
	t.Helper()
	var tables []string
	if err := s.DB.Select(&tables, `SELECT quote_ident(table_name) FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY 1`); err != nil {
		t.Fatal(err)
	}
	if len(tables) < 6 {
		t.Fatalf("only tables %v", tables)
	}
	var where []string
	for _, table := range tables {
		var n int
		if err := s.DB.Get(&n, `SELECT count(*) FROM `+table+` r WHERE strpos(lower(r::text), lower($1)) > 0`, needle); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			where = append(where, table)
		}
	}
	return where
}
