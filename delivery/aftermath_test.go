package delivery_test

import (
	"context"
	"testing"
	"time"
)

// The report's "unsubscribed within seven days": recipients who were sent
// the edition and left after its send started, each counted once; leaving
// before the send, or after the window, or without having been sent it,
// does not count.
func TestUnsubscribedAfter(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, 6)
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	var ids []int64
	if err := f.db.Select(&ids, `SELECT subscriber_id FROM deliveries ORDER BY subscriber_id`); err != nil {
		t.Fatal(err)
	}
	// All sent but the last.
	if _, err := f.db.Exec(`UPDATE deliveries SET status = 'sent', sent_at = now() WHERE subscriber_id <> $1`, ids[5]); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{ids[0], ids[1], ids[2], ids[3], ids[5]} {
		if err := f.subs.Unsubscribe(ctx, id); err != nil {
			t.Fatal(err)
		}
	}
	// ids[0] left twice (came back and left again): one person.
	if _, err := f.db.Exec(`INSERT INTO consents (subscriber_id, email_hash, action, method) SELECT subscriber_id, email_hash, action, method FROM consents WHERE subscriber_id = $1 AND action = 'unsubscribe'`, ids[0]); err != nil {
		t.Fatal(err)
	}
	// ids[2] left before the send started, ids[3] eight days after it.
	if _, err := f.db.Exec(`UPDATE consents SET created_at = (SELECT send_started_at FROM editions WHERE id = $2) - interval '1 hour' WHERE subscriber_id = $1`, ids[2], f.edition); err != nil {
		t.Fatal(err)
	}
	if _, err := f.db.Exec(`UPDATE consents SET created_at = (SELECT send_started_at FROM editions WHERE id = $2) + interval '8 days' WHERE subscriber_id = $1`, ids[3], f.edition); err != nil {
		t.Fatal(err)
	}
	n, err := f.q.UnsubscribedAfter(ctx, f.edition, 7*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// ids[0] and ids[1]; ids[5] was never sent the edition.
	if n != 2 {
		t.Errorf("unsubscribed after the send: %d, want 2", n)
	}
}
