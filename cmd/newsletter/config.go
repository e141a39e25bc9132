package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"newsletter/mailer"
	"newsletter/smtpclient"
	"newsletter/subscribers"
	"newsletter/web"
)

// config is the configuration a subcommand asked for. Each value comes from
// a flag or, when the flag is not given, from its environment variable. Flag
// defaults are left empty on purpose: `-h` must never print a password taken
// from the environment.
type config struct {
	databaseURL  string
	smtpURL      string
	from         string
	baseURL      string
	tz           string
	templatesDir string
	listen       string
	listID       string
	// The reader pages' settings (serve).
	confirmTTL     string
	confirmLimit   string
	signupLimit    string
	trustedProxies string

	dkim     *mailer.DKIM        // nil: mail goes unsigned (the relay may sign)
	smtp     smtpclient.Config   // the first relay: the primary
	relays   []smtpclient.Config // every relay of SMTP_URL, in failover order
	fromAddr *mail.Address
	location *time.Location
	tokens   *subscribers.Tokens
	confirm  subscribers.ConfirmPolicy
	ipLimit  web.RateLimit
	proxies  []netip.Prefix

	need map[string]bool
}

// Variables, for the messages that say what to fix.
const (
	envDatabaseURL = "DATABASE_URL"
	envSMTPURL     = "SMTP_URL"
	envFrom        = "NEWSLETTER_FROM"
	envBaseURL     = "NEWSLETTER_BASE_URL"
	envTZ          = "NEWSLETTER_TZ"
	envTemplates   = "NEWSLETTER_TEMPLATES"
	envListen      = "NEWSLETTER_LISTEN"
	envListID      = "NEWSLETTER_LIST_ID"
	// The reader pages (serve).
	envConfirmTTL     = "NEWSLETTER_CONFIRM_TTL"
	envConfirmLimit   = "NEWSLETTER_CONFIRM_LIMIT"
	envSignupLimit    = "NEWSLETTER_SIGNUP_LIMIT"
	envTrustedProxies = "NEWSLETTER_TRUSTED_PROXIES"
	// The secret has no flag: a flag would show it in `ps` to every user.
	envSecret = "NEWSLETTER_SECRET"
	// DKIM signing (with NEWSLETTER_FROM): the private key's file, the
	// selector, and the signing domain (default: the sender's).
	envDKIMKeyFile  = "NEWSLETTER_DKIM_KEY_FILE"
	envDKIMSelector = "NEWSLETTER_DKIM_SELECTOR"
	envDKIMDomain   = "NEWSLETTER_DKIM_DOMAIN"
)

func newConfig(fs *flag.FlagSet, needs ...string) *config {
	c := &config{need: map[string]bool{}}
	for _, n := range needs {
		c.need[n] = true
		switch n {
		case envDatabaseURL:
			fs.StringVar(&c.databaseURL, "database-url", "", "PostgreSQL URL (env "+envDatabaseURL+")")
		case envSMTPURL:
			fs.StringVar(&c.smtpURL, "smtp-url", "", "smtp://user:pass@host:port?tls=starttls|tls|none, or smtps:// (env "+envSMTPURL+")")
		case envFrom:
			fs.StringVar(&c.from, "from", "", "sender, like 'London Daily <newsletter@example.com>' (env "+envFrom+")")
		case envBaseURL:
			fs.StringVar(&c.baseURL, "base-url", "", "public address of the reader pages, used for every link in the email (env "+envBaseURL+")")
		case envTZ:
			fs.StringVar(&c.tz, "tz", "", "time zone that decides what 'today' is, like Europe/London (env "+envTZ+"; default UTC)")
		case envTemplates:
			fs.StringVar(&c.templatesDir, "templates", "", "folder whose templates override the built-in ones (env "+envTemplates+")")
		case envListen:
			fs.StringVar(&c.listen, "listen", "", "HTTP address to listen on (env "+envListen+"; default 127.0.0.1:8080)")
		case envListID:
			fs.StringVar(&c.listID, "list-id", "", "List-Id header, like 'London Daily <daily.news.example.com>' (env "+envListID+"; default from NEWSLETTER_FROM)")
		case envConfirmTTL:
			fs.StringVar(&c.confirmTTL, "confirm-ttl", "", "how long a confirmation link works (env "+envConfirmTTL+"; default 168h)")
		case envConfirmLimit:
			fs.StringVar(&c.confirmLimit, "confirm-limit", "", "confirmation emails one address gets, N/PERIOD (env "+envConfirmLimit+"; default 3/24h)")
		case envSignupLimit:
			fs.StringVar(&c.signupLimit, "signup-limit", "", "forms that send email, per client IP: N/PERIOD, or off (env "+envSignupLimit+"; default 5/10m)")
		case envTrustedProxies:
			fs.StringVar(&c.trustedProxies, "trusted-proxies", "", "reverse proxies whose X-Forwarded-For is believed, addresses or prefixes separated by commas (env "+envTrustedProxies+")")
		case envSecret:
		default:
			panic("unknown configuration " + n)
		}
	}
	return c
}

// load fills empty values from the environment and checks every value the
// subcommand needs, saying which variable to fix.
func (c *config) load(log *slog.Logger) error {
	env := func(dst *string, name string) {
		if *dst == "" {
			*dst = strings.TrimSpace(os.Getenv(name))
		}
	}
	if c.need[envDatabaseURL] {
		env(&c.databaseURL, envDatabaseURL)
		if c.databaseURL == "" {
			return fmt.Errorf("%s is not set: set it to your PostgreSQL URL, like postgres://user:pass@localhost/newsletter?sslmode=disable", envDatabaseURL)
		}
		if u, err := url.Parse(c.databaseURL); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return fmt.Errorf("%s must be a postgres:// URL, like postgres://user:pass@localhost/newsletter?sslmode=disable", envDatabaseURL)
		}
	}
	if c.need[envSMTPURL] {
		env(&c.smtpURL, envSMTPURL)
		if c.smtpURL == "" {
			return fmt.Errorf("%s is not set: set it to your relay, like smtp://user:pass@smtp.example.com:587 (STARTTLS), smtps://... (implicit TLS) or smtp://localhost:1025?tls=none", envSMTPURL)
		}
		// Several relays, comma-separated, are tried in order: the first
		// is the primary, the others take over while it is down.
		for _, one := range strings.Split(c.smtpURL, ",") {
			s, err := smtpclient.ParseURL(strings.TrimSpace(one))
			if err != nil {
				return err // ParseURL names SMTP_URL and never the password
			}
			c.relays = append(c.relays, s)
		}
		c.smtp = c.relays[0]
	}
	if c.need[envFrom] {
		env(&c.from, envFrom)
		if c.from == "" {
			return fmt.Errorf("%s is not set: set it to the sender, like 'London Daily <newsletter@example.com>'", envFrom)
		}
		a, err := mail.ParseAddress(c.from)
		if err != nil || strings.ContainsAny(c.from, "\r\n") || !strings.Contains(a.Address, "@") {
			return fmt.Errorf("%s %q is not an address like 'London Daily <newsletter@example.com>'", envFrom, c.from)
		}
		c.fromAddr = a
		if err := c.loadDKIM(); err != nil {
			return err
		}
	}
	if c.need[envBaseURL] {
		env(&c.baseURL, envBaseURL)
		if c.baseURL == "" {
			return fmt.Errorf("%s is not set: set it to the public address of the reader pages, like https://news.example.com/newsletter", envBaseURL)
		}
		u, err := url.Parse(c.baseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("%s %q must be an absolute http(s) address without query, like https://news.example.com/newsletter", envBaseURL, c.baseURL)
		}
		c.baseURL = strings.TrimRight(c.baseURL, "/")
		if u.Scheme != "https" && !isLoopback(u.Hostname()) {
			log.Warn(envBaseURL + " is not HTTPS: mailbox providers expect one-click unsubscribe links over HTTPS (RFC 8058 section 3.2)")
		}
	}
	if c.need[envTZ] {
		env(&c.tz, envTZ)
		if c.tz == "" {
			c.tz = "UTC"
		}
		loc, err := time.LoadLocation(c.tz)
		if err != nil {
			return fmt.Errorf("%s %q is not a time zone: use a name like Europe/London or UTC", envTZ, c.tz)
		}
		c.location = loc
	}
	if c.need[envTemplates] {
		env(&c.templatesDir, envTemplates)
		if c.templatesDir != "" {
			if st, err := os.Stat(c.templatesDir); err != nil || !st.IsDir() {
				return fmt.Errorf("%s %q is not a folder: point it at a folder of templates that override the built-in ones, or unset it", envTemplates, c.templatesDir)
			}
		}
	}
	if c.need[envListen] {
		env(&c.listen, envListen)
		if c.listen == "" {
			c.listen = "127.0.0.1:8080"
		}
		if _, _, err := net.SplitHostPort(c.listen); err != nil {
			return fmt.Errorf("%s %q must be host:port, like 127.0.0.1:8080", envListen, c.listen)
		}
	}
	if c.need[envListID] {
		env(&c.listID, envListID)
		if strings.ContainsAny(c.listID, "\r\n") {
			return fmt.Errorf("%s must be one line", envListID)
		}
	}
	if c.need[envConfirmTTL] {
		env(&c.confirmTTL, envConfirmTTL)
		c.confirm.TTL = subscribers.DefaultConfirmTTL
		if c.confirmTTL != "" {
			d, err := time.ParseDuration(c.confirmTTL)
			if err != nil || d < time.Minute {
				return fmt.Errorf("%s %q must be a duration of a minute or more, like 168h (7 days)", envConfirmTTL, c.confirmTTL)
			}
			c.confirm.TTL = d
		}
	}
	if c.need[envConfirmLimit] {
		env(&c.confirmLimit, envConfirmLimit)
		if c.confirmLimit != "" {
			n, d, err := parseRate(c.confirmLimit)
			if err != nil || n < 1 {
				return fmt.Errorf("%s %q must be a count and a period, like 3/24h (at most 3 confirmation emails to one address a day)", envConfirmLimit, c.confirmLimit)
			}
			c.confirm.PerWindow, c.confirm.Window = n, d
		}
	}
	if c.need[envSignupLimit] {
		env(&c.signupLimit, envSignupLimit)
		switch c.signupLimit {
		case "":
			c.ipLimit = web.DefaultIPLimit
		case "off":
			c.ipLimit = web.RateLimit{Burst: -1}
		default:
			n, d, err := parseRate(c.signupLimit)
			if err != nil || n < 1 {
				return fmt.Errorf("%s %q must be a count and a period, like 5/10m (5 at once, 5 more every 10 minutes), or off", envSignupLimit, c.signupLimit)
			}
			c.ipLimit = web.RateLimit{Burst: n, Every: d / time.Duration(n)}
		}
	}
	if c.need[envTrustedProxies] {
		env(&c.trustedProxies, envTrustedProxies)
		p, err := web.ParsePrefixes(c.trustedProxies)
		if err != nil {
			return fmt.Errorf("%s: %v; list the proxies' addresses or prefixes separated by commas, like 127.0.0.1,10.0.0.0/8", envTrustedProxies, err)
		}
		c.proxies = p
	}
	if c.need[envSecret] {
		s := os.Getenv(envSecret)
		if s == "" {
			return fmt.Errorf("%s is not set: it keys the links in every email; generate one with `newsletter secret`, keep it, and never change it (changing it breaks the unsubscribe links already sent)", envSecret)
		}
		t, err := subscribers.NewTokens([]byte(s))
		if err != nil {
			return fmt.Errorf("%s: %w", envSecret, err)
		}
		c.tokens = t
	}
	return nil
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

// parseRate reads "N/PERIOD", like 3/24h.
func parseRate(s string) (int, time.Duration, error) {
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

// loadDKIM reads the DKIM key when NEWSLETTER_DKIM_KEY_FILE is set: every
// message, newsletter and confirmation alike, is then signed.
func (c *config) loadDKIM() error {
	file, selector, domain := os.Getenv(envDKIMKeyFile), os.Getenv(envDKIMSelector), os.Getenv(envDKIMDomain)
	if file == "" {
		if selector != "" || domain != "" {
			return fmt.Errorf("%s is set but %s is not: point it at the DKIM private key (PEM), or unset the DKIM settings", envDKIMSelector+"/"+envDKIMDomain, envDKIMKeyFile)
		}
		return nil
	}
	if selector == "" {
		return fmt.Errorf("%s is set but %s is not: set it to the selector whose public key is published at <selector>._domainkey.<domain>", envDKIMKeyFile, envDKIMSelector)
	}
	if domain == "" {
		domain = c.fromDomain()
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("%s: %w", envDKIMKeyFile, err)
	}
	d, err := mailer.NewDKIM(domain, selector, pem)
	if err != nil {
		return fmt.Errorf("%s %s: %w", envDKIMKeyFile, file, err)
	}
	c.dkim = d
	return nil
}
