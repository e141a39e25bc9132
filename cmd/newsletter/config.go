package main

import (
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"newsletter/bounces"
	"newsletter/delivery"
	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/web"
)

// config is the parsed settings of one subcommand: only those it reads are
// set (see the settings table).
type config struct {
	databaseURL  string
	relays       []smtpclient.Config // every relay of SMTP_URL, in failover order
	smtp         smtpclient.Config   // the first relay: the primary
	fromAddr     *mail.Address
	baseURL      string // without a trailing slash
	tokens       *subscribers.Tokens
	location     *time.Location
	templatesDir string
	listID       string
	dkimKeyFile  string
	dkimSelector string
	dkimDomain   string
	dkim         *mailer.DKIM // nil: mail goes unsigned (the relay may sign)

	// The reader pages (serve).
	listen      string
	siteName    string
	dns         string // doctor's DNS server, host:port; "": the system's
	confirm     subscribers.ConfirmPolicy
	ipLimit     web.RateLimit
	proxies     []netip.Prefix
	serveWorker bool
	// metricsListen serves /metrics apart (NEWSLETTER_METRICS_LISTEN); empty:
	// on the reader pages' listener for serve, nowhere for worker.
	metricsListen string

	// The delivery worker.
	conns          int
	maxPerConn     int
	maxAttempts    int
	retryBase      time.Duration
	batch          int
	rate           float64
	domainRates    map[string]float64
	errorThreshold int
	bouncePause    float64 // a share, 0 to 1
	leaseTTL       time.Duration
	sendWindow     time.Duration
	retention      delivery.Retention

	sched scheduleConfig // the built-in schedule (schedule.go)
	// Bounces and complaints (bounces.go).
	bounceDomain string // "": the From address's
	bounceListen string
	bounceCert   string
	bounceKey    string
	softBounces  bounces.SoftPolicy
	hooks        hookConfig // the IMAP poller and the webhooks (hooks.go)

	siteURL   string
	logLevel  slog.Level
	logFormat string

	// warnings are said once the logger exists.
	warnings []string
}

const maxInt = math.MaxInt

// finish checks what depends on several settings: the DKIM signer needs its
// key, its selector and the sender's domain.
func (c *config) finish() error {
	if c.dkimKeyFile == "" {
		if c.dkimSelector != "" || c.dkimDomain != "" {
			return fmt.Errorf("NEWSLETTER_DKIM_SELECTOR/NEWSLETTER_DKIM_DOMAIN is set but NEWSLETTER_DKIM_KEY_FILE is not: point it at the DKIM private key (PEM), or unset the DKIM settings")
		}
		return nil
	}
	if c.dkimSelector == "" {
		return fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE is set but NEWSLETTER_DKIM_SELECTOR is not: set it to the selector whose public key is published at <selector>._domainkey.<domain>")
	}
	domain := c.dkimDomain
	if domain == "" {
		domain = c.fromDomain()
	}
	files, sels := splitList(c.dkimKeyFile), splitList(c.dkimSelector)
	if len(files) > 2 || len(files) != len(sels) {
		return fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE names %d keys and NEWSLETTER_DKIM_SELECTOR %d selectors: give one or two keys (RSA and Ed25519), each with its own selector, in the same order", len(files), len(sels))
	}
	var keys []mailer.DKIMKey
	for i, f := range files {
		pem, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE: %w", err)
		}
		if _, err := mailer.ParseDKIMKey(pem); err != nil {
			return fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE %s: %w", f, err)
		}
		keys = append(keys, mailer.DKIMKey{Selector: sels[i], PEM: pem})
	}
	d, err := mailer.NewDKIMKeys(domain, keys...)
	if err != nil {
		return fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE %s: %w", c.dkimKeyFile, err)
	}
	c.dkim = d
	return nil
}

func parseDatabaseURL(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if u, err := url.Parse(v); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return fmt.Errorf("%s must be a postgres:// URL, like postgres://user:pass@localhost/newsletter?sslmode=disable", name)
	}
	c.databaseURL = v
	return nil
}

// parseRelays reads SMTP_URL: several relays, comma-separated, are tried in
// order: the first is the primary, the others take over while it is down.
func parseRelays(c *config, name, v string) error {
	for _, one := range strings.Split(v, ",") {
		s, err := smtpclient.ParseURL(strings.TrimSpace(one))
		if err != nil {
			return err // ParseURL names SMTP_URL and never the password
		}
		c.relays = append(c.relays, s)
	}
	c.smtp = c.relays[0]
	return nil
}

// parseFrom reads the sender. Its domain ends every Message-ID, so it is
// held to the rule subscriber addresses are: a dotted domain.
func parseFrom(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	a, err := mail.ParseAddress(v)
	if err != nil || strings.ContainsAny(v, "\r\n") || !strings.Contains(a.Address, "@") {
		return fmt.Errorf("%s %q is not an address like 'London Daily <newsletter@example.com>'", name, v)
	}
	if _, err := subscribers.NormalizeAddress(a.Address); err != nil {
		return fmt.Errorf("%s: %v; use an address at your own domain, like 'London Daily <newsletter@example.com>'", name, err)
	}
	c.fromAddr = a
	return nil
}

func parseBaseURL(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%s %q must be an absolute http(s) address without query, like https://news.example.com/newsletter", name, v)
	}
	c.baseURL = strings.TrimRight(v, "/")
	if u.Scheme != "https" && !isLoopback(u.Hostname()) {
		c.warnings = append(c.warnings, name+" is not HTTPS: mailbox providers expect one-click unsubscribe links over HTTPS (RFC 8058 section 3.2)")
	}
	return nil
}

// parseSecret never quotes the value: it is the key of every link.
func parseSecret(c *config, name, v string) error {
	t, err := subscribers.NewTokens([]byte(v))
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if why := weakSecret(v); why != "" {
		return fmt.Errorf("%s is too easy to guess: %s; print a good one with `newsletter secret`", name, why)
	}
	c.tokens = t
	return nil
}

func parseTZ(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	loc, err := time.LoadLocation(v)
	if err != nil {
		return fmt.Errorf("%s %q is not a time zone: use a name like Europe/London or UTC", name, v)
	}
	c.location = loc
	return nil
}

func parseTemplatesDir(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if v != "" {
		if st, err := os.Stat(v); err != nil || !st.IsDir() {
			return fmt.Errorf("%s %q is not a folder: point it at a folder of templates that override the built-in ones, or unset it", name, v)
		}
	}
	c.templatesDir = v
	return nil
}

func parseDNS(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s %q must be host:port, like 127.0.0.1:53", name, v)
	}
	c.dns = v
	return nil
}

func parseListen(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s %q must be host:port, like 127.0.0.1:8080", name, v)
	}
	c.listen = v
	return nil
}

func parseConfirmTTL(c *config, name, v string) error {
	d, err := time.ParseDuration(strings.TrimSpace(v))
	if err != nil || d < time.Minute {
		return fmt.Errorf("%s %q must be a duration of a minute or more, like 168h (7 days)", name, v)
	}
	c.confirm.TTL = d
	return nil
}

func parseConfirmLimit(c *config, name, v string) error {
	n, d, err := parseCountPer(v)
	if err != nil || n < 1 {
		return fmt.Errorf("%s %q must be a count and a period, like 3/24h (at most 3 confirmation emails to one address a day)", name, v)
	}
	c.confirm.PerWindow, c.confirm.Window = n, d
	return nil
}

func parseSignupLimit(c *config, name, v string) error {
	if strings.TrimSpace(v) == "off" {
		c.ipLimit = web.RateLimit{Burst: -1}
		return nil
	}
	n, d, err := parseCountPer(v)
	if err != nil || n < 1 {
		return fmt.Errorf("%s %q must be a count and a period, like 5/10m (5 at once, 5 more every 10 minutes), or off", name, v)
	}
	c.ipLimit = web.RateLimit{Burst: n, Every: d / time.Duration(n)}
	return nil
}

func parseProxies(c *config, name, v string) error {
	p, err := web.ParsePrefixes(v)
	if err != nil {
		return fmt.Errorf("%s: %v; list the proxies' addresses or prefixes separated by commas, like 127.0.0.1,10.0.0.0/8", name, err)
	}
	c.proxies = p
	return nil
}

// parseCountPer reads "N/PERIOD", like 3/24h.
func parseCountPer(s string) (int, time.Duration, error) {
	n, per, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, fmt.Errorf("no /")
	}
	count, err := strconv.Atoi(strings.TrimSpace(n))
	if err != nil {
		return 0, 0, err
	}
	d, err := time.ParseDuration(strings.TrimSpace(per))
	if err != nil || d <= 0 {
		return 0, 0, fmt.Errorf("bad period")
	}
	return count, d, nil
}

func parseRate(c *config, name, v string) error {
	r, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
	if err != nil || r < 0 || math.IsNaN(r) || math.IsInf(r, 0) {
		return fmt.Errorf("%s %q must be a number of messages per second, 0 for no limit", name, v)
	}
	c.rate = r
	return nil
}

// parseBouncePause reads a share of the first outcomes, "5%" or "0.05".
func parseBouncePause(c *config, name, v string) error {
	t := strings.TrimSpace(v)
	pct := strings.HasSuffix(t, "%")
	r, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if pct {
		r /= 100
	}
	if err != nil || r < 0 || r >= 1 || math.IsNaN(r) {
		return fmt.Errorf("%s %q must be a share under 100%%, such as 5%% or 0.05, or 0 never to pause", name, v)
	}
	c.bouncePause = r
	return nil
}

// parseDomainRates reads "gmail.com=50,yahoo.com=20".
func parseDomainRates(c *config, name, v string) error {
	c.domainRates = map[string]float64{}
	for _, part := range strings.Split(v, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		dom, r, ok := strings.Cut(part, "=")
		rate, err := strconv.ParseFloat(strings.TrimSpace(r), 64)
		if !ok || err != nil || rate <= 0 || strings.TrimSpace(dom) == "" {
			return fmt.Errorf("%s: %q is not domain=messages-per-second, like gmail.com=50", name, part)
		}
		c.domainRates[strings.ToLower(strings.TrimSpace(dom))] = rate
	}
	return nil
}

func parseLogLevel(c *config, name, v string) error {
	if err := c.logLevel.UnmarshalText([]byte(strings.TrimSpace(v))); err != nil {
		return fmt.Errorf("%s %q is not a log level: use debug, info, warn or error", name, v)
	}
	return nil
}

func parseLogFormat(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if v != "text" && v != "json" {
		return fmt.Errorf("%s %q must be text or json", name, v)
	}
	c.logFormat = v
	return nil
}

// intIn parses a whole number from lo to hi into the field dst selects.
func intIn(lo, hi int, dst func(*config) *int) func(*config, string, string) error {
	return func(c *config, name, v string) error {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		switch {
		case err != nil:
			return fmt.Errorf("%s %q is not a whole number", name, v)
		case n < lo && hi == maxInt:
			return fmt.Errorf("%s must be at least %d", name, lo)
		case n < lo || n > hi:
			return fmt.Errorf("%s must be between %d and %d", name, lo, hi)
		}
		*dst(c) = n
		return nil
	}
}

// durationFrom parses a duration of at least least into the field dst
// selects.
func durationFrom(least time.Duration, dst func(*config) *time.Duration) func(*config, string, string) error {
	return func(c *config, name, v string) error {
		d, err := time.ParseDuration(strings.TrimSpace(v))
		switch {
		case err != nil:
			return fmt.Errorf("%s %q is not a duration like 30s, 5m or 12h", name, v)
		case d < least && least == 0:
			return fmt.Errorf("%s can't be negative", name)
		case d < least && least < time.Millisecond:
			return fmt.Errorf("%s must be a positive duration like 30s", name)
		case d < least:
			return fmt.Errorf("%s must be at least %s", name, least)
		}
		*dst(c) = d
		return nil
	}
}

func parseBool(dst func(*config) *bool) func(*config, string, string) error {
	return func(c *config, name, v string) error {
		b, err := strconv.ParseBool(strings.TrimSpace(v))
		if err != nil {
			return fmt.Errorf("%s %q must be true or false (or 1 or 0)", name, v)
		}
		*dst(c) = b
		return nil
	}
}

// oneLineText stores a value that goes into a header or a path: one line.
func oneLineText(dst func(*config) *string) func(*config, string, string) error {
	return func(c *config, name, v string) error {
		if strings.ContainsAny(v, "\r\n") {
			return fmt.Errorf("%s must be one line", name)
		}
		*dst(c) = strings.TrimSpace(v)
		return nil
	}
}

// fromDomain is the domain of the sender address, used for Message-IDs.
func (c *config) fromDomain() string {
	return c.fromAddr.Address[strings.LastIndexByte(c.fromAddr.Address, '@')+1:]
}

// listIDHeader is the List-Id value (RFC 2919 section 2): the configured one,
// or the site's name and an id made from the sender address.
func (c *config) listIDHeader(siteName string) string {
	if c.listID != "" {
		return c.listID
	}
	local := c.fromAddr.Address[:strings.LastIndexByte(c.fromAddr.Address, '@')]
	id := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			return r
		}
		return '-'
	}, strings.ToLower(local))
	return fmt.Sprintf("%s <%s.%s>", siteName, id, c.fromDomain())
}

// feedbackID is the Feedback-ID of an edition's messages, in Gmail's
// format: the edition's date, "edition", the list (List-Id's label) and the
// sender (the From domain); nothing about the recipient.
func (c *config) feedbackID(date, siteName string) string {
	id := c.listIDHeader(siteName)
	if i := strings.LastIndexByte(id, '<'); i >= 0 {
		id = id[i+1:]
	}
	id, _, _ = strings.Cut(strings.TrimSuffix(strings.TrimSpace(id), ">"), ".")
	return mailer.FeedbackID(date, "edition", id, c.fromDomain())
}

// splitList is a comma-separated setting's items, trimmed, empty ones left
// out.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// unsubscribeDomain is where each recipient's unsubscribe mailbox,
// unsubscribe+TOKEN@domain, lives: the bounce domain, whose MX is
// `bounces serve`.
func (c *config) unsubscribeDomain() string {
	return c.returnDomain()
}

// unsubscribeMailto is the mailto: half of List-Unsubscribe (RFC 2369
// section 3.2): a message to the sender with the subject "unsubscribe".
func (c *config) unsubscribeMailto() string {
	return "mailto:" + c.fromAddr.Address + "?subject=unsubscribe"
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
