package delivery_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"newsletter/delivery"
)

// Pruning keeps an edition's counts and failures, then drops its month once
// the month is past the retention and every edition of it has finished:
// Count still answers, the edition can't be sent again, and a month with a
// send going on, or within the retention, stays.
func TestPruneSummarisesThenDropsOldMonths(t *testing.T) {
	f := newFixture(t, 20)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	jobs, err := f.q.Lease(ctx, f.edition, "w/0", 100, time.Minute, 0)
	if err != nil || len(jobs) != 20 {
		t.Fatalf("lease: %d, %v", len(jobs), err)
	}
	var rs []delivery.Result
	for i, j := range jobs {
		r := delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Sent, Code: 250}
		switch {
		case i < 3:
			r = delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Failed, Permanent: true,
				Code: 550, Enhanced: "5.1.1", Reply: "5.1.1 <reader@example.com>: no such user"}
		case i < 4:
			r = delivery.Result{ID: j.ID, SubscriberID: j.SubscriberID, Status: delivery.Failed, Code: 451, Reply: "try later"}
		case i < 5:
			r.Status, r.Code = delivery.Skipped, 0
		}
		rs = append(rs, r)
	}
	if _, err := f.q.Record(ctx, f.edition, "w/0", rs); err != nil {
		t.Fatal(err)
	}
	want, err := f.q.Count(ctx, f.edition)
	if err != nil || want.Sent != 15 || want.Failed != 4 || want.FailedPermanent != 3 || want.Skipped != 1 {
		t.Fatalf("counts before pruning: %+v, %v", want, err)
	}
	month := f.month(t)
	part := "deliveries_" + month[:4] + "_" + month[5:7]
	start, _ := time.Parse(time.DateOnly, month)
	keep := delivery.Retention{Months: 13}

	// Within the retention: nothing happens.
	if p, err := f.q.Prune(ctx, keep, start.AddDate(0, 13, 0), time.Second); err != nil || len(p.Partitions) != 0 {
		t.Fatalf("prune within the retention: %+v, %v", p, err)
	}
	// Past it, but the send is not finished: kept, and said why.
	later := start.AddDate(0, 14, 1)
	p, err := f.q.Prune(ctx, keep, later, time.Second)
	if err != nil || len(p.Partitions) != 0 || p.Kept[part] == "" {
		t.Fatalf("prune of a month with a send going on: %+v, %v; want it kept", p, err)
	}
	// Forever keeps everything.
	f.db.MustExec(`UPDATE editions SET finished_at = now() WHERE id = $1`, f.edition)
	if p, err := f.q.Prune(ctx, delivery.Retention{}, later, time.Second); err != nil || len(p.Partitions) != 0 {
		t.Fatalf("prune with retention 0: %+v, %v", p, err)
	}
	p, err = f.q.Prune(ctx, keep, later, time.Second)
	if err != nil || len(p.Partitions) != 1 || p.Partitions[0] != part || p.Editions != 1 {
		t.Fatalf("prune: %+v, %v; want %s dropped with one edition", p, err, part)
	}
	var exists bool
	f.db.Get(&exists, `SELECT to_regclass($1) IS NOT NULL`, part)
	if exists || f.count(t, "true") != 0 {
		t.Fatalf("partition %s still there after the prune", part)
	}
	// The counts and failures answer from the summary; no reply text kept.
	got, err := f.q.Count(ctx, f.edition)
	if err != nil || got != want {
		t.Fatalf("counts after pruning: %+v, %v; want %+v", got, err, want)
	}
	s, err := f.q.Summary(ctx, f.edition)
	if err != nil || s == nil || len(s.Failures) != 2 ||
		s.Failures[0] != (delivery.Failure{Code: 550, Enhanced: "5.1.1", Permanent: true, Count: 3}) ||
		s.Failures[1] != (delivery.Failure{Code: 451, Count: 1}) {
		t.Fatalf("summary: %+v, %v", s, err)
	}
	var text string
	f.db.Get(&text, `SELECT failures::text FROM delivery_summaries WHERE edition_id = $1`, f.edition)
	if len(text) == 0 || strings.Contains(text, "reader@example.com") {
		t.Errorf("the summary keeps reply text: %s", text)
	}
	// Sending it again would send it to everyone twice.
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); !errors.Is(err, delivery.ErrPruned) {
		t.Fatalf("enqueue of a pruned edition: %v; want ErrPruned", err)
	}
	// A second prune finds nothing to do.
	if p, err := f.q.Prune(ctx, keep, later, time.Second); err != nil || len(p.Partitions) != 0 {
		t.Fatalf("second prune: %+v, %v", p, err)
	}
}

// EnsurePartitions makes the month of now and the next ones, once, however
// many processes ask at once.
func TestEnsurePartitionsAheadConcurrently(t *testing.T) {
	f := newFixture(t, 1)
	ctx := context.Background()
	at := time.Date(2031, 11, 20, 0, 0, 0, 0, time.UTC)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- f.q.EnsurePartitions(ctx, at, 0) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{"deliveries_2031_11", "deliveries_2031_12", "deliveries_2032_01", "deliveries_2032_02"} {
		var ff bool
		if err := f.db.Get(&ff, `SELECT reloptions @> '{fillfactor=35}' FROM pg_class WHERE oid = to_regclass($1)`, p); err != nil || !ff {
			t.Errorf("partition %s: %v, fillfactor 35: %v", p, err, ff)
		}
	}
}
