// Command sendbench measures `newsletter send` end to end, as issue 5 asks:
// a real PostgreSQL, Postfix's smtp-sink on loopback, the demo edition, N
// confirmed subscribers, every outcome recorded. Beside msgs/s, which swings
// widely on a shared machine, it reports CPU time per message (the
// newsletter process, PostgreSQL's processes, the sink), which moves far
// less, and peak RSS; and it runs a minimal pipelined SMTP client to the same
// sink in the same run, interleaved with the newsletter and repeated, so the
// newsletter's rate is judged against what the machine could do at that
// moment, not against a number from another day.
//
// It is run by scripts/bench.sh (make bench). See -h for the flags.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "baseline" {
		os.Exit(baselineMain(os.Args[2:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "sendbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	o, err := parseOptions(args)
	if err != nil {
		if err == flag.ErrHelp {
			return nil
		}
		return err
	}
	work := o.workDir
	if work == "" {
		if work, err = os.MkdirTemp("", "sendbench-"); err != nil {
			return fmt.Errorf("work folder: %w", err)
		}
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return fmt.Errorf("work folder: %w", err)
	}
	h := &harness{o: o, work: work, out: newReport(os.Stdout)}
	if o.dkim {
		v, err := dkimVariant(work)
		if err != nil {
			return err
		}
		o.variants = append(o.variants, v)
	}
	err = h.run(ctx)
	if o.workDir == "" {
		if err == nil && !h.failed {
			os.RemoveAll(work)
		} else {
			fmt.Fprintf(os.Stderr, "sendbench: logs kept in %s\n", work)
		}
	}
	if err == nil && h.failed {
		err = fmt.Errorf("some runs failed or did not record every delivery as sent (see the check column; logs in %s)", work)
	}
	return err
}
