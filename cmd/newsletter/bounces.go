package main

import (
	"context"
	"crypto/tls"
	"flag"
	"fmt"
	"net"
	"strings"

	"newsletter/bounces"
	"newsletter/subscribers"
)

var bouncesServe = &command{
	usage: "bounces serve\n\nAnswers SMTP on NEWSLETTER_BOUNCE_LISTEN as the MX of NEWSLETTER_BOUNCE_DOMAIN: takes mail for\n" +
		"bounces+TOKEN@ (each delivery's envelope sender) and unsubscribe+TOKEN@ (the List-Unsubscribe\n" +
		"mailto) only, never relays, and acts on delivery status notifications, complaint reports and\n" +
		"mailto unsubscribes by the policy (NEWSLETTER_SOFT_BOUNCES); auto-replies are ignored. Stops\n" +
		"gracefully on SIGINT or SIGTERM.",
	needs: needDB,
	setup: func(*flag.FlagSet) runFunc { return serveBounces },
}

func serveBounces(ctx context.Context, a *app, _ []string) error {
	c := a.cfg
	srv := &bounces.Server{Handler: a.bounceHandler(), Log: a.log}
	if c.bounceCert != "" || c.bounceKey != "" {
		cert, err := tls.LoadX509KeyPair(c.bounceCert, c.bounceKey)
		if err != nil {
			return fmt.Errorf("NEWSLETTER_BOUNCE_TLS_CERT/NEWSLETTER_BOUNCE_TLS_KEY: %w", err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	ln, err := net.Listen("tcp", c.bounceListen)
	if err != nil {
		return fmt.Errorf("listen on %s (NEWSLETTER_BOUNCE_LISTEN): %w", c.bounceListen, err)
	}
	a.log.Info("listening for bounces", "addr", ln.Addr().String(), "domain", c.returnDomain(), "starttls", srv.TLS != nil)
	err = srv.Serve(ctx, ln)
	a.log.Info("bounce listener stopped")
	return err
}

// verp makes the envelope senders of an edition's messages, and reads them
// back in bounces serve: bounces+TOKEN@ the bounce domain.
func (c *config) verp() *bounces.VERP {
	return bounces.NewVERP(c.tokens.Derive("verp"), c.returnDomain())
}

// bounceHandler acts on bounces by the policy the settings give, whichever
// way they come back.
func (a *app) bounceHandler() *bounces.Handler {
	return &bounces.Handler{DB: a.db, Subs: &subscribers.Store{DB: a.db, Tokens: a.cfg.tokens},
		VERP: a.cfg.verp(), Soft: a.cfg.softBounces, Log: a.log}
}

// returnDomain is the bounce domain: NEWSLETTER_BOUNCE_DOMAIN, or the
// From address's.
func (c *config) returnDomain() string {
	if c.bounceDomain != "" {
		return c.bounceDomain
	}
	return c.fromDomain()
}

func parseBounceDomain(c *config, name, v string) error {
	v = strings.ToLower(strings.TrimSpace(v))
	if v == "" {
		return nil
	}
	if strings.ContainsAny(v, "@ \t\r\n<>") || !strings.Contains(v, ".") || strings.HasPrefix(v, ".") || strings.HasSuffix(v, ".") {
		return fmt.Errorf("%s must be a domain name, like bounces.example.com", name)
	}
	c.bounceDomain = v
	return nil
}

func parseBounceListen(c *config, name, v string) error {
	if _, _, err := net.SplitHostPort(v); err != nil {
		return fmt.Errorf("%s must be host:port, like 127.0.0.1:2525 or :25: %v", name, err)
	}
	c.bounceListen = v
	return nil
}

func parseSoftBounces(c *config, name, v string) error {
	p, err := bounces.ParseSoftPolicy(v)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	c.softBounces = p
	return nil
}
