package delivery_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/lib/pq"

	"newsletter/delivery"
)

// The lease finds its rows through indexes at every table size: on a small
// table the planner once hashed the update's join against a full scan of
// deliveries, a cost that grows with the table, not the lease. Both the plan
// for the values at hand (custom) and the one a prepared statement settles
// on (generic) are checked.
func TestLeasePlan(t *testing.T) {
	for _, history := range []int{0, 99} {
		t.Run(fmt.Sprintf("history%d", history), func(t *testing.T) {
			f := newFixture(t, 1000)
			ctx := context.Background()
			for i := range history {
				id := f.addEdition(t, fmt.Sprintf("2024-%02d-%02d", 1+i/28, 1+i%28))
				if _, err := f.db.Exec(`
					INSERT INTO deliveries (edition_id, subscriber_id, send_month, status, sent_at, attempts)
					SELECT $1, id, date_trunc('month', now() AT TIME ZONE 'UTC')::date, 'sent', now(), 1
					FROM subscribers WHERE status = 'confirmed'`, id); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := f.q.Enqueue(ctx, f.edition, "example.com", 0); err != nil {
				t.Fatal(err)
			}
			if _, err := f.db.Exec(`ANALYZE`); err != nil {
				t.Fatal(err)
			}
			if n := f.count(t, "true"); n != 1000*(history+1) {
				t.Fatalf("deliveries: %d, want %d", n, 1000*(history+1))
			}
			for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
				plan := explainLease(t, f, mode)
				if bad := badScans(plan); bad != "" {
					t.Errorf("%s: the lease plan has %s:\n%s", mode, bad, plan)
				}
			}
		})
	}
}

// explainLease is the lease statement's plan in JSON, planned as mode says.
func explainLease(t *testing.T, f *fixture, mode string) string {
	t.Helper()
	ctx := context.Background()
	conn, err := f.db.Connx(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, `SET plan_cache_mode = `+mode); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, `PREPARE lease_plan AS `+delivery.LeaseJobsSQL); err != nil {
		t.Fatal(err)
	}
	defer conn.ExecContext(ctx, `DEALLOCATE lease_plan`)
	var plan string
	err = conn.QueryRowxContext(ctx, fmt.Sprintf(`EXPLAIN (FORMAT JSON) EXECUTE lease_plan(%d, 'w', 50, 300, 0, %s)`,
		f.edition, pq.QuoteLiteral(f.month(t)))).Scan(&plan)
	if err != nil {
		t.Fatal(err)
	}
	return plan
}

// badScans names the first node of plan that reads all of deliveries: a
// sequential scan of it, or a hash join one of whose sides reads it, or
// more than one of its partitions (the statement names the edition's).
func badScans(plan string) string {
	var nodes []map[string]any
	if err := json.Unmarshal([]byte(plan), &nodes); err != nil {
		return "unreadable JSON: " + err.Error()
	}
	parts := map[string]bool{}
	var walk func(n map[string]any) string
	walk = func(n map[string]any) string {
		rel, _ := n["Relation Name"].(string)
		if strings.HasPrefix(rel, "deliveries") && n["Node Type"] != "ModifyTable" {
			parts[rel] = true
			if len(parts) > 1 {
				return fmt.Sprintf("scans of several partitions of deliveries (%v)", parts)
			}
		}
		if n["Node Type"] == "Seq Scan" && strings.HasPrefix(rel, "deliveries") {
			return "a Seq Scan on deliveries"
		}
		kids, _ := n["Plans"].([]any)
		if n["Node Type"] == "Hash Join" {
			for _, k := range kids {
				// InitPlans (the CTEs) run once, apart from the join.
				if m, ok := k.(map[string]any); ok && m["Parent Relationship"] != "InitPlan" {
					b, _ := json.Marshal(m)
					if strings.Contains(string(b), `"Relation Name":"deliveries`) {
						return "a Hash Join over deliveries"
					}
				}
			}
		}
		for _, k := range kids {
			if m, ok := k.(map[string]any); ok {
				if bad := walk(m); bad != "" {
					return bad
				}
			}
		}
		return ""
	}
	for _, n := range nodes {
		if p, ok := n["Plan"].(map[string]any); ok {
			if bad := walk(p); bad != "" {
				return bad
			}
		}
	}
	return ""
}
