package main

import (
	"context"
	"fmt"
	"io"
	"time"

	"newsletter/delivery"
	"newsletter/fleet"
)

// joinFleet registers this process in the registry of live workers (package
// fleet), which first returns to the queue the leases of workers found dead,
// and returns what leaves it. The processes that send join: send (not its
// test copies nor --enqueue-only), worker and serve --worker.
func (a *app) joinFleet(ctx context.Context) (leave func(), err error) {
	m, err := fleet.Join(ctx, a.db, fleet.Options{
		Holder:  holderName(),
		Release: (&delivery.Queue{DB: a.db}).ReleaseHolder,
		Log:     a.log,
	})
	if err != nil {
		return nil, err
	}
	a.member = m
	return func() {
		// The process is stopping: its own time, not ctx's.
		lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := m.Leave(lctx); err != nil {
			a.log.Warn("leaving the registry of workers", "err", err)
		}
		a.member = nil
	}, nil
}

// holder names the process's leases: its identity in the registry once it
// joined, so that its leases are found by its name if it dies.
func (a *app) holder() string {
	if a.member != nil {
		return a.member.Holder()
	}
	return holderName()
}

// liveWorkers is how many workers are live, this one included.
func (a *app) liveWorkers() int {
	if a.member == nil {
		return 1
	}
	return a.member.Live()
}

// sendEdition runs w on the edition, the process's row in the registry
// saying meanwhile what it sends, at what rate, over how many connections.
func (a *app) sendEdition(ctx context.Context, w *delivery.Worker, id int64, date string, stats *delivery.Stats) error {
	if m := a.member; m != nil {
		// The worker's share of the fleet's rate, as delivery computes it
		// (0: no limit).
		m.SetActivity(fleet.Activity{Edition: date, Conns: max(1, w.Conns), Rate: func() float64 {
			return delivery.Share(w.Rate, a.liveWorkers())
		}})
		defer m.SetActivity(fleet.Activity{})
	}
	defer a.metrics.Track(stats)()
	return w.Run(ctx, id, stats)
}

// writeWorkers lists the live workers for `status`.
func writeWorkers(w io.Writer, list []fleet.Worker) {
	fmt.Fprintf(w, "workers %d live\n", len(list))
	for _, x := range list {
		doing := "idle"
		if x.Edition != nil {
			rate := "unlimited"
			if x.Rate != nil {
				rate = fmt.Sprintf("%.4g msgs/s", *x.Rate)
			}
			doing = fmt.Sprintf("sending %s at %s over %d connections", *x.Edition, rate, x.Conns)
		}
		fmt.Fprintf(w, "  %s pid %d (%s), started %s, heartbeat %.0fs ago: %s\n",
			x.Host, x.PID, x.Version, x.StartedAt.Format(time.RFC3339), x.HeartbeatAge, doing)
	}
}
