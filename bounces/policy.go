package bounces

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SoftPolicy is when soft bounces (a full mailbox, a server down for days:
// failures that may pass) mark a subscriber bounced: Count of them, each
// for a different delivery, within Within.
type SoftPolicy struct {
	Count  int
	Within time.Duration
}

// DefaultSoftPolicy is three soft bounces in thirty days: a mailbox full for
// three editions in a month is most likely abandoned.
var DefaultSoftPolicy = SoftPolicy{Count: 3, Within: 30 * 24 * time.Hour}

// ParseSoftPolicy reads N/PERIOD: 3/30d, 5/720h.
func ParseSoftPolicy(s string) (SoftPolicy, error) {
	n, period, ok := strings.Cut(strings.TrimSpace(s), "/")
	count, err := strconv.Atoi(n)
	if !ok || err != nil || count < 1 || count > 1000 {
		return SoftPolicy{}, fmt.Errorf("%q: want N/PERIOD with N from 1 to 1000, like 3/30d", s)
	}
	var d time.Duration
	if days, ok := strings.CutSuffix(period, "d"); ok {
		k, err := strconv.Atoi(days)
		if err != nil || k < 1 || k > 3660 {
			return SoftPolicy{}, fmt.Errorf("%q: the period %q: want days (30d) or a duration (720h)", s, period)
		}
		d = time.Duration(k) * 24 * time.Hour
	} else if d, err = time.ParseDuration(period); err != nil || d <= 0 {
		return SoftPolicy{}, fmt.Errorf("%q: the period %q: want days (30d) or a duration (720h)", s, period)
	}
	return SoftPolicy{Count: count, Within: d}, nil
}
