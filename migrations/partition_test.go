package migrations_test

import (
	"context"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/internal/pgtest"
	"newsletter/migrations"
)

// deliveryRow is every column of a delivery that migration 0010 must keep.
type deliveryRow struct {
	ID             int64      `db:"id"`
	EditionID      int64      `db:"edition_id"`
	SubscriberID   int64      `db:"subscriber_id"`
	Status         string     `db:"status"`
	MessageID      *string    `db:"message_id"`
	Attempts       int        `db:"attempts"`
	NextAttemptAt  time.Time  `db:"next_attempt_at"`
	LeaseHolder    *string    `db:"lease_holder"`
	LeaseExpiresAt *time.Time `db:"lease_expires_at"`
	Permanent      *bool      `db:"permanent"`
	SMTPCode       *int       `db:"smtp_code"`
	SMTPEnhanced   *string    `db:"smtp_enhanced"`
	SMTPReply      *string    `db:"smtp_reply"`
	CreatedAt      time.Time  `db:"created_at"`
	UpdatedAt      time.Time  `db:"updated_at"`
	SentAt         *time.Time `db:"sent_at"`
	LastAttemptAt  *time.Time `db:"last_attempt_at"`
}

const deliveryColumns = `id, edition_id, subscriber_id, status, message_id, attempts, next_attempt_at,
	lease_holder, lease_expires_at, permanent, smtp_code, smtp_enhanced, smtp_reply, created_at,
	updated_at, sent_at, last_attempt_at`

// Migration 0010 moves a table with history, sends of several months in
// every status, into monthly partitions: every row and every column kept,
// each in the partition of its edition's send month, the id sequence where
// it was, and the triggers that keep referenced rows still working.
func TestUpgradeTo0010PartitionsHistory(t *testing.T) {
	db := pgtest.New(t)
	migrateTo(t, db, 9)
	// Three editions sent in three months (one, old, sent this month), one
	// not started; subscribers.
	db.MustExec(`INSERT INTO editions (date, content, source_format, send_started_at, finished_at) VALUES
		('2025-03-02', '{}', 'json', '2025-03-02 05:00Z', '2025-03-02 06:00Z'),
		('2025-04-30', '{}', 'json', '2025-04-30 23:30Z', '2025-05-01 01:00Z'),
		('2025-01-15', '{}', 'json', now(), NULL),
		('2025-06-01', '{}', 'json', NULL, NULL)`)
	db.MustExec(`INSERT INTO subscribers (email, status, unsub_token_hash)
		SELECT 'r' || i || '@example.com', 'confirmed', sha256(int4send(i)) FROM generate_series(1, 50) i`)
	// Every status, stored and derived Message-IDs, replies, leases.
	db.MustExec(`INSERT INTO deliveries (edition_id, subscriber_id, status, message_id, attempts,
			next_attempt_at, lease_holder, lease_expires_at, permanent, smtp_code, smtp_enhanced, smtp_reply,
			created_at, updated_at, sent_at, last_attempt_at)
		SELECT e.id, s.id,
			(ARRAY['queued', 'sending', 'sent', 'failed', 'skipped'])[1 + s.id % 5],
			CASE WHEN s.id % 3 = 0 THEN 'stored-' || e.id || '-' || s.id || '@example.com' END,
			s.id % 4, e.send_started_at + interval '1 hour',
			CASE WHEN s.id % 5 = 1 THEN 'host/1/abc/0' END,
			CASE WHEN s.id % 5 = 1 THEN e.send_started_at + interval '5 minutes' END,
			CASE WHEN s.id % 5 = 3 THEN s.id % 2 = 0 END,
			CASE s.id % 5 WHEN 2 THEN 250 WHEN 3 THEN 550 END,
			CASE WHEN s.id % 5 = 3 THEN '5.1.1' END,
			CASE WHEN s.id % 5 = 3 THEN 'no such user ' || s.id END,
			e.send_started_at, e.send_started_at + interval '2 minutes',
			CASE WHEN s.id % 5 = 2 THEN e.send_started_at + interval '1 minute' END,
			CASE WHEN s.id % 5 <> 0 THEN e.send_started_at + interval '30 seconds' END
		FROM editions e, subscribers s WHERE e.send_started_at IS NOT NULL ORDER BY e.id, s.id`)
	var before []deliveryRow
	if err := db.Select(&before, `SELECT `+deliveryColumns+` FROM deliveries ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	var lastID int64
	db.Get(&lastID, `SELECT last_value FROM deliveries_id_seq`)

	if _, err := migrations.Apply(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	var after []deliveryRow
	if err := db.Select(&after, `SELECT `+deliveryColumns+` FROM deliveries ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	if len(after) != len(before) || len(before) != 150 {
		t.Fatalf("%d deliveries after the upgrade, %d before; want 150 both", len(after), len(before))
	}
	for i := range before {
		b, a := before[i], after[i]
		if !sameDelivery(b, a) {
			t.Fatalf("delivery changed:\nbefore %+v\nafter  %+v", b, a)
		}
	}
	// Each in its edition's send month's partition.
	var misplaced int
	db.Get(&misplaced, `SELECT count(*) FROM deliveries d JOIN editions e ON e.id = d.edition_id
		WHERE d.tableoid::regclass::text <> 'deliveries_' || to_char(e.send_started_at AT TIME ZONE 'UTC', 'YYYY_MM')
		   OR d.send_month <> e.send_month`)
	if misplaced != 0 {
		t.Errorf("%d deliveries outside their edition's send month partition", misplaced)
	}
	var parts []string
	db.Select(&parts, `SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'deliveries'::regclass ORDER BY 1`)
	now := time.Now().UTC()
	want := map[string]bool{"deliveries_2025_03": true, "deliveries_2025_04": true}
	for k := range 4 {
		want["deliveries_"+time.Date(now.Year(), now.Month()+time.Month(k), 1, 0, 0, 0, 0, time.UTC).Format("2006_01")] = true
	}
	if len(parts) != len(want) {
		t.Errorf("partitions %v, want %v", parts, want)
	}
	for _, p := range parts {
		if !want[p] {
			t.Errorf("partitions %v, want %v", parts, want)
		}
	}
	// Every partition leaves room for in-place updates.
	var noFill int
	db.Get(&noFill, `SELECT count(*) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'deliveries'::regclass AND NOT coalesce(c.reloptions, '{}') @> '{fillfactor=35}'`)
	if noFill != 0 {
		t.Errorf("%d partitions without fillfactor 35", noFill)
	}
	// The sequence goes on from where it was, and belongs to the new table.
	var next int64
	if err := db.Get(&next, `SELECT nextval('deliveries_id_seq')`); err != nil || next != lastID+1 {
		t.Errorf("next delivery id %d (%v), want %d", next, err, lastID+1)
	}
	var owner string
	db.Get(&owner, `SELECT d.refobjid::regclass::text FROM pg_depend d
		WHERE d.objid = 'deliveries_id_seq'::regclass AND d.deptype = 'a'`)
	if owner != "deliveries" {
		t.Errorf("deliveries_id_seq owned by %q, want deliveries", owner)
	}
	// Referenced rows still can't be deleted (migration 0005's triggers).
	if _, err := db.Exec(`DELETE FROM subscribers WHERE id = (SELECT min(id) FROM subscribers)`); err == nil {
		t.Error("deleted a subscriber with deliveries")
	}
	if _, err := db.Exec(`DELETE FROM editions WHERE date = '2025-03-02'`); err == nil {
		t.Error("deleted an edition with deliveries")
	}
	// A send afterwards: queued in this month's partition, leased, recorded.
	ctx := context.Background()
	q := &delivery.Queue{DB: db}
	var id int64
	db.Get(&id, `SELECT id FROM editions WHERE date = '2025-06-01'`)
	if n, err := q.Enqueue(ctx, id, "example.com", 0); err != nil || n != 50 {
		t.Fatalf("enqueue after the upgrade: %d, %v; want 50", n, err)
	}
	jobs, err := q.Lease(ctx, id, "w/0", 100, time.Minute, 0)
	if err != nil || len(jobs) != 50 || jobs[0].ID <= next {
		t.Fatalf("lease after the upgrade: %d jobs, %v; want 50 with new ids", len(jobs), err)
	}
	rs := make([]delivery.Result, len(jobs))
	for i, j := range jobs {
		rs[i] = delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Sent, Code: 250}
	}
	if n, err := q.Record(ctx, id, "w/0", rs); err != nil || n != 50 {
		t.Fatalf("record after the upgrade: %d, %v; want 50", n, err)
	}
	if c, err := q.Count(ctx, id); err != nil || c.Sent != 50 || c.Total() != 50 {
		t.Fatalf("counts after the upgrade: %+v, %v; want 50 sent", c, err)
	}
}

func sameDelivery(a, b deliveryRow) bool {
	eqT := func(x, y *time.Time) bool { return (x == nil) == (y == nil) && (x == nil || x.Equal(*y)) }
	eqS := func(x, y *string) bool { return (x == nil) == (y == nil) && (x == nil || *x == *y) }
	return a.ID == b.ID && a.EditionID == b.EditionID && a.SubscriberID == b.SubscriberID &&
		a.Status == b.Status && eqS(a.MessageID, b.MessageID) && a.Attempts == b.Attempts &&
		a.NextAttemptAt.Equal(b.NextAttemptAt) && eqS(a.LeaseHolder, b.LeaseHolder) &&
		eqT(a.LeaseExpiresAt, b.LeaseExpiresAt) &&
		(a.Permanent == nil) == (b.Permanent == nil) && (a.Permanent == nil || *a.Permanent == *b.Permanent) &&
		(a.SMTPCode == nil) == (b.SMTPCode == nil) && (a.SMTPCode == nil || *a.SMTPCode == *b.SMTPCode) &&
		eqS(a.SMTPEnhanced, b.SMTPEnhanced) && eqS(a.SMTPReply, b.SMTPReply) &&
		a.CreatedAt.Equal(b.CreatedAt) && a.UpdatedAt.Equal(b.UpdatedAt) &&
		eqT(a.SentAt, b.SentAt) && eqT(a.LastAttemptAt, b.LastAttemptAt)
}
