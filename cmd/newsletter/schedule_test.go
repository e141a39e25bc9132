package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"
)

// worker with NEWSLETTER_SCHEDULE due a minute ago catches the day's run
// up at start: it fetches the feed, imports it as the day's edition,
// starts its send and delivers it; `schedule status` shows it sent.
func TestWorkerRunsTheSchedule(t *testing.T) {
	h := newHarness(t)
	h.setup()
	seed, err := os.ReadFile(seedPath)
	if err != nil {
		t.Fatal(err)
	}
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(seed) }))
	defer feed.Close()
	loc, _ := time.LoadLocation("Europe/London")
	due := time.Now().In(loc).Add(-time.Minute)
	t.Setenv("NEWSLETTER_SCHEDULE", due.Format("15:04"))
	t.Setenv("NEWSLETTER_FEED_URL", feed.URL+"/today.txt")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int)
	var out, errb bytes.Buffer
	go func() { done <- run(ctx, []string{"worker", "--poll", "50ms"}, &out, &errb) }()
	h.smtp.WaitFor(t, 4, 30*time.Second)
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("worker exited %d: %s", code, errb.String())
	}
	day := due.Format(time.DateOnly)
	var sentEditions []string
	if err := h.db.Select(&sentEditions, `SELECT date::text FROM editions WHERE send_started_at IS NOT NULL`); err != nil {
		t.Fatal(err)
	}
	if len(sentEditions) != 1 || sentEditions[0] != day {
		t.Fatalf("editions sent: %v, want the day's, %s", sentEditions, day)
	}
	status := h.must("schedule", "status")
	if !strings.Contains(status, day) || !strings.Contains(status, "sent") {
		t.Fatalf("schedule status:\n%s\nwant %s sent", status, day)
	}
	code, _, errs := h.run("schedule", "hold", day)
	if code != 1 || !strings.Contains(errs, "the run is sent") {
		t.Fatalf("hold of a sent run: exit %d, %s", code, errs)
	}
}

func TestScheduleSettingsSayWhatToFix(t *testing.T) {
	h := newHarness(t)
	h.must("migrate")
	for _, tc := range []struct{ schedule, feed, want string }{
		{"25:00", "https://news.example.com/feed.xml", "NEWSLETTER_SCHEDULE: \"25:00\" is neither a time of day like 07:00 nor a cron expression"},
		{"07:00", "", "NEWSLETTER_FEED_URL is not set: NEWSLETTER_SCHEDULE imports the day's edition from it"},
		{"07:00", "ftp://news.example.com/feed", "must be an http(s) address"},
	} {
		t.Setenv("NEWSLETTER_SCHEDULE", tc.schedule)
		t.Setenv("NEWSLETTER_FEED_URL", tc.feed)
		code, _, errs := h.run("worker")
		if code != 1 || !strings.Contains(errs, tc.want) {
			t.Errorf("NEWSLETTER_SCHEDULE=%q NEWSLETTER_FEED_URL=%q: exit %d, %q; want exit 1 saying %q", tc.schedule, tc.feed, code, errs, tc.want)
		}
	}
	code, _, errs := h.run("schedule", "release", "2026-01-15")
	if code != 1 || !strings.Contains(errs, "no scheduled run of that day") {
		t.Fatalf("release without a run: exit %d, %s", code, errs)
	}
	if out := h.must("schedule", "status"); !strings.Contains(out, "no scheduled runs yet") {
		t.Fatalf("status without runs: %q", out)
	}
}
