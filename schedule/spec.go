package schedule

import (
	"fmt"
	"math/bits"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Spec is when the digest runs: at most once per local day of its time
// zone, at the first time of that day its cron expression names.
//
// The day's time is found on the wall clock, not by stepping through
// instants as cron.SpecSchedule.Next does: that would skip a day whose
// time falls in the hour a spring-forward change removes. Here such a day
// runs at the first valid instant after the gap, and a time in the hour a
// fall-back change repeats runs at its first occurrence; the row per day
// (see Scheduler) keeps it to once either way.
type Spec struct {
	text string
	cron *cron.SpecSchedule
	loc  *time.Location
}

// starBit is robfig/cron's mark of a field given as "*" (spec.go), which
// changes how day of month and day of week combine.
const starBit = 1 << 63

// Parse reads NEWSLETTER_SCHEDULE: a time of day, "07:00", or a cron
// expression of five fields ("30 6 * * 1-5") or a descriptor (@daily), in
// loc. The error says what to write instead.
func Parse(s string, loc *time.Location) (*Spec, error) {
	s = strings.TrimSpace(s)
	expr := s
	if t, err := time.Parse("15:04", s); err == nil {
		expr = fmt.Sprintf("%d %d * * *", t.Minute(), t.Hour())
	} else if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, fmt.Errorf("%q: give the time zone in NEWSLETTER_TZ, not in the schedule", s)
	}
	sched, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("%q is neither a time of day like 07:00 nor a cron expression like \"0 7 * * *\": %w", s, err)
	}
	spec, ok := sched.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("%q: @every runs at intervals, not at a time of day; write a time like 07:00 or a cron expression", s)
	}
	return &Spec{text: s, cron: spec, loc: loc}, nil
}

// String is the schedule as it was given.
func (s *Spec) String() string { return s.text }

// Location is the time zone whose days the schedule counts.
func (s *Spec) Location() *time.Location { return s.loc }

// On is the instant of day's run (day's date read in any zone), and false
// when the schedule has no run that day.
func (s *Spec) On(day time.Time) (time.Time, bool) {
	y, m, d := day.Date()
	wall := time.Date(y, m, d, 12, 0, 0, 0, s.loc) // noon: never in a gap
	c := s.cron
	if c.Month&(1<<uint(m)) == 0 || !dayMatches(c, wall) {
		return time.Time{}, false
	}
	h := bits.TrailingZeros64(c.Hour &^ starBit)
	mi := bits.TrailingZeros64(c.Minute &^ starBit)
	return s.instant(y, m, d, h, mi), true
}

// dayMatches is robfig/cron's rule (spec.go): day of month and day of week
// both have to match when either is "*", otherwise either may.
func dayMatches(c *cron.SpecSchedule, t time.Time) bool {
	dom := 1<<uint(t.Day())&c.Dom > 0
	dow := 1<<uint(t.Weekday())&c.Dow > 0
	if c.Dom&starBit > 0 || c.Dow&starBit > 0 {
		return dom && dow
	}
	return dom || dow
}

// instant is the wall-clock time h:mi of the day in s's zone: in a gap the
// end of the gap, when repeated the first occurrence.
func (s *Spec) instant(y int, m time.Month, d, h, mi int) time.Time {
	t := time.Date(y, m, d, h, mi, 0, 0, s.loc)
	if t.Hour() != h || t.Minute() != mi {
		// The wall time does not exist; time.Date put it in one of the two
		// zones around the gap. The next valid time is the change itself.
		start, end := t.ZoneBounds()
		want := time.Date(y, m, d, h, mi, 0, 0, time.UTC)
		got := time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, time.UTC)
		if got.Before(want) {
			return end
		}
		return start
	}
	// Repeated: the same wall time an offset's difference earlier, in the
	// zone before the change.
	start, _ := t.ZoneBounds()
	if start.IsZero() {
		return t
	}
	_, before := start.Add(-time.Second).Zone()
	_, now := t.Zone()
	if before > now {
		earlier := t.Add(-time.Duration(before-now) * time.Second)
		if earlier.Before(start) && earlier.In(s.loc).Hour() == h && earlier.In(s.loc).Minute() == mi {
			return earlier
		}
	}
	return t
}

// Day is a run's local day as a date: midnight UTC, as edition dates are.
func Day(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// Run is one scheduled day and the instant its run is due.
type Run struct {
	Day time.Time // the local day, as a date
	At  time.Time
}

// Between is the runs due in (from, to], oldest first.
func (s *Spec) Between(from, to time.Time) []Run {
	var out []Run
	// From the day before from's: a day's run may come before its local
	// midnight was reached in another reading of from (gaps at midnight).
	for day := Day(from, s.loc).AddDate(0, 0, -1); !day.After(Day(to, s.loc)); day = day.AddDate(0, 0, 1) {
		if at, ok := s.On(day); ok && at.After(from) && !at.After(to) {
			out = append(out, Run{Day: day, At: at})
		}
	}
	return out
}

// Next is the first run due after t; zero when none comes within a year
// and a day (a schedule for February 30th).
func (s *Spec) Next(t time.Time) time.Time {
	for day := Day(t, s.loc); day.Before(Day(t, s.loc).AddDate(1, 0, 2)); day = day.AddDate(0, 0, 1) {
		if at, ok := s.On(day); ok && at.After(t) {
			return at
		}
	}
	return time.Time{}
}
