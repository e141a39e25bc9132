package doctor

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"regexp"
	"strings"
)

const (
	ruleSPF      = "RFC 7208; Gmail/Yahoo sender guidelines: SPF for the sending domain"
	ruleDKIM     = "RFC 6376 section 3.6; Gmail/Yahoo sender guidelines: DKIM-sign bulk mail"
	ruleDMARC    = "RFC 7489 section 6.3; Gmail/Yahoo sender guidelines: a DMARC policy for bulk senders"
	ruleAlignDK  = "RFC 7489 section 3.1.1; Gmail sender guidelines: From aligned with DKIM or SPF"
	ruleAlignSPF = "RFC 7489 section 3.1.2; Gmail sender guidelines: From aligned with DKIM or SPF"
	ruleMX       = "RFC 5321 section 5.1: bounces reach the envelope domain through its MX"
)

// spfTerm is one term of an SPF record (RFC 7208 section 12's grammar,
// loosely: the mechanisms with their optional argument, or a modifier).
var spfTerm = regexp.MustCompile(`^(?i:[+\-~?]?(?:all|include:\S+|a(?::\S+)?(?:/\d+)?|mx(?::\S+)?(?:/\d+)?|ptr(?::\S+)?|ip4:[0-9./]+|ip6:[0-9a-f:./]+|exists:\S+)|[a-z][a-z0-9_.\-]*=\S*)$`)

func (c *Checker) spf(ctx context.Context, domain string) Finding {
	const check = "spf"
	recs, err := c.txt(ctx, domain)
	if err != nil {
		return fail(check, ruleSPF, fmt.Sprintf("looking up TXT %s: %v", domain, err))
	}
	spf := withPrefix(recs, "v=spf1")
	switch len(spf) {
	case 0:
		return fail(check, ruleSPF, fmt.Sprintf("%s has no SPF record: publish a TXT record such as \"v=spf1 include:<your relay's SPF> -all\"", domain))
	case 1:
	default:
		// RFC 7208 section 4.5: more than one record is a permanent error.
		return fail(check, ruleSPF+" (section 4.5)", fmt.Sprintf("%s has %d SPF records; receivers treat that as an error (permerror): merge them into one", domain, len(spf)))
	}
	terms := strings.Fields(spf[0])[1:]
	for _, t := range terms {
		if !spfTerm.MatchString(t) {
			return fail(check, ruleSPF+" (section 12)", fmt.Sprintf("%s's SPF record %q has a term receivers can't read: %q", domain, spf[0], t))
		}
		if strings.EqualFold(t, "+all") || strings.EqualFold(t, "all") {
			return fail(check, ruleSPF+" (section 5.1)", fmt.Sprintf("%s's SPF record ends in %q, which lets anyone send as the domain: end it with -all or ~all", domain, t))
		}
	}
	return pass(check, ruleSPF, fmt.Sprintf("%s: %s", domain, spf[0]))
}

func (c *Checker) dkim(ctx context.Context, keys []Key) []Finding {
	const check = "dkim"
	if len(keys) == 0 {
		return []Finding{fail(check, ruleDKIM, "the newsletter signs nothing: create a key with `newsletter dkim keygen` and set NEWSLETTER_DKIM_KEY_FILE (unless your relay signs with your From domain)")}
	}
	var out []Finding
	for _, k := range keys {
		name := k.Selector + "._domainkey." + k.Domain
		recs, err := c.txt(ctx, name)
		if err != nil {
			out = append(out, fail(check, ruleDKIM, fmt.Sprintf("looking up TXT %s: %v", name, err)))
			continue
		}
		out = append(out, matchKey(name, recs, k))
	}
	return out
}

// matchKey finds the published key of name among its TXT records and
// compares it with the signing key (RFC 6376 section 3.6.1's tags; RFC 8463
// section 4.2 for Ed25519's bare 32-byte p=).
func matchKey(name string, recs []string, k Key) Finding {
	const check = "dkim"
	if len(recs) == 0 {
		return fail(check, ruleDKIM, fmt.Sprintf("no DKIM record at %s: publish the TXT record `newsletter dkim keygen` printed", name))
	}
	if len(recs) > 1 {
		return fail(check, ruleDKIM, fmt.Sprintf("%d TXT records at %s: verifiers need exactly one", len(recs), name))
	}
	tags := map[string]string{}
	for _, part := range strings.Split(recs[0], ";") {
		if n, v, ok := strings.Cut(part, "="); ok {
			tags[strings.TrimSpace(n)] = strings.Join(strings.Fields(v), "")
		}
	}
	if v, ok := tags["v"]; ok && v != "DKIM1" {
		return fail(check, ruleDKIM, fmt.Sprintf("%s: v=%s, want DKIM1", name, v))
	}
	p := tags["p"]
	if p == "" {
		return fail(check, ruleDKIM, fmt.Sprintf("%s: no public key (p= empty: the key was revoked)", name))
	}
	der, err := base64.StdEncoding.DecodeString(p)
	if err != nil {
		return fail(check, ruleDKIM, fmt.Sprintf("%s: p= is not base64: %v", name, err))
	}
	kt := tags["k"]
	if kt == "" {
		kt = "rsa"
	}
	var same bool
	switch pub := k.Public.(type) {
	case *rsa.PublicKey:
		got, err := x509.ParsePKIXPublicKey(der)
		r, ok := got.(*rsa.PublicKey)
		same = err == nil && ok && kt == "rsa" && r.Equal(pub)
	case ed25519.PublicKey:
		same = kt == "ed25519" && bytes.Equal(der, pub)
	default:
		return fail(check, ruleDKIM, fmt.Sprintf("%s: a signing key of type %T", name, k.Public))
	}
	if !same {
		return fail(check, ruleDKIM, fmt.Sprintf("%s publishes a key (k=%s) that is not the one in NEWSLETTER_DKIM_KEY_FILE: every signature will fail; publish the record `newsletter dkim keygen` printed for this key", name, kt))
	}
	return pass(check, ruleDKIM, fmt.Sprintf("%s publishes the signing key (k=%s)", name, kt))
}

// dmarc looks for the DMARC record of the From domain, then of its
// organizational domain (approximated as its last two labels; RFC 7489
// section 6.6.3 uses the public suffix list).
func (c *Checker) dmarc(ctx context.Context, domain string) Finding {
	const check = "dmarc"
	for _, d := range []string{domain, orgDomain(domain)} {
		recs, err := c.txt(ctx, "_dmarc."+d)
		if err != nil {
			return fail(check, ruleDMARC, fmt.Sprintf("looking up TXT _dmarc.%s: %v", d, err))
		}
		dm := withPrefix(recs, "v=DMARC1")
		if len(dm) == 0 {
			if d == orgDomain(domain) {
				break
			}
			continue
		}
		if len(dm) > 1 {
			return fail(check, ruleDMARC, fmt.Sprintf("_dmarc.%s has %d DMARC records; receivers ignore them all", d, len(dm)))
		}
		policy := ""
		for _, part := range strings.Split(dm[0], ";") {
			if n, v, ok := strings.Cut(part, "="); ok && strings.TrimSpace(n) == "p" {
				policy = strings.ToLower(strings.TrimSpace(v))
			}
		}
		switch policy {
		case "none", "quarantine", "reject":
			return pass(check, ruleDMARC, fmt.Sprintf("_dmarc.%s: p=%s", d, policy))
		}
		return fail(check, ruleDMARC, fmt.Sprintf("_dmarc.%s has no valid policy (p=none, quarantine or reject): %q", d, dm[0]))
	}
	return fail(check, ruleDMARC, fmt.Sprintf("%s has no DMARC record: publish TXT _dmarc.%s \"v=DMARC1; p=none; rua=mailto:...\" at least", domain, orgDomain(domain)))
}

func orgDomain(d string) string {
	labels := strings.Split(strings.TrimSuffix(d, "."), ".")
	if len(labels) <= 2 {
		return d
	}
	return strings.Join(labels[len(labels)-2:], ".")
}

// aligned is DMARC's relaxed alignment: the same organizational domain.
func aligned(a, b string) bool {
	return a != "" && b != "" && strings.EqualFold(orgDomain(a), orgDomain(b))
}

func alignment(s Setup) []Finding {
	var out []Finding
	dk := fail("dkim-alignment", ruleAlignDK, fmt.Sprintf("no DKIM key signs for %s (DKIM d= must share its organizational domain)", s.FromDomain))
	for _, k := range s.DKIM {
		if aligned(k.Domain, s.FromDomain) {
			dk = pass("dkim-alignment", ruleAlignDK, fmt.Sprintf("d=%s aligned with From's %s", k.Domain, s.FromDomain))
			break
		}
	}
	out = append(out, dk)
	if aligned(s.EnvelopeDomain, s.FromDomain) {
		out = append(out, pass("spf-alignment", ruleAlignSPF, fmt.Sprintf("envelope %s aligned with From's %s", s.EnvelopeDomain, s.FromDomain)))
	} else {
		out = append(out, fail("spf-alignment", ruleAlignSPF, fmt.Sprintf("envelope domain %s is not From's %s: SPF can't pass DMARC for it (set the bounce domain under %s)", s.EnvelopeDomain, s.FromDomain, orgDomain(s.FromDomain))))
	}
	return out
}

func (c *Checker) mx(ctx context.Context, domain string) Finding {
	const check = "mx"
	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	mxs, err := c.Resolver.LookupMX(ctx, domain)
	if err != nil && !isNotFound(err) {
		return fail(check, ruleMX, fmt.Sprintf("looking up MX %s: %v", domain, err))
	}
	if len(mxs) == 0 {
		return fail(check, ruleMX, fmt.Sprintf("%s has no MX record: bounces and complaints can't come back; point its MX at the host running `newsletter bounces serve`", domain))
	}
	if len(mxs) == 1 && (mxs[0].Host == "." || mxs[0].Host == "") {
		// RFC 7505: a null MX says the domain accepts no mail.
		return fail(check, ruleMX+"; RFC 7505", fmt.Sprintf("%s has a null MX: it accepts no mail, so bounces are lost", domain))
	}
	return pass(check, ruleMX, fmt.Sprintf("%s: MX %s", domain, strings.TrimSuffix(mxs[0].Host, ".")))
}
