package main

import (
	"context"
	"flag"
	"fmt"
	"time"

	"newsletter/newsroom"
)

var cancelCommand = &command{
	usage: "cancel [--date YYYY-MM-DD]\n\nCancels the edition's send. A scheduled send not started is unscheduled (the edition is a draft again).\n" +
		"A send going on stops in every process within seconds, for good: every recipient not yet handed to the\n" +
		"SMTP server is recorded as cancelled, the messages being sent record their outcome, and the edition is\n" +
		"never resumed or sent again.",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		var date time.Time
		dateFlag(fs, &date, "the edition's date, YYYY-MM-DD (default: today in NEWSLETTER_TZ)")
		return func(ctx context.Context, a *app, _ []string) error {
			st, err := a.edition(ctx, date)
			if err != nil {
				return err
			}
			room := a.room(nil)
			n, err := room.Cancel(ctx, newsroom.CLI, st)
			if err != nil {
				return err
			}
			state, err := room.Editions.SendState(ctx, st.ID)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "edition %s: %s", st.Edition.DateString(), state.State())
			if state.CancelledAt != nil {
				fmt.Fprintf(a.stdout, "; %d recipients recorded as cancelled now", n)
			}
			fmt.Fprintln(a.stdout)
			return nil
		}
	},
}
