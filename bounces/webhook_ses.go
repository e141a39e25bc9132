package bounces

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"
)

// SES reads Amazon SES's bounce and complaint notifications, which come
// through an SNS topic subscribed to the webhook's URL. Each SNS message is
// signed by the topic: the signature is checked against the certificate
// SNS names (fetched only from SNS's own HTTPS host), and the topic must be
// the one configured, before anything in it is believed.
type SES struct {
	// TopicArn is the SNS topic whose messages are accepted.
	TopicArn string
	// Client fetches signing certificates and confirms subscriptions; nil
	// is a client with a 10-second timeout.
	Client *http.Client
	// TrustedHost is the pattern of the hosts certificates and
	// subscription confirmations may come from; nil is SNS's:
	// sns.REGION.amazonaws.com.
	TrustedHost *regexp.Regexp

	mu    sync.Mutex
	certs map[string]*x509.Certificate
}

var snsHost = regexp.MustCompile(`^sns\.[a-z0-9-]+\.amazonaws\.com(\.cn)?$`)

// snsMessage is an SNS HTTP(S) message: a notification, or a subscription
// confirmation request.
type snsMessage struct {
	Type             string
	MessageId        string
	Token            string
	TopicArn         string
	Subject          *string // absent and empty differ in the string signed
	Message          string
	Timestamp        string
	SignatureVersion string
	Signature        string
	SigningCertURL   string
	SubscribeURL     string
}

func (s *SES) events(ctx context.Context, r *http.Request, body []byte) ([]hookEvent, error) {
	var m snsMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, fmt.Errorf("%w: not an SNS message: %v", errUnauthorized, err)
	}
	if m.TopicArn != s.TopicArn {
		return nil, fmt.Errorf("%w: topic %q is not NEWSLETTER_WEBHOOK_SES_TOPIC", errUnauthorized, m.TopicArn)
	}
	if err := s.verify(ctx, &m); err != nil {
		return nil, err
	}
	switch m.Type {
	case "SubscriptionConfirmation":
		return nil, s.confirm(ctx, m.SubscribeURL)
	case "Notification":
		return sesEvents(m.Message)
	}
	return nil, nil // UnsubscribeConfirmation: nothing to do
}

// canonical is the string SNS signs: the message's fields by name, in
// this order, each "Name\nvalue\n"; Subject only when the message has one.
func (m *snsMessage) canonical() (string, error) {
	var names []string
	switch m.Type {
	case "Notification":
		names = []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	case "SubscriptionConfirmation", "UnsubscribeConfirmation":
		names = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	default:
		return "", fmt.Errorf("%w: SNS message type %q", errUnauthorized, m.Type)
	}
	values := map[string]string{"Message": m.Message, "MessageId": m.MessageId, "SubscribeURL": m.SubscribeURL,
		"Timestamp": m.Timestamp, "Token": m.Token, "TopicArn": m.TopicArn, "Type": m.Type}
	var b strings.Builder
	for _, n := range names {
		v := values[n]
		if n == "Subject" {
			if m.Subject == nil {
				continue
			}
			v = *m.Subject
		}
		b.WriteString(n + "\n" + v + "\n")
	}
	return b.String(), nil
}

// verify checks an SNS message's signature: version 1 is RSA PKCS #1 v1.5
// over SHA-1 of the canonical string, version 2 over SHA-256.
func (s *SES) verify(ctx context.Context, m *snsMessage) error {
	var h crypto.Hash
	switch m.SignatureVersion {
	case "1":
		h = crypto.SHA1
	case "2":
		h = crypto.SHA256
	default:
		return fmt.Errorf("%w: SNS signature version %q", errUnauthorized, m.SignatureVersion)
	}
	sig, err := base64.StdEncoding.DecodeString(m.Signature)
	if err != nil || len(sig) == 0 {
		return fmt.Errorf("%w: SNS signature missing or not base64", errUnauthorized)
	}
	text, err := m.canonical()
	if err != nil {
		return err
	}
	cert, err := s.cert(ctx, m.SigningCertURL)
	if err != nil {
		return err
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("%w: the signing certificate's key is not RSA", errUnauthorized)
	}
	var sum []byte
	if h == crypto.SHA1 {
		d := sha1.Sum([]byte(text))
		sum = d[:]
	} else {
		d := sha256.Sum256([]byte(text))
		sum = d[:]
	}
	if err := rsa.VerifyPKCS1v15(pub, h, sum, sig); err != nil {
		return fmt.Errorf("%w: SNS signature does not verify", errUnauthorized)
	}
	return nil
}

// trusted checks that u is an HTTPS URL of SNS's host (or the pattern
// given).
func (s *SES) trusted(u string) (*url.URL, error) {
	p, err := url.Parse(u)
	host := s.TrustedHost
	if host == nil {
		host = snsHost
	}
	if err != nil || p.Scheme != "https" || p.User != nil || !host.MatchString(p.Host) {
		return nil, fmt.Errorf("%w: %q is not an HTTPS URL of SNS", errUnauthorized, u)
	}
	return p, nil
}

func (s *SES) client() *http.Client {
	if s.Client != nil {
		return s.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

// cert is the signing certificate at u, fetched once: SNS signs with one
// certificate for months.
func (s *SES) cert(ctx context.Context, u string) (*x509.Certificate, error) {
	p, err := s.trusted(u)
	if err != nil {
		return nil, err
	}
	if !strings.HasSuffix(p.Path, ".pem") {
		return nil, fmt.Errorf("%w: certificate URL %q does not name a .pem", errUnauthorized, u)
	}
	s.mu.Lock()
	c, ok := s.certs[u]
	s.mu.Unlock()
	if ok && time.Now().Before(c.NotAfter) {
		return c, nil
	}
	data, err := s.get(ctx, u)
	if err != nil {
		return nil, fmt.Errorf("fetch the SNS signing certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: the signing certificate is not PEM", errUnauthorized)
	}
	if c, err = x509.ParseCertificate(block.Bytes); err != nil {
		return nil, fmt.Errorf("%w: the signing certificate: %v", errUnauthorized, err)
	}
	if now := time.Now(); now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return nil, fmt.Errorf("%w: the signing certificate is expired or not yet valid", errUnauthorized)
	}
	s.mu.Lock()
	if s.certs == nil || len(s.certs) > 16 {
		s.certs = make(map[string]*x509.Certificate)
	}
	s.certs[u] = c
	s.mu.Unlock()
	return c, nil
}

// get fetches u, at most 64 KB of it.
func (s *SES) get(ctx context.Context, u string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	resp, err := s.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	return io.ReadAll(io.LimitReader(resp.Body, 64<<10))
}

// confirm confirms the subscription of the webhook to the topic by
// visiting SubscribeURL: only ever after the message's signature verified,
// and only at SNS's host.
func (s *SES) confirm(ctx context.Context, u string) error {
	if _, err := s.trusted(u); err != nil {
		return err
	}
	if _, err := s.get(ctx, u); err != nil {
		return fmt.Errorf("confirm the SNS subscription: %w", err)
	}
	return nil
}

// sesNotification is an SES bounce or complaint notification (or event,
// from a configuration set's event publishing: eventType for
// notificationType).
type sesNotification struct {
	NotificationType string `json:"notificationType"`
	EventType        string `json:"eventType"`
	Bounce           struct {
		BounceType        string `json:"bounceType"`
		BouncedRecipients []struct {
			EmailAddress   string `json:"emailAddress"`
			Status         string `json:"status"`
			DiagnosticCode string `json:"diagnosticCode"`
		} `json:"bouncedRecipients"`
	} `json:"bounce"`
	Complaint struct {
		ComplainedRecipients []struct {
			EmailAddress string `json:"emailAddress"`
		} `json:"complainedRecipients"`
		ComplaintFeedbackType string `json:"complaintFeedbackType"`
	} `json:"complaint"`
	Mail struct {
		Source        string `json:"source"`
		CommonHeaders struct {
			MessageID string `json:"messageId"`
		} `json:"commonHeaders"`
	} `json:"mail"`
}

// sesEvents reads the notification an SNS message carries.
func sesEvents(message string) ([]hookEvent, error) {
	var n sesNotification
	if err := json.Unmarshal([]byte(message), &n); err != nil {
		return nil, badPayload("SES notification: %v", err)
	}
	kind := n.NotificationType
	if kind == "" {
		kind = n.EventType
	}
	base := hookEvent{Sender: n.Mail.Source, MessageID: n.Mail.CommonHeaders.MessageID, Report: Report{Shape: "ses"}}
	var evs []hookEvent
	switch kind {
	case "Bounce":
		base.Kind = Soft // Transient, and Undetermined: SES could not tell
		if n.Bounce.BounceType == "Permanent" {
			base.Kind = Hard
		}
		for _, r := range n.Bounce.BouncedRecipients {
			ev := base
			ev.Recipient = r.EmailAddress
			ev.Status = bounceStatus(r.Status, r.DiagnosticCode, 0)
			ev.Diagnostic = diagnostic(r.DiagnosticCode)
			evs = append(evs, ev)
		}
	case "Complaint":
		base.Kind = Complaint
		if n.Complaint.ComplaintFeedbackType == "not-spam" {
			base.Kind = Ignored
		}
		base.Diagnostic = diagnostic("complaint " + n.Complaint.ComplaintFeedbackType)
		for _, r := range n.Complaint.ComplainedRecipients {
			ev := base
			ev.Recipient = r.EmailAddress
			evs = append(evs, ev)
		}
	default:
		return nil, nil // deliveries, opens and the like: not ours to act on
	}
	return evs, nil
}
