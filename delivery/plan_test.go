package delivery

import "testing"

// The stripes of a plan cover every queued id once: connections that lease
// from them in turn, stealing halves when their own run out, take each id
// exactly once, never step over the ids of another stripe, and need the
// shared pass only for the last few.
func TestPlanStripesCoverEveryIDOnce(t *testing.T) {
	for _, conns := range []int{1, 3, 8, 64} {
		const lo, hi = 1001, 11000
		p := newPlan(conns, hi-lo+1, lo, hi)
		queued := map[int64]bool{}
		for id := int64(lo); id <= hi; id++ {
			queued[id] = true
		}
		leasedBy := map[int64]int{}
		byShared := map[int64]bool{} // taken by the shared pass, which may step into a stripe
		shared, stepped := 0, 0
		for round := 0; len(queued) > 0 && round < 100000; round++ {
			i := round % conns
			const n = 50
			after, upto, ok := p.claim(i, n)
			if !ok {
				shared++
				after, upto = 0, hi
			}
			var jobs []Job
			for id := after + 1; id <= upto && len(jobs) < n; id++ {
				if queued[id] {
					jobs = append(jobs, Job{ID: id})
					delete(queued, id)
					leasedBy[id]++
					byShared[id] = !ok
				} else if ok && !byShared[id] {
					stepped++ // a row another connection's stripe held
				}
			}
			if ok {
				p.leased(i, n, jobs)
			}
		}
		if len(queued) > 0 {
			t.Fatalf("conns %d: %d ids never leased", conns, len(queued))
		}
		for id, k := range leasedBy {
			if k != 1 {
				t.Fatalf("conns %d: id %d leased %d times", conns, id, k)
			}
		}
		if stepped > 0 {
			t.Errorf("conns %d: stripe leases stepped over %d ids of other stripes", conns, stepped)
		}
		if shared > 2*conns {
			t.Errorf("conns %d: %d leases from the shared pass, want the stripes to hold nearly all", conns, shared)
		}
	}
}
