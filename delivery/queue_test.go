package delivery_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jmoiron/sqlx"
	"github.com/lib/pq"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/pgtest"
	"newsletter/subscribers"
)

func TestMain(m *testing.M) { pgtest.Main(m) }

type fixture struct {
	db      *sqlx.DB
	q       *delivery.Queue
	subs    *subscribers.Store
	edition int64
}

// newFixture makes a database with n confirmed subscribers, one pending, one
// unsubscribed, and an edition.
func newFixture(t testing.TB, n int) *fixture {
	t.Helper()
	db := pgtest.New(t)
	tok, _ := subscribers.NewTokens([]byte(strings.Repeat("k", 32)))
	f := &fixture{db: db, q: &delivery.Queue{DB: db}, subs: &subscribers.Store{DB: db, Tokens: tok}}
	var csv strings.Builder
	csv.WriteString("email,name,status\n")
	for i := range n {
		fmt.Fprintf(&csv, "reader%05d@example.com,Reader %d,confirmed\n", i, i)
	}
	csv.WriteString("pending@example.com,,pending\nleft@example.com,,unsubscribed\n")
	if _, err := f.subs.Import(context.Background(), strings.NewReader(csv.String()), subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	f.edition = f.addEdition(t, "2025-11-13")
	return f
}

// addEdition stores an edition for the date and returns its id.
func (f *fixture) addEdition(t testing.TB, date string) int64 {
	t.Helper()
	d, err := edition.ParseDate(date)
	if err != nil {
		t.Fatal(err)
	}
	ed := &edition.Edition{Date: d, Site: edition.Site{Name: "London Daily"}, Lead: edition.Story{Title: "Lead", Body: []edition.Block{{Kind: edition.Paragraph, Text: "Body."}}}}
	id, _, err := (&edition.Store{DB: f.db}).Save(context.Background(), ed, edition.FormatJSON)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// month is the partition key of the fixture's edition, whose send started.
func (f *fixture) month(t testing.TB) string {
	t.Helper()
	var m string
	if err := f.db.Get(&m, `SELECT send_month::text FROM editions WHERE id = $1`, f.edition); err != nil {
		t.Fatal(err)
	}
	return m
}

func (f *fixture) count(t testing.TB, where string) int {
	t.Helper()
	var n int
	if err := f.db.Get(&n, `SELECT count(*) FROM deliveries WHERE `+where); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestEnqueueOnlyConfirmedAndOnce(t *testing.T) {
	f := newFixture(t, 25)
	ctx := context.Background()
	n, err := f.q.Enqueue(ctx, f.edition, "example.com", 0)
	if err != nil || n != 25 {
		t.Fatalf("enqueue: %d, %v; want 25 (confirmed only)", n, err)
	}
	n, err = f.q.Enqueue(ctx, f.edition, "example.com", 0)
	if err != nil || n != 0 {
		t.Fatalf("second enqueue: %d, %v; want 0", n, err)
	}
	// Someone confirmed since is queued by the next run, nobody else again.
	if _, err := f.subs.Add(ctx, "late@example.com", "", subscribers.Confirmed); err != nil {
		t.Fatal(err)
	}
	if n, _ = f.q.Enqueue(ctx, f.edition, "example.com", 0); n != 1 {
		t.Fatalf("enqueue after a new confirmation: %d, want 1", n)
	}
	// Every recipient has a Message-ID of its own at the sender's domain,
	// the same when leased again (a retry), and it leads back to the
	// delivery (as a bounce quoting it would).
	first := leaseAll(t, f.q, f.edition, "a")
	if len(first) != 26 {
		t.Fatalf("leased %d, want 26", len(first))
	}
	ids := map[string]int64{}
	for _, j := range first {
		if !strings.HasSuffix(j.MessageID, "@example.com") || strings.ContainsAny(j.MessageID, "<> ") {
			t.Errorf("Message-ID %q: want local@example.com", j.MessageID)
		}
		if _, dup := ids[j.MessageID]; dup {
			t.Errorf("Message-ID %q given twice", j.MessageID)
		}
		ids[j.MessageID] = j.ID
	}
	if err := f.q.Release(ctx, f.edition, "a", jobIDs(first)); err != nil {
		t.Fatal(err)
	}
	for _, j := range leaseAll(t, f.q, f.edition, "b") {
		if got, ok := ids[j.MessageID]; !ok || got != j.ID {
			t.Errorf("delivery %d leased again with Message-ID %q, not the one it had", j.ID, j.MessageID)
		}
		id, status, err := f.q.ByMessageID(ctx, "<"+j.MessageID+">")
		if err != nil || id != j.ID || status != delivery.Sending {
			t.Errorf("ByMessageID(%q) = %d, %q, %v; want %d, sending", j.MessageID, id, status, err, j.ID)
		}
	}
	if _, _, err := f.q.ByMessageID(ctx, "<00000000-0000-0000-0000-000000000000.1@example.com>"); !errors.Is(err, sql.ErrNoRows) {
		t.Errorf("ByMessageID of an unknown id: %v, want sql.ErrNoRows", err)
	}
	var started bool
	f.db.Get(&started, `SELECT send_started_at IS NOT NULL FROM editions WHERE id = $1`, f.edition)
	if !started {
		t.Fatal("enqueue did not freeze the edition")
	}
}

func TestConcurrentLeasesAreDisjoint(t *testing.T) {
	f := newFixture(t, 300)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	seen := map[int64]string{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			holder := fmt.Sprintf("w%d", w)
			for {
				jobs, err := f.q.Lease(ctx, f.edition, holder, 17, time.Minute, 0)
				if err != nil {
					t.Error(err)
					return
				}
				if len(jobs) == 0 {
					return
				}
				mu.Lock()
				for _, j := range jobs {
					if prev, dup := seen[j.ID]; dup {
						t.Errorf("delivery %d leased by %s and %s", j.ID, prev, holder)
					}
					seen[j.ID] = holder
					if j.Attempts != 1 {
						t.Errorf("attempt not counted at lease time: %d", j.Attempts)
					}
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != 300 {
		t.Fatalf("%d deliveries leased, want 300", len(seen))
	}
}

func TestRecordOnlyWhileLeaseHeld(t *testing.T) {
	f := newFixture(t, 3)
	ctx := context.Background()
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	jobs, err := f.q.Lease(ctx, f.edition, "old", 10, time.Millisecond, 0)
	if err != nil || len(jobs) != 3 {
		t.Fatalf("lease: %d, %v", len(jobs), err)
	}
	time.Sleep(20 * time.Millisecond)
	// The old holder is presumed dead: its leases go back to the queue,
	// with the attempt still counted (the message may have gone out).
	if n, err := f.q.Rescue(ctx); err != nil || n != 3 {
		t.Fatalf("rescue: %d, %v; want 3", n, err)
	}
	again, err := f.q.Lease(ctx, f.edition, "new", 10, time.Minute, 0)
	if err != nil || len(again) != 3 || again[0].Attempts != 2 {
		t.Fatalf("re-lease: %+v, %v; want 3 jobs at attempt 2", again, err)
	}
	// The old holder wakes up and reports: nothing is written.
	n, err := f.q.Record(ctx, f.edition, "old", []delivery.Result{{ID: jobs[0].ID, SubscriberID: jobs[0].SubscriberID, Status: delivery.Failed, Permanent: true, Code: 550}})
	if err != nil || n != 0 {
		t.Fatalf("record by a lost holder: %d written, %v; want 0", n, err)
	}
	// The holder's results are written, hard bounces mark the subscriber.
	res := []delivery.Result{
		{ID: again[0].ID, SubscriberID: again[0].SubscriberID, Status: delivery.Sent, Code: 250, Reply: "2.0.0 queued"},
		{ID: again[1].ID, SubscriberID: again[1].SubscriberID, Status: delivery.Failed, Permanent: true, HardBounce: true, Code: 550, Enhanced: "5.1.1", Reply: "no such user"},
		{ID: again[2].ID, SubscriberID: again[2].SubscriberID, Status: delivery.Queued, NextAttempt: time.Now().Add(time.Hour), Code: 451, Reply: "later"},
	}
	if n, err := f.q.Record(ctx, f.edition, "new", res); err != nil || n != 3 {
		t.Fatalf("record: %d, %v; want 3", n, err)
	}
	// A plain 250 keeps its code, not its text.
	if f.count(t, `status = 'sent' AND sent_at IS NOT NULL AND smtp_code = 250 AND smtp_reply IS NULL`) != 1 ||
		f.count(t, `status = 'failed' AND permanent AND smtp_enhanced = '5.1.1'`) != 1 ||
		f.count(t, `status = 'queued' AND next_attempt_at > now() + interval '50 minutes' AND lease_holder IS NULL`) != 1 {
		t.Fatal("results not recorded as given")
	}
	s, _ := f.subs.Get(ctx, again[1].SubscriberID)
	if s.Status != subscribers.Bounced {
		t.Fatalf("hard-bounced subscriber is %s, want bounced", s.Status)
	}
	// A retry that is not due is not leased.
	if more, _ := f.q.Lease(ctx, f.edition, "new", 10, time.Minute, 0); len(more) != 0 {
		t.Fatalf("leased %d deliveries before their retry time", len(more))
	}
	pending, next, err := f.q.Pending(ctx, f.edition)
	if err != nil || pending != 1 || time.Until(next) < 50*time.Minute {
		t.Fatalf("pending %d next %v (%v)", pending, next, err)
	}
}

func TestReleaseTakesBackTheAttempt(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	jobs, _ := f.q.Lease(ctx, f.edition, "w", 10, time.Minute, 0)
	if err := f.q.Release(ctx, f.edition, "w", []int64{jobs[0].ID, jobs[1].ID}); err != nil {
		t.Fatal(err)
	}
	if f.count(t, `status = 'queued' AND attempts = 0 AND lease_holder IS NULL`) != 2 {
		t.Fatal("released deliveries are not back in the queue untouched")
	}
}

func editionStore(f *fixture) *edition.Store { return &edition.Store{DB: f.db} }

func TestLeaseStartsAfterTheCursor(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	var ids []int64
	f.db.Select(&ids, `SELECT id FROM deliveries ORDER BY id`)
	jobs, err := f.q.Lease(ctx, f.edition, "w", 100, time.Minute, ids[6])
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 3 {
		t.Fatalf("leased %d after the 7th id, want the 3 above it", len(jobs))
	}
	for _, j := range jobs {
		if j.ID <= ids[6] {
			t.Fatalf("leased id %d at or below the cursor %d", j.ID, ids[6])
		}
	}
	if rest, _ := f.q.Lease(ctx, f.edition, "w", 100, time.Minute, 0); len(rest) != 7 {
		t.Fatalf("from 0: %d, want the other 7", len(rest))
	}
}

func leaseAll(t *testing.T, q *delivery.Queue, edition int64, holder string) []delivery.Job {
	t.Helper()
	jobs, err := q.Lease(context.Background(), edition, holder, 1000, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	return jobs
}

func jobIDs(jobs []delivery.Job) []int64 {
	ids := make([]int64, len(jobs))
	for i, j := range jobs {
		ids[i] = j.ID
	}
	return ids
}

// Deliveries queued before migration 0005 stored a random Message-ID; they
// keep it.
func TestStoredMessageIDIsKept(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	const old = "5b0c1c9e-1111-4f00-8000-123456789abc@old.example"
	if _, err := f.db.Exec(`UPDATE deliveries SET message_id = $1 WHERE id = (SELECT min(id) FROM deliveries)`, old); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, j := range leaseAll(t, f.q, f.edition, "a") {
		if j.MessageID == old {
			found = true
			if id, _, err := f.q.ByMessageID(ctx, old); err != nil || id != j.ID {
				t.Errorf("ByMessageID(stored) = %d, %v; want %d", id, err, j.ID)
			}
		}
	}
	if !found {
		t.Error("the stored Message-ID was not used")
	}
}

// Without foreign keys on deliveries (migration 0005), triggers keep a
// subscriber or an edition that deliveries refer to from being deleted.
func TestReferencedRowsCannotBeDeleted(t *testing.T) {
	f := newFixture(t, 2)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	isFKViolation := func(err error) bool {
		var pqErr *pq.Error
		return errors.As(err, &pqErr) && pqErr.Code == "23503"
	}
	if _, err := f.db.Exec(`DELETE FROM subscribers WHERE email = 'reader00000@example.com'`); !isFKViolation(err) {
		t.Errorf("deleting a subscriber with deliveries: %v, want a foreign key violation", err)
	}
	if _, err := f.db.Exec(`DELETE FROM editions WHERE id = $1`, f.edition); !isFKViolation(err) {
		t.Errorf("deleting an edition with deliveries: %v, want a foreign key violation", err)
	}
	if got := f.count(t, `true`); got != 2 {
		t.Errorf("%d deliveries left, want 2", got)
	}
	// Someone never mailed (pending) can go.
	if _, err := f.db.Exec(`DELETE FROM subscribers WHERE email = 'pending@example.com'`); err != nil {
		t.Errorf("deleting a subscriber without deliveries: %v", err)
	}
}

// Pending counts what is queued and what is leased, and tells when the
// earliest queued one is due; finished deliveries don't count.
func TestPendingCountsQueuedAndLeased(t *testing.T) {
	f := newFixture(t, 4)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	jobs := leaseAll(t, f.q, f.edition, "w")
	retryAt := time.Now().Add(time.Hour).Round(time.Millisecond)
	// One sent, one retry in an hour, two still leased.
	if _, err := f.q.Record(ctx, f.edition, "w", []delivery.Result{
		{ID: jobs[0].ID, SubscriberID: jobs[0].SubscriberID, Status: delivery.Sent, Code: 250},
		{ID: jobs[1].ID, SubscriberID: jobs[1].SubscriberID, Status: delivery.Queued, NextAttempt: retryAt, Code: 451},
	}); err != nil {
		t.Fatal(err)
	}
	n, next, err := f.q.Pending(ctx, f.edition)
	if err != nil || n != 3 || !next.Equal(retryAt) {
		t.Fatalf("Pending = %d, %v, %v; want 3, %v", n, next, err, retryAt)
	}
	if err := f.q.Release(ctx, f.edition, "w", []int64{jobs[2].ID, jobs[3].ID}); err != nil {
		t.Fatal(err)
	}
	if n, next, _ = f.q.Pending(ctx, f.edition); n != 3 || time.Until(next) > time.Minute {
		t.Fatalf("after release: %d pending, next %v; want 3, due now", n, next)
	}
}

// ReleaseHolder returns the leases of one worker's connections (holder/N),
// and no one else's, whose names merely start the same.
func TestReleaseHolder(t *testing.T) {
	f := newFixture(t, 10)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"h/1/a/0", "h/1/a/1", "h/1/ab/0", "h/1/a"} {
		if jobs, err := f.q.Lease(ctx, f.edition, h, 2, time.Minute, 0); err != nil || len(jobs) != 2 {
			t.Fatalf("lease for %s: %d, %v", h, len(jobs), err)
		}
	}
	if n, err := f.q.ReleaseHolder(ctx, "h/1/a"); err != nil || n != 6 {
		t.Fatalf("released %d, %v; want the 6 of h/1/a and its connections", n, err)
	}
	if f.count(t, `status = 'sending' AND lease_holder = 'h/1/ab/0'`) != 2 ||
		f.count(t, `status = 'queued' AND attempts = 1 AND lease_holder IS NULL`) != 6 {
		t.Fatal("the wrong leases were returned, or their attempts not kept")
	}
}

// One Record carries several connections' results (the run's recorder
// writes them together): each is written only while its own holder holds
// the delivery.
func TestRecordChecksEachResultsHolder(t *testing.T) {
	f := newFixture(t, 4)
	ctx := context.Background()
	f.q.Enqueue(ctx, f.edition, "example.com", 0)
	a, err := f.q.Lease(ctx, f.edition, "w/0", 2, time.Minute, 0)
	if err != nil || len(a) != 2 {
		t.Fatalf("lease: %d, %v", len(a), err)
	}
	b, err := f.q.Lease(ctx, f.edition, "w/1", 2, time.Minute, a[1].ID)
	if err != nil || len(b) != 2 {
		t.Fatalf("lease: %d, %v", len(b), err)
	}
	sent := func(j delivery.Job, holder string) delivery.Result {
		return delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Sent, Code: 250, Holder: holder}
	}
	// The last result names a holder that doesn't hold its delivery.
	n, err := f.q.Record(ctx, f.edition, "", []delivery.Result{sent(a[0], "w/0"), sent(b[0], "w/1"), sent(a[1], "w/0"), sent(b[1], "w/0")})
	if err != nil || n != 3 {
		t.Fatalf("record: %d written, %v; want 3", n, err)
	}
	if f.count(t, `status = 'sent'`) != 3 || f.count(t, `status = 'sending' AND lease_holder = 'w/1'`) != 1 {
		t.Fatal("a result was written over another holder's lease, or one of the holders' own was not")
	}
}
