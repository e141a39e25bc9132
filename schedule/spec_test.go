package schedule_test

import (
	"strings"
	"testing"
	"time"

	"newsletter/schedule"
)

func london(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/London")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func date(t *testing.T, s string) time.Time {
	t.Helper()
	d, err := time.Parse(time.DateOnly, s)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestParse(t *testing.T) {
	loc := london(t)
	for _, tc := range []struct {
		in      string
		day     string
		want    string // RFC 3339 in UTC; "" for no run that day
		wantErr string
	}{
		{in: "07:00", day: "2026-01-15", want: "2026-01-15T07:00:00Z"},
		{in: "07:00", day: "2026-07-15", want: "2026-07-15T06:00:00Z"}, // BST
		{in: "30 6 * * 1-5", day: "2026-07-17", want: "2026-07-17T05:30:00Z"},
		{in: "30 6 * * 1-5", day: "2026-07-18", want: ""}, // a Saturday
		{in: "0 6,18 * * *", day: "2026-01-15", want: "2026-01-15T06:00:00Z"},
		{in: "@daily", day: "2026-01-15", want: "2026-01-15T00:00:00Z"},
		{in: "25:00", wantErr: "neither a time of day"},
		{in: "7 o'clock", wantErr: "neither a time of day"},
		{in: "@every 1h", wantErr: "@every"},
		{in: "CRON_TZ=UTC 0 7 * * *", wantErr: "NEWSLETTER_TZ"},
	} {
		spec, err := schedule.Parse(tc.in, loc)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("Parse(%q) = %v, want an error saying %q", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v", tc.in, err)
		}
		at, ok := spec.On(date(t, tc.day))
		got := ""
		if ok {
			got = at.UTC().Format(time.RFC3339)
		}
		if got != tc.want {
			t.Errorf("%q on %s = %q, want %q", tc.in, tc.day, got, tc.want)
		}
	}
}

// On the spring-forward day of Europe/London 01:30 does not exist: the run
// is at the first valid time after the gap, 02:00 BST. On the fall-back day
// 01:30 happens twice: the run is at the first.
func TestDaylightSavingDays(t *testing.T) {
	loc := london(t)
	spec, err := schedule.Parse("01:30", loc)
	if err != nil {
		t.Fatal(err)
	}
	for day, want := range map[string]string{
		"2026-03-28": "2026-03-28T01:30:00Z", // GMT
		"2026-03-29": "2026-03-29T01:00:00Z", // 02:00 BST, the end of the gap
		"2026-03-30": "2026-03-30T00:30:00Z", // BST
		"2026-10-24": "2026-10-24T00:30:00Z", // BST
		"2026-10-25": "2026-10-25T00:30:00Z", // the first 01:30, still BST
		"2026-10-26": "2026-10-26T01:30:00Z", // GMT
	} {
		at, ok := spec.On(date(t, day))
		if !ok || at.UTC().Format(time.RFC3339) != want {
			t.Errorf("01:30 on %s = %v (%v), want %s", day, at.UTC(), ok, want)
		}
	}
	// Between the two days, every day has exactly one run.
	runs := spec.Between(time.Date(2026, 3, 27, 0, 0, 0, 0, time.UTC), time.Date(2026, 10, 27, 0, 0, 0, 0, time.UTC))
	seen := map[string]bool{}
	for _, r := range runs {
		d := r.Day.Format(time.DateOnly)
		if seen[d] {
			t.Fatalf("two runs on %s", d)
		}
		seen[d] = true
	}
	if len(runs) != 214 {
		t.Fatalf("%d runs from 27 March to 26 October, want one a day (214)", len(runs))
	}
	if next := spec.Next(time.Date(2026, 3, 29, 0, 59, 0, 0, time.UTC)); !next.Equal(time.Date(2026, 3, 29, 1, 0, 0, 0, time.UTC)) {
		t.Fatalf("next after 00:59 GMT on the spring-forward day = %v, want 02:00 BST", next)
	}
}
