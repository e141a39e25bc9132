package subscribers

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jmoiron/sqlx"
)

// Action is what a consent record says happened.
type Action string

const (
	ActionSignUp        Action = "signup"         // asked to join on the form; pending until confirmed
	ActionConfirm       Action = "confirm"        // pressed the confirmation link's button
	ActionUnsubscribe   Action = "unsubscribe"    // left
	ActionResubscribe   Action = "resubscribe"    // asked to come back; pending until confirmed
	ActionImport        Action = "import"         // added or updated by a list import
	ActionAdd           Action = "add"            // added by an editor (subscribers add)
	ActionAddressChange Action = "address_change" // confirmed a new address for the subscription
	ActionErase         Action = "erase"          // personal data removed on request (GDPR art. 17)
	ActionSuppress      Action = "suppress"       // put on the suppression list (by hand, a complaint, a bounce)
	ActionUnsuppress    Action = "unsuppress"     // taken off it; still not mailed until they confirm again
)

// Method is how a change was asked for.
type Method string

const (
	MethodForm      Method = "form"      // a reader page
	MethodOneClick  Method = "one-click" // the List-Unsubscribe link (RFC 8058), by a mailbox provider or the page's button
	MethodImport    Method = "import"    // subscribers import
	MethodEditor    Method = "editor"    // the command line, by someone running the list
	MethodMailto    Method = "mailto"    // a mail to the List-Unsubscribe mailto address (unsubscribe+TOKEN@)
	MethodBounce    Method = "bounce"    // a bounce, at send time or after (package bounces)
	MethodComplaint Method = "complaint" // a spam complaint, a feedback report (package bounces)
)

// Source is how and from where a request came, for the consent record:
// GDPR art. 7(1) wants the controller able to show that the person
// consented, so a sign-up keeps when, how, and the request's IP and user
// agent.
type Source struct {
	Method    Method
	IP        string // the client's address; empty when not over HTTP
	UserAgent string
}

// Consent is one entry of the consent record.
type Consent struct {
	ID           int64     `db:"id" json:"id"`
	SubscriberID *int64    `db:"subscriber_id" json:"subscriber_id"`
	Action       Action    `db:"action" json:"action"`
	Method       Method    `db:"method" json:"method"`
	Detail       string    `db:"detail" json:"detail,omitempty"`
	IP           *string   `db:"ip" json:"ip"`
	UserAgent    string    `db:"user_agent" json:"user_agent"`
	CreatedAt    time.Time `db:"created_at" json:"at"`
}

const insertConsent = `
INSERT INTO consents (subscriber_id, email_hash, action, method, detail, ip, user_agent)
VALUES ($1, $2, $3, $4, $5, $6, $7)`

// recordConsent adds an entry for the subscriber whose address is email.
func (s *Store) recordConsent(ctx context.Context, ex sqlx.ExecerContext, subscriberID int64, email string, a Action, src Source, detail string) error {
	_, err := ex.ExecContext(ctx, insertConsent, subscriberID, s.Tokens.AddressHash(email), a, src.Method, detail, ipParam(src.IP), cleanUserAgent(src.UserAgent))
	if err != nil {
		return fmt.Errorf("record %s consent for subscriber %d: %w", a, subscriberID, err)
	}
	return nil
}

// ipParam is the IP for an inet column: NULL when there is none or it
// doesn't parse (it came from the request's peer, never from the user).
func ipParam(ip string) any {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return nil
	}
	return a.Unmap().String()
}

// maxUserAgent bounds what is kept of a User-Agent header, as the column's
// CHECK does.
const maxUserAgent = 512

// cleanUserAgent makes a header value fit to keep: valid UTF-8, no control
// characters, at most maxUserAgent bytes cut at a character boundary.
func cleanUserAgent(ua string) string {
	ua = strings.ToValidUTF8(ua, "\uFFFD")
	ua = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, ua)
	ua = strings.TrimSpace(ua)
	if len(ua) > maxUserAgent {
		cut := maxUserAgent
		for cut > 0 && !utf8.RuneStart(ua[cut]) {
			cut--
		}
		ua = ua[:cut]
	}
	return ua
}

// Consents returns the subscriber's consent record, oldest first. Only
// tests call it today: it is kept for the editor's desk of issue 12, which
// shows a subscriber's consent history.
func (s *Store) Consents(ctx context.Context, subscriberID int64) ([]Consent, error) {
	var out []Consent
	err := s.DB.SelectContext(ctx, &out, `SELECT `+consentColumns+` FROM consents WHERE subscriber_id = $1 ORDER BY id`, subscriberID)
	if err != nil {
		return nil, fmt.Errorf("read consent record of subscriber %d: %w", subscriberID, err)
	}
	return out, nil
}

const consentColumns = `id, subscriber_id, action, method, detail, host(ip) AS ip, user_agent, created_at`
