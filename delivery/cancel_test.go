package delivery_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"newsletter/delivery"
	"newsletter/edition"
	"newsletter/internal/smtptest"
)

// A send to a few thousand recipients through a relay that takes about
// 20 ms a message, by two workers as two processes would run it, cancelled
// half way: both stop, nothing is sent after the cancel took effect but
// what was leased then, every recipient is accounted for (sent or
// cancelled, none queued), and the cancel holds for a worker that starts
// afterwards (a restart): it sends nothing, and the send can be neither
// resumed nor started again.
func TestCancelHalfWay(t *testing.T) {
	const n = 2000
	f := newFixture(t, n)
	ctx := context.Background()
	srv := smtptest.Start(t, smtptest.WithDiscard())
	for i := range n {
		srv.Stall(fmt.Sprintf("reader%05d@example.com", i), 20*time.Millisecond)
	}
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	dial := dialer(t, f, smtpConfig(srv))
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			w := &delivery.Worker{Queue: f.q, Dial: dial, Holder: fmt.Sprintf("process-%d", i), Log: quietLog(),
				Conns: 4, Batch: 10, Group: 5, Poll: 50 * time.Millisecond}
			errs[i] = w.Run(ctx, f.edition, &delivery.Stats{})
		}()
	}
	for srv.Accepted() < n/3 {
		time.Sleep(10 * time.Millisecond)
	}
	cancelled, err := f.q.Cancel(ctx, f.edition, "ed@news.example")
	if err != nil {
		t.Fatal(err)
	}
	at, err := f.q.Count(ctx, f.edition)
	if err != nil {
		t.Fatal(err)
	}
	if cancelled == 0 || at.Queued != 0 || at.Cancelled != cancelled || at.Sent >= n*9/10 {
		t.Fatalf("at the cancel: %d recorded cancelled, counts %+v", cancelled, at)
	}
	wg.Wait()
	for _, err := range errs {
		if !errors.Is(err, delivery.ErrPaused) {
			t.Fatalf("a worker of the cancelled send returned %v, want ErrPaused", err)
		}
	}
	accepted := srv.Accepted()
	c, err := f.q.Count(ctx, f.edition)
	if err != nil {
		t.Fatal(err)
	}
	// Only what was leased at the cancel went out after it, and each
	// message the relay took is recorded sent.
	if c.Total() != n || c.Queued != 0 || c.Sending != 0 || c.Sent+c.Cancelled != n || c.Sent != int64(accepted) ||
		c.Sent > at.Sent+at.Sending {
		t.Fatalf("after the workers stopped: %+v (at the cancel %+v), the relay took %d", c, at, accepted)
	}
	eds := &edition.Store{DB: f.db}
	st, err := eds.SendState(ctx, f.edition)
	if err != nil {
		t.Fatal(err)
	}
	if st.State() != edition.Cancelled || st.CancelledBy == nil || *st.CancelledBy != "ed@news.example" || st.FinishedAt == nil {
		t.Fatalf("send state after the cancel: %s, by %v, finished %v", st.State(), st.CancelledBy, st.FinishedAt)
	}

	// A restart: a new worker sends nothing.
	w := &delivery.Worker{Queue: f.q, Dial: dial, Holder: "restarted", Log: quietLog(), Conns: 2, Poll: 50 * time.Millisecond}
	if err := w.Run(ctx, f.edition, &delivery.Stats{}); !errors.Is(err, delivery.ErrPaused) {
		t.Fatalf("a worker started after the cancel: %v, want ErrPaused", err)
	}
	time.Sleep(500 * time.Millisecond)
	if srv.Accepted() != accepted {
		t.Fatalf("the relay took %d messages after the workers stopped", srv.Accepted()-accepted)
	}
	if _, err := eds.Resume(ctx, f.edition); !errors.Is(err, edition.ErrCancelled) {
		t.Fatalf("resume of a cancelled send: %v", err)
	}
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); !errors.Is(err, edition.ErrCancelled) {
		t.Fatalf("enqueue of a cancelled send: %v", err)
	}
	if _, err := f.q.Cancel(ctx, f.edition, "ed@news.example"); !errors.Is(err, delivery.ErrNotCancellable) {
		t.Fatalf("second cancel: %v", err)
	}
}

// Deliveries leased by a worker that died are left leased by the cancel
// (their fate is the worker's) and recorded as cancelled once they come
// back, by SettleCancelled, which then ends the send.
func TestCancelSettlesDeadWorkersLeases(t *testing.T) {
	f := newFixture(t, 30)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	jobs, err := f.q.Lease(ctx, f.edition, "dead/0", 10, time.Minute, 0)
	if err != nil || len(jobs) != 10 {
		t.Fatalf("lease: %d, %v", len(jobs), err)
	}
	if n, err := f.q.Cancel(ctx, f.edition, "ed@news.example"); err != nil || n != 20 {
		t.Fatalf("cancel: %d, %v", n, err)
	}
	eds := &edition.Store{DB: f.db}
	if st, _ := eds.SendState(ctx, f.edition); st.FinishedAt != nil || f.count(t, `status = 'sending'`) != 10 {
		t.Fatal("the cancel ended the send with leases out, or took them")
	}
	if more, err := f.q.Lease(ctx, f.edition, "other/0", 10, time.Minute, 0); err != nil || len(more) != 0 {
		t.Fatalf("a lease after the cancel: %d, %v", len(more), err)
	}
	if _, err := f.q.ReleaseHolder(ctx, "dead"); err != nil {
		t.Fatal(err)
	}
	if err := f.q.SettleCancelled(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := f.q.Count(ctx, f.edition)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := eds.SendState(ctx, f.edition)
	if c.Cancelled != 30 || c.Total() != 30 || st.FinishedAt == nil || st.State() != edition.Cancelled {
		t.Fatalf("after settling: %+v, state %s, finished %v", c, st.State(), st.FinishedAt)
	}
}

// Of many starts of one due scheduled send at once, one starts it.
func TestEnqueueDueStartsOnce(t *testing.T) {
	f := newFixture(t, 50)
	ctx := context.Background()
	eds := &edition.Store{DB: f.db}
	id := f.addEdition(t, "2025-11-14")
	if n, ok, err := f.q.EnqueueDue(ctx, id, "example.com", 0); err != nil || ok || n != 0 {
		t.Fatalf("an edition not scheduled was started: %d, %v, %v", n, ok, err)
	}
	if _, err := eds.Schedule(ctx, id, time.Now().Add(time.Hour), "ed@news.example"); err != nil {
		t.Fatal(err)
	}
	if n, ok, err := f.q.EnqueueDue(ctx, id, "example.com", 0); err != nil || ok || n != 0 {
		t.Fatalf("a send scheduled in an hour was started: %d, %v, %v", n, ok, err)
	}
	if old, err := eds.Schedule(ctx, id, time.Now().Add(-time.Second), "ed@news.example"); err != nil || old == nil {
		t.Fatalf("reschedule: %v, %v", old, err)
	}
	var started sync.Map
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			due, err := eds.Due(ctx)
			if err != nil {
				t.Error(err)
				return
			}
			for _, d := range due {
				n, ok, err := f.q.EnqueueDue(ctx, d, "example.com", 0)
				if err != nil {
					t.Error(err)
				}
				if ok {
					started.Store(i, n)
				}
			}
		}()
	}
	wg.Wait()
	var starts []any
	started.Range(func(_, v any) bool { starts = append(starts, v); return true })
	if len(starts) != 1 || starts[0] != int64(50) {
		t.Fatalf("starts of the due send: %v, want one that queued 50", starts)
	}
	if _, err := eds.Schedule(ctx, id, time.Now().Add(time.Hour), "ed@news.example"); !errors.Is(err, edition.ErrSendStarted) {
		t.Fatalf("schedule after the start: %v", err)
	}
	if at, err := eds.Unschedule(ctx, id); err != nil || at != nil {
		t.Fatalf("unschedule after the start: %v, %v", at, err)
	}
}
