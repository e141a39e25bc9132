package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"text/tabwriter"
	"time"

	"newsletter/doctor"
	"newsletter/edition"
	"newsletter/mailer"
	"newsletter/newsroom"
	"newsletter/smtpclient"
	"newsletter/subscribers"
)

var doctorCommand = &command{
	usage: "doctor [--json]\n\nChecks the sending setup as mailbox providers judge it and says what to fix: SPF of the\n" +
		"envelope domain, the DKIM record of each signing key against the key, DMARC and From's alignment,\n" +
		"MX of the bounce domain, the relay's STARTTLS certificate, an HTTPS base URL, List-Unsubscribe and\n" +
		"List-Unsubscribe-Post in the mail as the send writes it, a From outside free mail. Each line names\n" +
		"its rule (RFC, or Gmail's and Yahoo's sender guidelines). Exits 1 when a check fails.\n" +
		"NEWSLETTER_DNS=host:port asks that DNS server instead of the system's.",
	needs: needTemplates,
	setup: func(fs *flag.FlagSet) runFunc {
		asJSON := fs.Bool("json", false, "the findings as a JSON array")
		return func(ctx context.Context, a *app, _ []string) error { return runDoctor(ctx, a, *asJSON) }
	},
}

// errChecksFailed is doctor's exit: the table said what failed.
var errChecksFailed = errors.New("some checks failed; fix what the table says")

func runDoctor(ctx context.Context, a *app, asJSON bool) error {
	setup, err := a.doctorSetup()
	if err != nil {
		return err
	}
	c := &doctor.Checker{TLS: a.cfg.smtp.TLSConfig}
	if a.cfg.dns != "" {
		c.Resolver = doctor.Resolver(a.cfg.dns)
	}
	fs := c.Run(ctx, setup)
	if asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(fs); err != nil {
			return err
		}
	} else {
		tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CHECK\tRESULT\tDETAIL\tRULE")
		for _, f := range fs {
			res := "pass"
			if !f.OK {
				res = "FAIL"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Check, res, f.Detail, f.Rule)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if doctor.Failed(fs) {
		return errChecksFailed
	}
	return nil
}

// doctorSetup is the configuration as the send uses it, with a message
// written by the bulk path for a made-up reader.
func (a *app) doctorSetup() (doctor.Setup, error) {
	c := a.cfg
	s := doctor.Setup{
		FromDomain: c.fromDomain(), EnvelopeDomain: c.returnDomain(), BaseURL: c.baseURL,
		SMTP: doctor.Relay{Host: c.smtp.Host, Port: c.smtp.Port,
			Implicit: c.smtp.TLS == smtpclient.TLSImplicit, NoTLS: c.smtp.TLS == smtpclient.TLSNone},
	}
	keys, err := c.doctorKeys()
	if err != nil {
		return s, err
	}
	s.DKIM = keys
	ed := &edition.Edition{Date: time.Now(), Site: edition.Site{Name: c.siteName},
		Lead: edition.Story{Title: "A sample story", Body: []edition.Block{{Kind: edition.Paragraph, Text: "A sample paragraph."}}}}
	if ed.Site.Name == "" {
		ed.Site.Name = "Newsletter"
	}
	// No secret is needed: the sample's unsubscribe link belongs to nobody.
	comp, err := a.composer(ed, &subscribers.Store{})
	if err != nil {
		return s, err
	}
	p, err := comp.Prepare()
	if err != nil {
		return s, fmt.Errorf("prepare a sample message: %w", err)
	}
	s.Message, err = p.AppendMessage(nil, mailer.Recipient{Name: newsroom.PreviewRecipient.Name, Email: newsroom.PreviewRecipient.Address,
		MessageID: "doctor@" + c.fromDomain(), UnsubscribeURL: c.baseURL + "/u/doctor", Date: time.Now()})
	if err != nil {
		return s, fmt.Errorf("write a sample message: %w", err)
	}
	return s, nil
}

// doctorKeys are the public halves of NEWSLETTER_DKIM_KEY_FILE's keys,
// each with its selector of NEWSLETTER_DKIM_SELECTOR.
func (c *config) doctorKeys() ([]doctor.Key, error) {
	if c.dkim == nil {
		return nil, nil
	}
	files, sels := splitList(c.dkimKeyFile), splitList(c.dkimSelector)
	var keys []doctor.Key
	for i, file := range files {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE: %w", err)
		}
		signer, err := mailer.ParseDKIMKey(data)
		if err != nil {
			return nil, fmt.Errorf("NEWSLETTER_DKIM_KEY_FILE %s: %w", file, err)
		}
		keys = append(keys, doctor.Key{Domain: c.dkim.Domain, Selector: sels[i], Public: signer.Public()})
	}
	return keys, nil
}
