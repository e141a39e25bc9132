package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"
)

// setting is one value of the configuration: a row of the table below, from
// which come the parsing (a flag given, else the environment variable, else
// the default), each subcommand's -h, the errors naming the variable, and
// the README's configuration table (TestREADMEConfigurationTable compares
// the two).
type setting struct {
	env  string // the environment variable
	flag string // the flag of the same meaning; none for the secret, which would show in `ps`
	def  string // the value when neither is given
	// required, when not empty, makes an unset value an error, and says
	// what to set it to.
	required string
	// secret values (passwords, keys) are never printed: not in -h, which
	// shows only the defaults, nor in errors, which parse keeps them out of.
	secret bool
	cmds   []string // the subcommands that read it, by full name ("subscribers add")
	help   string
	// parse checks the value and stores it in the config; its error names
	// the setting (name is the variable, or the flag and the variable when
	// the flag was given) and says what to fix.
	parse func(c *config, name, v string) error
}

// The subcommands that read each group of settings.
var (
	dbCmds = []string{"migrate", "subscribers import", "subscribers add", "subscribers list",
		"subscribers export", "subscribers erase", "edition import", "preview", "send", "worker", "status", "cancel", "serve",
		"deliveries prune", "suppression list", "suppression add", "suppression remove",
		"editors add", "editors list", "editors remove", "editors password", "editors token", "editors revoke", "audit",
		"schedule status", "schedule hold", "schedule release",
		"edition list", "edition show", "edition edit", "edition delete", "bounces serve", "bounces imap"}
	mailCmds   = []string{"preview", "send", "worker", "serve", "doctor"} // render an edition's or a confirmation's mail
	smtpCmds   = []string{"send", "worker", "serve", "doctor"}            // send mail; send and worker run a delivery worker, serve with --worker; doctor checks the relay
	secretCmds = []string{"subscribers import", "subscribers add", "subscribers export", "subscribers erase", "send", "worker", "serve",
		"suppression add", "suppression remove", "bounces serve", "bounces imap"} // keyed hashes of addresses
	todayCmds   = []string{"preview", "send", "status", "cancel", "worker", "serve", "schedule status", "edition import"} // decide what "today" is; the schedule's days
	serveCmds   = []string{"serve"}
	allCmds     = append(slices.Clone(dbCmds), "secret", "doctor")
	sendCmds    = []string{"send", "worker", "serve"} // start sends: send, and the schedule in worker and serve
	editionCmds = []string{"edition import"}
	// keep the history of deliveries (history.go)
	retentionCmds = []string{"worker", "serve", "deliveries prune"}
	// make or read the VERP envelope senders, act on bounces (bounces.go)
	bounceDomainCmds = []string{"send", "worker", "serve", "bounces serve", "bounces imap", "doctor"}
	bounceCmds       = []string{"bounces serve"}
)

// settings is every value the program reads from its environment. Adding a
// setting is a row here (and a field in config for its parsed value).
var settings = []setting{
	{env: "DATABASE_URL", flag: "database-url", secret: true, cmds: dbCmds,
		required: "set it to your PostgreSQL URL, like postgres://user:pass@localhost/newsletter?sslmode=disable",
		help:     "PostgreSQL URL, like postgres://user:pass@localhost/newsletter?sslmode=disable",
		parse:    parseDatabaseURL},
	{env: "SMTP_URL", flag: "smtp-url", secret: true, cmds: smtpCmds,
		required: "set it to your relay, like smtp://user:pass@smtp.example.com:587 (STARTTLS), smtps://... (implicit TLS) or smtp://localhost:1025?tls=none",
		help:     "the relay, smtp://user:pass@host:port?tls=starttls|tls|none&ca=FILE or smtps://...; several, comma-separated, are tried in order",
		parse:    parseRelays},
	{env: "NEWSLETTER_FROM", flag: "from", cmds: append(slices.Clone(mailCmds), "bounces serve", "bounces imap"),
		required: "set it to the sender, like 'London Daily <newsletter@example.com>'",
		help:     "the sender, like 'London Daily <newsletter@example.com>'; its domain ends every Message-ID",
		parse:    parseFrom},
	{env: "NEWSLETTER_BASE_URL", flag: "base-url", cmds: mailCmds,
		required: "set it to the public address of the reader pages, like https://news.example.com/newsletter",
		help:     "public address of the reader pages, used for every link in the email",
		parse:    parseBaseURL},
	{env: "NEWSLETTER_SECRET", secret: true, cmds: secretCmds,
		required: "it keys the links in every email; generate one with `newsletter secret`, keep it, and never change it (changing it breaks the unsubscribe links already sent)",
		help:     "at least 32 bytes that key the unsubscribe links; print one with: newsletter secret",
		parse:    parseSecret},
	{env: "NEWSLETTER_TZ", flag: "tz", def: "UTC", cmds: todayCmds,
		help:  "time zone that decides what today is, like Europe/London",
		parse: parseTZ},
	{env: "NEWSLETTER_TEMPLATES", flag: "templates", cmds: mailCmds,
		help:  "folder whose templates override the built-in ones",
		parse: parseTemplatesDir},
	{env: "NEWSLETTER_LIST_ID", flag: "list-id", cmds: mailCmds,
		help:  "List-Id header, like 'London Daily <daily.news.example.com>' (default: from the site name and NEWSLETTER_FROM)",
		parse: oneLineText(func(c *config) *string { return &c.listID })},
	{env: "NEWSLETTER_DKIM_KEY_FILE", flag: "dkim-key-file", cmds: mailCmds,
		help:  "the DKIM private key (PEM) that signs every message; two files, comma-separated (RSA and Ed25519), sign twice (RFC 8463); unset: mail goes unsigned",
		parse: oneLineText(func(c *config) *string { return &c.dkimKeyFile })},
	{env: "NEWSLETTER_DKIM_SELECTOR", flag: "dkim-selector", cmds: mailCmds,
		help:  "the DKIM selector, whose public key is published at <selector>._domainkey.<domain>; with two keys, two selectors, comma-separated, in the same order",
		parse: oneLineText(func(c *config) *string { return &c.dkimSelector })},
	{env: "NEWSLETTER_DKIM_DOMAIN", flag: "dkim-domain", cmds: mailCmds,
		help:  "the DKIM signing domain (default: NEWSLETTER_FROM's)",
		parse: oneLineText(func(c *config) *string { return &c.dkimDomain })},

	// The reader pages.
	{env: "NEWSLETTER_DNS", flag: "dns", cmds: []string{"doctor"},
		help:  "host:port of the DNS server doctor asks (default: the system's resolver)",
		parse: parseDNS},
	{env: "NEWSLETTER_LISTEN", flag: "listen", def: "127.0.0.1:8080", cmds: serveCmds,
		help:  "HTTP address to listen on",
		parse: parseListen},
	{env: "NEWSLETTER_SITE_NAME", flag: "site-name", cmds: serveCmds,
		help:  "the publication's name shown on the pages (default: the latest edition's)",
		parse: oneLineText(func(c *config) *string { return &c.siteName })},
	{env: "NEWSLETTER_CONFIRM_TTL", flag: "confirm-ttl", def: "168h", cmds: serveCmds,
		help:  "how long a confirmation link works",
		parse: parseConfirmTTL},
	{env: "NEWSLETTER_CONFIRM_LIMIT", flag: "confirm-limit", def: "3/24h", cmds: serveCmds,
		help:  "confirmation emails one address gets, N/PERIOD",
		parse: parseConfirmLimit},
	{env: "NEWSLETTER_SIGNUP_LIMIT", flag: "signup-limit", def: "5/10m", cmds: serveCmds,
		help:  "forms that send email, per client IP: N/PERIOD, or off",
		parse: parseSignupLimit},
	{env: "NEWSLETTER_TRUSTED_PROXIES", flag: "trusted-proxies", cmds: serveCmds,
		help:  "reverse proxies whose X-Forwarded-For is believed, addresses or prefixes separated by commas",
		parse: parseProxies},
	{env: "NEWSLETTER_SERVE_WORKER", flag: "worker", def: "false", cmds: serveCmds,
		help:  "also run a delivery worker in this process, like newsletter worker (true or 1)",
		parse: parseBool(func(c *config) *bool { return &c.serveWorker })},
	{env: "NEWSLETTER_METRICS_LISTEN", flag: "metrics-listen", cmds: []string{"worker", "serve"},
		help:  "HTTP address of /metrics (Prometheus) on its own; unset: serve has it on NEWSLETTER_LISTEN, worker has none",
		parse: parseMetricsListen},

	// The delivery worker (send, worker, serve --worker).
	{env: "NEWSLETTER_SMTP_CONNS", flag: "conns", def: "2", cmds: smtpCmds,
		help:  "SMTP connections in parallel",
		parse: intIn(1, 100, func(c *config) *int { return &c.conns })},
	{env: "NEWSLETTER_SMTP_MAX_MSGS", flag: "max-per-conn", def: "1000", cmds: smtpCmds,
		help:  "messages per SMTP connection before reconnecting; 0: no limit",
		parse: intIn(0, maxInt, func(c *config) *int { return &c.maxPerConn })},
	{env: "NEWSLETTER_MAX_ATTEMPTS", flag: "max-attempts", def: "5", cmds: smtpCmds,
		help:  "attempts before a temporary failure is final",
		parse: intIn(1, maxInt, func(c *config) *int { return &c.maxAttempts })},
	{env: "NEWSLETTER_RETRY_BASE", flag: "retry-base", def: "30s", cmds: smtpCmds,
		help:  "first retry delay, doubled per attempt",
		parse: durationFrom(time.Nanosecond, func(c *config) *time.Duration { return &c.retryBase })},
	{env: "NEWSLETTER_BATCH", flag: "batch", def: "200", cmds: smtpCmds,
		help:  "deliveries a worker leases at a time for its connections (at least 4 per connection)",
		parse: intIn(1, 10000, func(c *config) *int { return &c.batch })},
	{env: "NEWSLETTER_RATE", flag: "rate", def: "0", cmds: smtpCmds,
		help:  "messages per second for the whole fleet, shared among the live workers; 0: no limit",
		parse: parseRate},
	{env: "NEWSLETTER_DOMAIN_RATES", flag: "domain-rates", cmds: smtpCmds,
		help:  "messages per second per recipient domain for the whole fleet, like gmail.com=50,yahoo.com=20",
		parse: parseDomainRates},
	{env: "NEWSLETTER_ERROR_THRESHOLD", flag: "error-threshold", def: "100", cmds: smtpCmds,
		help:  "pause the send after this many temporary failures in a row; 0: never",
		parse: intIn(0, maxInt, func(c *config) *int { return &c.errorThreshold })},
	{env: "NEWSLETTER_BOUNCE_PAUSE", flag: "bounce-pause", def: "5%", cmds: smtpCmds,
		help:  "pause the send when more than this share of its first 1000 outcomes are hard bounces (a stale list); 0: never",
		parse: parseBouncePause},
	{env: "NEWSLETTER_LEASE_TTL", flag: "lease-ttl", def: "5m", cmds: smtpCmds,
		help:  "how long a worker holds leased deliveries; a stuck worker's are resent after it (a dead one's within seconds)",
		parse: durationFrom(time.Second, func(c *config) *time.Duration { return &c.leaseTTL })},
	{env: "NEWSLETTER_SEND_WINDOW", flag: "send-window", def: "12h", cmds: sendCmds,
		help:  "temporary failures are given up this long after the send started; 0: never",
		parse: durationFrom(0, func(c *config) *time.Duration { return &c.sendWindow })},

	// The built-in schedule (worker, serve --worker: schedule.go).
	{env: "NEWSLETTER_FEED_URL", flag: "feed-url", cmds: scheduleCmds,
		help:  "where the schedule imports the day's edition from: the site's feed or page (http or https), or a file; required with NEWSLETTER_SCHEDULE",
		parse: optional(parseFeedURL)},
	{env: "NEWSLETTER_SCHEDULE", flag: "schedule", cmds: scheduleCmds,
		help:  "send the day's digest on its own at this time of day (07:00) or cron expression (30 6 * * 1-5), in NEWSLETTER_TZ; unset: no schedule",
		parse: optional(parseSchedule)},
	{env: "NEWSLETTER_HOLD", flag: "hold", def: "0", cmds: scheduleCmds,
		help:  "how long a scheduled edition waits between its import and its send, for an editor to hold it (newsletter schedule hold DATE)",
		parse: durationFrom(0, func(c *config) *time.Duration { return &c.sched.hold })},
	{env: "NEWSLETTER_CATCHUP", flag: "catchup", def: "6h", cmds: scheduleCmds,
		help:  "how late a scheduled run may still start (no process was up, the feed kept failing); older runs are recorded missed or failed, not sent",
		parse: durationFrom(time.Minute, func(c *config) *time.Duration { return &c.sched.catchUp })},
	{env: "NEWSLETTER_ALERT_TO", flag: "alert-to", cmds: scheduleCmds,
		help:  "an address told by email when a scheduled digest fails or is missed",
		parse: optional(parseAlertTo)},
	// Bounces and complaints (bounces.go).
	{env: "NEWSLETTER_BOUNCE_DOMAIN", flag: "bounce-domain", cmds: bounceDomainCmds,
		help:  "the domain of the envelope senders (bounces+TOKEN@) and mailto unsubscribes, where bounces come back: bounces serve is its MX (default: NEWSLETTER_FROM's)",
		parse: parseBounceDomain},
	{env: "NEWSLETTER_SOFT_BOUNCES", flag: "soft-bounces", def: "3/30d", cmds: bounceDomainCmds,
		help:  "soft bounces (of different deliveries) that mark a subscriber bounced: N/PERIOD (30d, 720h)",
		parse: parseSoftBounces},
	{env: "NEWSLETTER_BOUNCE_LISTEN", flag: "bounce-listen", def: "127.0.0.1:2525", cmds: bounceCmds,
		help:  "SMTP address bounces serve listens on",
		parse: parseBounceListen},
	{env: "NEWSLETTER_BOUNCE_TLS_CERT", flag: "tls-cert", cmds: bounceCmds,
		help:  "certificate (PEM) bounces serve offers STARTTLS with; unset: no STARTTLS",
		parse: oneLineText(func(c *config) *string { return &c.bounceCert })},
	{env: "NEWSLETTER_BOUNCE_TLS_KEY", flag: "tls-key", cmds: bounceCmds,
		help:  "the private key (PEM) of NEWSLETTER_BOUNCE_TLS_CERT",
		parse: oneLineText(func(c *config) *string { return &c.bounceKey })},
	{env: "NEWSLETTER_BOUNCE_IMAP", secret: true, cmds: []string{"bounces imap"},
		required: "set it to the mailbox bounces land in, like imaps://bounces%40example.com:PASSWORD@imap.example.com:993/INBOX",
		help:     "the mailbox bounces imap reads: imaps://user:pass@host:993/INBOX[?processed=FOLDER&failed=FOLDER]",
		parse:    parseBounceIMAP},
	{env: "NEWSLETTER_BOUNCE_IMAP_INTERVAL", flag: "interval", def: "1m", cmds: []string{"bounces imap"},
		help:  "how often bounces imap looks for new messages",
		parse: durationFrom(time.Second, func(c *config) *time.Duration { return &c.hooks.imapInterval })},
	{env: "NEWSLETTER_WEBHOOK_SES_TOPIC", flag: "webhook-ses-topic", cmds: serveCmds,
		help:  "the SNS topic (ARN) whose SES bounce and complaint notifications POST /webhooks/ses accepts; unset: 404",
		parse: parseSESTopic},
	{env: "NEWSLETTER_WEBHOOK_POSTMARK_AUTH", secret: true, cmds: serveCmds,
		help:  "user:password Postmark's bounce and spam complaint webhooks give (basic auth) at POST /webhooks/postmark; unset: 404",
		parse: parsePostmarkAuth},
	{env: "NEWSLETTER_WEBHOOK_MAILGUN_KEY", secret: true, cmds: serveCmds,
		help:  "Mailgun's webhook signing key, checking POST /webhooks/mailgun; unset: 404",
		parse: parseMailgunKey},
	{env: "NEWSLETTER_WEBHOOK_SENDGRID_KEY", flag: "webhook-sendgrid-key", cmds: serveCmds,
		help:  "SendGrid's signed event webhook verification key (base64 or PEM), checking POST /webhooks/sendgrid; unset: 404",
		parse: parseSendGridKey},

	{env: "NEWSLETTER_RETENTION", flag: "retention", def: "13mo", cmds: retentionCmds,
		help:  "how long deliveries are kept after their send started (13mo, 400d; 0: forever); an edition's counts and failures stay",
		parse: parseRetention},
	{env: "NEWSLETTER_SITE_URL", flag: "site-url", cmds: editionCmds,
		help:  "the site's address, for story links the source does not give",
		parse: oneLineText(func(c *config) *string { return &c.siteURL })},
	{env: "NEWSLETTER_LOG_LEVEL", flag: "log-level", def: "info", cmds: allCmds,
		help:  "debug, info, warn or error",
		parse: parseLogLevel},
	{env: "NEWSLETTER_LOG_FORMAT", flag: "log-format", def: "text", cmds: allCmds,
		help:  "text, or json (one object a line, for log collectors)",
		parse: parseLogFormat},
}

// settingsFor is the table's rows that cmd reads, in table order.
func settingsFor(cmd string) []*setting {
	var out []*setting
	for i := range settings {
		if slices.Contains(settings[i].cmds, cmd) {
			out = append(out, &settings[i])
		}
	}
	return out
}

// flagValues records the setting flags given on the command line.
type flagValues map[string]string // by variable

// registerSettings adds the flags of cmd's settings to fs. Their defaults
// are not flag defaults: a flag not given leaves the variable to decide.
func registerSettings(fs *flag.FlagSet, cmd string) flagValues {
	given := flagValues{}
	for _, s := range settingsFor(cmd) {
		if s.flag == "" {
			continue
		}
		set := func(v string) error { given[s.env] = v; return nil }
		if s.def == "false" {
			fs.BoolFunc(s.flag, s.help, set)
		} else {
			fs.Func(s.flag, s.help, set)
		}
	}
	return given
}

// loadSettings reads every setting cmd reads: the flag if given, else the
// environment variable if not empty, else the default. The first bad value
// is the error.
func loadSettings(cmd string, given flagValues) (*config, error) {
	c := &config{}
	for _, s := range settingsFor(cmd) {
		name, v := s.env, os.Getenv(s.env)
		if fv, ok := given[s.env]; ok {
			name, v = "--"+s.flag+" ("+s.env+")", fv
		}
		if strings.TrimSpace(v) == "" {
			v = s.def
		}
		if strings.TrimSpace(v) == "" && s.required != "" {
			return nil, fmt.Errorf("%s is not set: %s", name, s.required)
		}
		if err := s.parse(c, name, v); err != nil {
			if !strings.Contains(err.Error(), s.env) {
				err = fmt.Errorf("%s: %w", name, err)
			}
			return nil, err
		}
	}
	if err := c.finish(); err != nil {
		return nil, err
	}
	return c, nil
}

// printSettings is the settings part of cmd's -h: each flag with its
// variable and default. It never prints a value taken from the environment.
func printSettings(w io.Writer, cmd string) {
	list := settingsFor(cmd)
	if len(list) == 0 {
		return
	}
	fmt.Fprintln(w, "\nSettings (a flag given wins over its environment variable, which wins over the default):")
	for _, s := range list {
		var b strings.Builder
		b.WriteString("  ")
		if s.flag != "" {
			b.WriteString("--" + s.flag + ", ")
		}
		b.WriteString(s.env)
		var notes []string
		switch {
		case s.required != "":
			notes = append(notes, "required")
		case s.def != "":
			notes = append(notes, "default "+s.def)
		}
		if s.flag == "" {
			notes = append(notes, "no flag: a flag would show it in ps")
		}
		if len(notes) > 0 {
			b.WriteString(" (" + strings.Join(notes, "; ") + ")")
		}
		fmt.Fprintf(w, "%s\n        %s\n", b.String(), s.help)
	}
}
