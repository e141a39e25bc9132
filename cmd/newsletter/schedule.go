package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"newsletter/edition"
	"newsletter/schedule"
	"newsletter/subscribers"
)

// scheduleConfig is the built-in schedule's settings (worker, serve
// --worker): no spec, no schedule.
type scheduleConfig struct {
	spec    *schedule.Spec
	feedURL string
	hold    time.Duration
	catchUp time.Duration
	alertTo *mail.Address
}

// The subcommands that run the schedule, and those that look at its runs.
var (
	scheduleCmds    = []string{"worker", "serve"}
	scheduleRunCmds = []string{"schedule status", "schedule hold", "schedule release"}
)

// optional is parse for a setting that may be unset: an empty value sets
// nothing.
func optional(parse func(c *config, name, v string) error) func(*config, string, string) error {
	return func(c *config, name, v string) error {
		if v = strings.TrimSpace(v); v == "" {
			return nil
		}
		return parse(c, name, v)
	}
}

// parseFeedURL reads NEWSLETTER_FEED_URL: an http(s) address, or a file (a
// path or file://).
func parseFeedURL(c *config, name, v string) error {
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "" && u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "file") ||
		((u.Scheme == "http" || u.Scheme == "https") && u.Host == "") {
		return fmt.Errorf("%s %q must be an http(s) address like https://news.example.com/feed.xml, or a file", name, v)
	}
	c.sched.feedURL = v
	return nil
}

// parseSchedule reads NEWSLETTER_SCHEDULE in NEWSLETTER_TZ; the rows of
// both, and of NEWSLETTER_FEED_URL which it needs, come before it in the
// table.
func parseSchedule(c *config, name, v string) error {
	loc := c.location
	if loc == nil {
		loc = time.UTC
	}
	spec, err := schedule.Parse(v, loc)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if c.sched.feedURL == "" {
		return fmt.Errorf("NEWSLETTER_FEED_URL is not set: %s imports the day's edition from it; set it to the site's feed or page, like https://news.example.com/feed.xml", name)
	}
	c.sched.spec = spec
	return nil
}

// parseAlertTo reads NEWSLETTER_ALERT_TO: one address.
func parseAlertTo(c *config, name, v string) error {
	a, err := mail.ParseAddress(v)
	if err == nil {
		_, err = subscribers.NormalizeAddress(a.Address)
	}
	if err != nil || strings.ContainsAny(v, "\r\n") {
		return fmt.Errorf("%s %q is not an address like 'Desk <desk@example.com>'", name, v)
	}
	c.sched.alertTo = a
	return nil
}

// runSchedule runs the schedule beside this process's delivery worker when
// NEWSLETTER_SCHEDULE is set, and returns what stops it. It is called before
// the worker starts.
func (a *app) runSchedule(ctx context.Context) (stop func()) {
	c := a.cfg.sched
	if c.spec == nil {
		return func() {}
	}
	// The schedule's own copy of the app, taken before the delivery worker
	// starts: the worker sets its membership of the fleet in its app, which
	// the schedule's start of a send (like send --enqueue-only) has no use for.
	sa := *a
	sa.member = nil
	s := &schedule.Scheduler{
		DB: a.db, Spec: c.spec, Hold: c.hold, CatchUp: c.catchUp,
		Import: sa.importFeed,
		Start: func(ctx context.Context, date time.Time) error {
			return send(ctx, &sa, sendOptions{date: date, enqueueOnly: true})
		},
		Log:    a.log.With("from", "schedule"),
		Holder: holderName(),
	}
	if c.alertTo != nil {
		s.Alert = (&schedule.MailAlert{SMTP: a.cfg.smtp, From: a.cfg.fromAddr, To: c.alertTo, DKIM: a.cfg.dkim}).Send
	}
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Run(sctx); err != nil && sctx.Err() == nil {
			a.log.Error("the schedule stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// importFeed is the schedule's import of the day's edition from
// NEWSLETTER_FEED_URL as the day's edition: an http(s) feed through `edition
// import URL`'s fetch (time and size limits, bounded redirects, conditional
// requests; the same page again is unchanged, not an error), a file (or
// file://) through `edition import FILE`'s path.
func (a *app) importFeed(ctx context.Context, day time.Time) (time.Time, error) {
	src := a.cfg.sched.feedURL
	if isURL(src) {
		date, _, err := a.importURL(ctx, src, day)
		return date, err
	}
	quiet := *a
	quiet.stdout = io.Discard // the date `edition import` prints is the day's
	err := importFile(ctx, &quiet, strings.TrimPrefix(src, "file://"), edition.ParseOptions{Date: day, SiteURL: a.cfg.siteURL})
	return day, err
}

var scheduleStatus = &command{
	usage: "schedule status [--limit N]\n\nLists the built-in schedule's runs, newest first: the day, when it was due and started,\n" +
		"the edition, the outcome (sent, held, failed, missed...) and why.",
	needs: needDB,
	setup: func(fs *flag.FlagSet) runFunc {
		limit := fs.Int("limit", 30, "how many runs to list")
		return func(ctx context.Context, a *app, _ []string) error { return listRuns(ctx, a, *limit) }
	},
}

var scheduleHold = runCommand("schedule hold DATE\n\nHolds the day's scheduled digest: it is imported but not sent until `newsletter schedule release DATE`.\n"+
	"Works until its send starts (during NEWSLETTER_HOLD, or before the run).",
	func(ctx context.Context, a *app, day time.Time) error { return schedule.Hold(ctx, a.db, day) },
	"held %[1]s: not sent until `newsletter schedule release %[1]s`")

var scheduleRelease = runCommand("schedule release DATE\n\nSends a held scheduled digest: the schedule (in worker or serve --worker) starts its send within seconds.",
	func(ctx context.Context, a *app, day time.Time) error {
		return schedule.Release(ctx, a.db, day, time.Now())
	},
	"released %[1]s: the schedule starts its send at its next look (within 15s)")

// runCommand is a subcommand that changes the run of a day: change it,
// then say what was done (done's %[1]s is the day).
func runCommand(usage string, change func(ctx context.Context, a *app, day time.Time) error, done string) *command {
	return &command{usage: usage, args: []string{"DATE"}, needs: needDB,
		setup: func(*flag.FlagSet) runFunc {
			return func(ctx context.Context, a *app, args []string) error {
				day, err := edition.ParseDate(args[0])
				if err != nil {
					return usageErr("DATE: %v", err)
				}
				if err := change(ctx, a, day); err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, done+"\n", args[0])
				return nil
			}
		}}
}

func listRuns(ctx context.Context, a *app, limit int) error {
	runs, err := schedule.List(ctx, a.db, limit)
	if err != nil {
		return err
	}
	if len(runs) == 0 {
		fmt.Fprintln(a.stdout, "no scheduled runs yet: set NEWSLETTER_SCHEDULE and NEWSLETTER_FEED_URL for `newsletter worker` or `newsletter serve --worker`")
		return nil
	}
	loc := a.cfg.location
	at := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.In(loc).Format("2006-01-02 15:04 MST")
	}
	w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "DAY\tSCHEDULED FOR\tSTARTED\tEDITION\tOUTCOME\tREASON")
	for _, r := range runs {
		ed := "-"
		if r.EditionDate != nil {
			ed = r.EditionDate.Format(edition.DateLayout)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", r.Day.Format(edition.DateLayout), at(&r.ScheduledFor), at(r.StartedAt),
			ed, outcome(r, loc), oneLine(r.Reason))
	}
	return w.Flush()
}

// outcome is a run's state in words: held, or waiting for what.
func outcome(r schedule.Record, loc *time.Location) string {
	switch {
	case r.Held:
		return "held"
	case r.State == schedule.Importing && r.Attempts > 0 && r.NextAt != nil:
		return fmt.Sprintf("importing (attempt %d at %s)", r.Attempts+1, r.NextAt.In(loc).Format("15:04:05"))
	case r.State == schedule.Holding && r.NextAt != nil:
		return "holding until " + r.NextAt.In(loc).Format("15:04:05")
	}
	return r.State
}
