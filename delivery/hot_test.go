package delivery_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/lib/pq"

	"newsletter/delivery"
	"newsletter/internal/smtptest"
)

// holder is as long as a real worker's (host/pid/random): the rows' growth
// at lease is part of what the schema must leave room for.
const longHolder = "newsletter-host/123456/9f3a1c2e"

// updateCounts reads the deliveries table's update counters.
func updateCounts(t *testing.T, f *fixture) (upd, hot int64) {
	t.Helper()
	if err := f.db.QueryRow(`
		SELECT coalesce(sum(n_tup_upd), 0), coalesce(sum(n_tup_hot_upd), 0) FROM pg_stat_user_tables
		WHERE relid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = 'deliveries'::regclass)`).Scan(&upd, &hot); err != nil {
		t.Fatal(err)
	}
	return upd, hot
}

// A send changes each delivery's status twice (lease, record); PostgreSQL
// makes those changes in place (HOT) when no index covers a column they
// change and the page has room (migration 0009). A property of the schema:
// an index on status or a full page makes the share fall near zero.
func TestSendUpdatesDeliveriesInPlace(t *testing.T) {
	const n = 1500
	f := newFixture(t, n)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	upd0, hot0 := updateCounts(t, f)
	srv := smtptest.Start(t)
	w := &delivery.Worker{Queue: f.q, Dial: dialer(t, f, smtpConfig(srv)), Holder: longHolder,
		Log: quietLog(), Conns: 4, Batch: 100}
	if err := w.Run(ctx, f.edition, &delivery.Stats{}); err != nil {
		t.Fatal(err)
	}
	// Sent: the code of the acceptance, not its text.
	if got := f.count(t, `status = 'sent' AND smtp_code = 250 AND smtp_reply IS NULL`); got != n {
		t.Fatalf("%d sent with code 250 and no reply text, want %d", got, n)
	}
	// The counters are the server processes' own until they report them:
	// at exit, or when idle for a while. Closing the idle connections
	// makes them report; the wait is for that, not a timing.
	f.db.SetMaxIdleConns(0)
	f.db.SetMaxIdleConns(2)
	var upd, hot int64
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		upd, hot = updateCounts(t, f)
		upd, hot = upd-upd0, hot-hot0
		if upd >= 2*n || time.Now().After(deadline) {
			break
		}
	}
	if upd < 2*n {
		t.Fatalf("%d updates counted, want at least %d (lease and record of each)", upd, 2*n)
	}
	if share := float64(hot) / float64(upd); share < 0.9 {
		t.Fatalf("%d of %d updates in place (%.2f), want more than 0.9", hot, upd, share)
	}
}

// planNode is the part of an EXPLAIN (FORMAT JSON) node the test reads.
type planNode struct {
	Type     string     `json:"Node Type"`
	Relation string     `json:"Relation Name"`
	Index    string     `json:"Index Name"`
	Rows     float64    `json:"Actual Rows"`
	Loops    float64    `json:"Actual Loops"`
	Removed  float64    `json:"Rows Removed by Filter"`
	Plans    []planNode `json:"Plans"`
}

func (p planNode) each(fn func(planNode)) {
	fn(p)
	for _, c := range p.Plans {
		c.each(fn)
	}
}

// Recording a batch reads the batch's rows by id, not every leased row to
// find the holder's, whatever the number of rows others hold, with the
// plan PostgreSQL makes for the values and the one it reuses for any.
func TestRecordReadsOnlyItsRows(t *testing.T) {
	f := newFixture(t, 3000)
	ctx := context.Background()
	if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
		t.Fatal(err)
	}
	f.db.MustExec(`ANALYZE deliveries`)
	mine, err := f.q.Lease(ctx, f.edition, "me/0", 10, time.Minute, 0)
	if err != nil || len(mine) != 10 {
		t.Fatalf("lease: %d, %v", len(mine), err)
	}
	// Everything else is leased by others.
	for after := mine[9].ID; ; {
		jobs, err := f.q.Lease(ctx, f.edition, "other/0", 500, time.Minute, after)
		if err != nil {
			t.Fatal(err)
		}
		if len(jobs) == 0 {
			break
		}
		after = jobs[len(jobs)-1].ID
	}
	if got := f.count(t, `status = 'sending'`); got != 3000 {
		t.Fatalf("%d leased, want 3000", got)
	}
	ids, status, empty, perm, codes, holders := []int64{}, []string{}, []string{}, []bool{}, []int64{}, []string{}
	for _, j := range mine {
		ids, status, empty = append(ids, j.ID), append(status, delivery.Sent), append(empty, "")
		perm, codes, holders = append(perm, false), append(codes, 250), append(holders, "me/0")
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		tx := f.db.MustBegin()
		tx.MustExec(`SET LOCAL plan_cache_mode = ` + mode)
		// PREPARE outlives the transaction: one name per mode.
		tx.MustExec(`PREPARE rec_` + mode + ` AS ` + delivery.RecordSQL)
		var out string
		// EXECUTE takes no parameters of its own: the values are literals.
		hv, _ := pq.Array(holders).Value()
		args := []string{pq.QuoteLiteral(hv.(string))}
		for _, a := range []any{ids, status, empty, perm, codes, empty, empty, perm} {
			v, _ := pq.Array(a).Value()
			args = append(args, pq.QuoteLiteral(v.(string)))
		}
		args = append(args, pq.QuoteLiteral(f.month(t)))
		err := tx.Get(&out, `EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE rec_`+mode+`(`+strings.Join(args, ", ")+`)`)
		tx.Rollback()
		if err != nil {
			t.Fatal(err)
		}
		var plans []struct{ Plan planNode }
		if err := json.Unmarshal([]byte(out), &plans); err != nil || len(plans) != 1 {
			t.Fatalf("plan: %v", err)
		}
		seen := false
		plans[0].Plan.each(func(p planNode) {
			if p.Type == "Function Scan" && p.Loops > 1 {
				t.Errorf("%s: the batch's arrays read %v times, want once\n%s", mode, p.Loops, out)
			}
			if !strings.HasPrefix(p.Relation, "deliveries") || p.Type == "ModifyTable" {
				return
			}
			if seen {
				t.Errorf("%s: a second scan of deliveries (%s): the statement must read the edition's partition only\n%s", mode, p.Relation, out)
			}
			seen = true
			if read := (p.Rows + p.Removed) * p.Loops; p.Index != p.Relation+"_pkey" || read > 10 {
				t.Errorf("%s: %s %s on deliveries read %v rows for a batch of 10; want the primary key, 10 rows\n%s",
					mode, p.Type, p.Index, read, out)
			}
		})
		if !seen {
			t.Errorf("%s: no scan of deliveries in the plan\n%s", mode, out)
		}
	}
}
