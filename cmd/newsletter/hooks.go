package main

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"strings"
	"time"

	"newsletter/bounces"
)

// hookConfig is the settings of the two other ways bounces come back: an
// IMAP mailbox polled, and the relays' webhooks on serve's listener.
type hookConfig struct {
	imap         *bounces.IMAPMailbox // nil: not set
	imapInterval time.Duration
	sesTopic     string
	postmark     *bounces.Postmark
	mailgunKey   string
	sendgrid     *bounces.SendGrid
}

var bouncesIMAP = &command{
	usage: "bounces imap\n\nPolls the mailbox NEWSLETTER_BOUNCE_IMAP names (imaps://user:pass@host:993/INBOX) every\n" +
		"NEWSLETTER_BOUNCE_IMAP_INTERVAL, for newsrooms whose bounces land in an ordinary inbox: each unseen\n" +
		"message sent to a VERP (bounces+TOKEN@) or unsubscribe (unsubscribe+TOKEN@) address is acted on as\n" +
		"bounces serve would, then moved to the folder ?processed= names (default newsletter/processed), or\n" +
		"to ?failed= (default newsletter/unhandled) when it can't be handled. Stops gracefully on SIGINT or SIGTERM.",
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc { return pollIMAP },
}

func pollIMAP(ctx context.Context, a *app, _ []string) error {
	m := a.cfg.hooks.imap
	p := &bounces.IMAPPoller{Mailbox: *m, Handler: a.bounceHandler(), Log: a.log}
	a.log.Info("polling for bounces", "imap", m.Addr, "user", m.User, "folder", m.Folder,
		"every", a.cfg.hooks.imapInterval, "domain", a.cfg.returnDomain())
	err := p.Run(ctx, a.cfg.hooks.imapInterval)
	a.log.Info("IMAP poller stopped")
	return err
}

// withWebhooks serves POST /webhooks/{provider} beside h, for the
// providers configured; the others answer 404.
func (a *app) withWebhooks(h http.Handler) http.Handler {
	c := a.cfg.hooks
	w := &bounces.Webhooks{Handler: a.bounceHandler(), Postmark: c.postmark, SendGrid: c.sendgrid}
	if c.sesTopic != "" {
		w.SES = &bounces.SES{TopicArn: c.sesTopic}
	}
	if c.mailgunKey != "" {
		w.Mailgun = &bounces.Mailgun{Key: []byte(c.mailgunKey)}
	}
	if !w.Any() {
		return h
	}
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{provider}", w)
	mux.Handle("/", h)
	return mux
}

func parseBounceIMAP(c *config, name, v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	m, err := bounces.ParseIMAPURL(strings.TrimSpace(v))
	if err != nil {
		// The URL holds a password: the error says what is wrong, never it.
		return fmt.Errorf("%s: %w", name, err)
	}
	c.hooks.imap = &m
	return nil
}

func parseSESTopic(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if v != "" && (!strings.HasPrefix(v, "arn:aws") || strings.Count(v, ":") != 5) {
		return fmt.Errorf("%s must be an SNS topic ARN, like arn:aws:sns:eu-west-1:123456789012:bounces", name)
	}
	c.hooks.sesTopic = v
	return nil
}

func parsePostmarkAuth(c *config, name, v string) error {
	if v == "" {
		return nil
	}
	user, pass, ok := strings.Cut(v, ":")
	if !ok || user == "" || len(pass) < 16 {
		return fmt.Errorf("%s must be user:password, the password at least 16 characters (the credentials set in Postmark's webhook URL)", name)
	}
	c.hooks.postmark = &bounces.Postmark{User: user, Password: pass}
	return nil
}

func parseMailgunKey(c *config, name, v string) error {
	v = strings.TrimSpace(v)
	if v != "" && len(v) < 16 {
		return fmt.Errorf("%s must be Mailgun's HTTP webhook signing key", name)
	}
	c.hooks.mailgunKey = v
	return nil
}

func parseSendGridKey(c *config, name, v string) error {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	k, err := bounces.ParseSendGridKey(v)
	if err != nil {
		return fmt.Errorf("%s: SendGrid's event webhook verification key: %w", name, err)
	}
	c.hooks.sendgrid = &bounces.SendGrid{Key: k}
	return nil
}
