package delivery

import (
	"testing"
	"time"
)

// The feed's buffer holds about what was leased and not handed out, however
// many leases a send takes: a lease comes while jobs are still waiting, so
// the buffer is never empty when one is added, and without dropping what
// was handed out it would keep every job of the send.
func TestFeedBufferStaysSmall(t *testing.T) {
	f := &feed{low: 50, size: 100, avail: make(chan struct{}), want: make(chan struct{}, 1)}
	id := int64(0)
	f.push(make([]Job, 50), time.Now()) // always 50 waiting when a lease comes
	for range 1000 {
		jobs := make([]Job, 100)
		for i := range jobs {
			id++
			jobs[i].ID = id
		}
		f.push(jobs, time.Now())
		for range 100 {
			if _, ok := f.tryTake(); !ok {
				t.Fatal("a job pushed was not handed out")
			}
		}
	}
	if ready, _ := f.state(); ready != 50 || cap(f.jobs) > 400 {
		t.Fatalf("after 100,000 jobs: %d waiting, want 50; room for %d kept", ready, cap(f.jobs))
	}
}
