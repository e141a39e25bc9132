package migrations_test

import (
	"context"
	"slices"
	"testing"

	"github.com/jmoiron/sqlx"

	"newsletter/internal/pgtest"
	"newsletter/migrations"
)

// Subscribers stored under two spellings of one mailbox become one, keeping
// both consent records and delivery histories; the pair's deliveries of
// one edition become one, the sent one kept.
func TestUpgradeTo0011MergesOneMailbox(t *testing.T) {
	for _, partitioned := range []bool{false, true} {
		name := "plain"
		if partitioned {
			name = "partitioned"
		}
		t.Run(name, func(t *testing.T) {
			db := pgtest.New(t)
			// Before 0010 deliveries is a plain table, and 0010 moves
			// its rows into the month-partitioned one before 0011 runs.
			if partitioned {
				migrateTo(t, db, 10)
			} else {
				migrateTo(t, db, 9)
			}
			testMerge(t, db, partitioned)
		})
	}
}

func testMerge(t *testing.T, db *sqlx.DB, partitioned bool) {
	h := func(b byte) []byte { return append(make([]byte, 31), b) }
	// 1 and 2 are one mailbox (A-label and Unicode); 2 unsubscribed later,
	// so 2's decision stands. 3 and 4 are one mailbox (NFD and NFC local
	// part); 4 confirmed last. 5 is alone and in A-labels.
	db.MustExec(`INSERT INTO subscribers (id, email, status, unsub_token_hash, created_at, confirmed_at, unsubscribed_at) VALUES
		(1, 'dup@xn--bcher-kva.example', 'confirmed', $1, now() - interval '3 days', now() - interval '3 days', NULL),
		(2, 'Dup@Bücher.example', 'unsubscribed', $2, now() - interval '2 days', now() - interval '2 days', now() - interval '1 day'),
		(3, 'rene`+"\u0301"+`@example.com', 'pending', $3, now() - interval '3 days', NULL, NULL),
		(4, 'ren`+"\u00e9"+`@example.com', 'confirmed', $4, now() - interval '2 days', now() - interval '2 days', NULL),
		(5, 'solo@xn--mller-kva.de', 'confirmed', $5, now(), now(), NULL)`, h(1), h(2), h(3), h(4), h(5))
	db.MustExec(`INSERT INTO consents (subscriber_id, email_hash, action, method) VALUES
		(1, $1, 'import', 'import'), (2, $2, 'signup', 'form'), (2, $2, 'unsubscribe', 'form'),
		(3, $3, 'signup', 'form'), (4, $4, 'add', 'editor')`, h(1), h(2), h(3), h(4))
	db.MustExec(`INSERT INTO editions (id, date, content, source_format, send_started_at) VALUES
		(1, '2025-11-12', '{}', 'json', '2025-11-12'), (2, '2025-11-13', '{}', 'json', '2025-11-13'),
		(3, '2025-11-14', '{}', 'json', '2025-11-14')`)
	month, monthValue := "", ""
	if partitioned {
		// The month of the sends, and its partition (migration 0010).
		db.MustExec(`SELECT deliveries_partition('2025-11-01')`)
		month, monthValue = ", send_month", ", '2025-11-01'"
	}
	// Edition 1 reached both 1 and 2 (sent to 1, failed to 2); edition 2
	// only 1; edition 3 both, both sent.
	db.MustExec(`INSERT INTO deliveries (edition_id, subscriber_id, status, message_id, sent_at, permanent` + month + `) VALUES
		(1, 1, 'sent', 'm1', now(), NULL` + monthValue + `), (1, 2, 'failed', 'm2', NULL, true` + monthValue + `),
		(2, 1, 'sent', 'm3', now(), NULL` + monthValue + `),
		(3, 1, 'sent', 'm4', now(), NULL` + monthValue + `), (3, 2, 'sent', 'm5', now(), NULL` + monthValue + `),
		(1, 3, 'sent', 'm6', now(), NULL` + monthValue + `)`)

	applied, err := migrations.Apply(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(applied, 11) {
		t.Fatalf("applied %v, want 11 among them", applied)
	}
	var subs []struct {
		ID     int64  `db:"id"`
		Email  string `db:"email"`
		Status string `db:"status"`
	}
	if err := db.Select(&subs, `SELECT id, email, status FROM subscribers ORDER BY id`); err != nil {
		t.Fatal(err)
	}
	want := []string{"2 Dup@bücher.example unsubscribed", "4 ren\u00e9@example.com confirmed", "5 solo@müller.de confirmed"}
	var got []string
	for _, s := range subs {
		got = append(got, fmtRow(s.ID, s.Email, s.Status))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("subscribers after 0011: %q, want %q", got, want)
	}
	var consents []int64
	db.Select(&consents, `SELECT subscriber_id FROM consents ORDER BY id`)
	if !slices.Equal(consents, []int64{2, 2, 2, 4, 4}) {
		t.Fatalf("consent entries now belong to %v, want every one kept, on the kept subscribers [2 2 2 4 4]", consents)
	}
	var dels []string
	db.Select(&dels, `SELECT edition_id || ':' || subscriber_id || ':' || status FROM deliveries ORDER BY edition_id, subscriber_id`)
	if want := []string{"1:2:sent", "1:4:sent", "2:2:sent", "3:2:sent"}; !slices.Equal(dels, want) {
		t.Fatalf("deliveries after 0011: %v, want %v", dels, want)
	}
	var merges []string
	db.Select(&merges, `SELECT dropped_id || '->' || kept_id || ':' || duplicate_deliveries FROM subscriber_merges ORDER BY dropped_id`)
	if want := []string{"1->2:2", "3->4:0"}; !slices.Equal(merges, want) {
		t.Fatalf("subscriber_merges %v, want %v", merges, want)
	}
}

func fmtRow(id int64, email, status string) string {
	return string(rune('0'+id)) + " " + email + " " + status
}
