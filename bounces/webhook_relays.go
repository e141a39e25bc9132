package bounces

import (
	"context"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Mailgun reads Mailgun's webhooks (failed and complained events), signed
// with the account's webhook signing key: HMAC-SHA256 of timestamp and
// token, hex. A timestamp more than maxWebhookAge from now, or a token
// seen already, is a replay and refused.
type Mailgun struct {
	Key []byte
	Now func() time.Time // nil: time.Now

	replays replays
}

type mailgunPayload struct {
	Signature struct {
		Timestamp string `json:"timestamp"`
		Token     string `json:"token"`
		Signature string `json:"signature"`
	} `json:"signature"`
	EventData struct {
		Event     string `json:"event"`
		Severity  string `json:"severity"`
		Recipient string `json:"recipient"`
		Envelope  struct {
			Sender string `json:"sender"`
		} `json:"envelope"`
		Message struct {
			Headers struct {
				MessageID string `json:"message-id"`
			} `json:"headers"`
		} `json:"message"`
		DeliveryStatus struct {
			Code        int    `json:"code"`
			Message     string `json:"message"`
			Description string `json:"description"`
		} `json:"delivery-status"`
	} `json:"event-data"`
}

func (m *Mailgun) events(_ context.Context, _ *http.Request, body []byte) ([]hookEvent, error) {
	var p mailgunPayload
	if err := json.Unmarshal(body, &p); err != nil {
		return nil, fmt.Errorf("%w: not a Mailgun webhook: %v", errUnauthorized, err)
	}
	s := p.Signature
	mac := hmac.New(sha256.New, m.Key)
	mac.Write([]byte(s.Timestamp + s.Token))
	got, err := hex.DecodeString(s.Signature)
	if err != nil || s.Token == "" || !hmac.Equal(got, mac.Sum(nil)) {
		return nil, fmt.Errorf("%w: Mailgun signature missing or wrong", errUnauthorized)
	}
	sec, err := strconv.ParseInt(s.Timestamp, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: Mailgun timestamp %q", errUnauthorized, s.Timestamp)
	}
	if err := m.replays.fresh(now(m.Now), time.Unix(sec, 0), "mailgun "+s.Token); err != nil {
		return nil, err
	}
	e := p.EventData
	ev := hookEvent{Sender: e.Envelope.Sender, MessageID: e.Message.Headers.MessageID, Recipient: e.Recipient, Report: Report{Shape: "mailgun"}}
	switch {
	case e.Event == "failed" && e.Severity == "permanent":
		ev.Kind = Hard
	case e.Event == "failed":
		ev.Kind = Soft
	case e.Event == "complained":
		ev.Kind = Complaint
	default:
		return nil, nil // delivered, opened and the rest
	}
	text := strings.TrimSpace(e.DeliveryStatus.Message + " " + e.DeliveryStatus.Description)
	ev.Status = bounceStatus("", text, e.DeliveryStatus.Code)
	ev.Diagnostic = diagnostic(text)
	return []hookEvent{ev}, nil
}

func now(f func() time.Time) time.Time {
	if f != nil {
		return f()
	}
	return time.Now()
}

// Postmark reads Postmark's bounce and spam complaint webhooks,
// authenticated by the HTTP basic auth credentials set in the webhook's
// URL on Postmark's side (RFC 7617), compared in constant time.
type Postmark struct {
	User, Password string
}

type postmarkPayload struct {
	RecordType  string
	Type        string
	Email       string
	Description string
	Details     string
	Content     string // the bounced message, when the webhook includes it
}

func (pm *Postmark) events(_ context.Context, r *http.Request, body []byte) ([]hookEvent, error) {
	user, pass, ok := r.BasicAuth()
	// Both compared whatever the first gives, so the time says nothing.
	u := subtle.ConstantTimeCompare([]byte(user), []byte(pm.User))
	p := subtle.ConstantTimeCompare([]byte(pass), []byte(pm.Password))
	if !ok || u&p != 1 {
		return nil, fmt.Errorf("%w: Postmark credentials missing or wrong", errUnauthorized)
	}
	var b postmarkPayload
	if err := json.Unmarshal(body, &b); err != nil {
		return nil, badPayload("Postmark webhook: %v", err)
	}
	ev := hookEvent{Recipient: b.Email, MessageID: headerValue(b.Content, "Message-ID"), Report: Report{Shape: "postmark"}}
	switch {
	case b.RecordType == "SpamComplaint" || b.Type == "SpamComplaint":
		ev.Kind = Complaint
	case b.RecordType != "Bounce":
		return nil, nil
	case b.Type == "HardBounce" || b.Type == "BadEmailAddress":
		ev.Kind = Hard
	case b.Type == "SoftBounce" || b.Type == "Transient" || b.Type == "DnsError":
		ev.Kind = Soft
	default:
		return nil, nil // auto-responders, blocks for content, and the rest: not the address's fault
	}
	text := strings.TrimSpace(b.Details)
	if text == "" {
		text = b.Description
	}
	ev.Status = bounceStatus("", text, 0)
	ev.Diagnostic = diagnostic(text)
	return []hookEvent{ev}, nil
}

// SendGrid reads SendGrid's signed event webhook (bounce, dropped and
// spamreport events): ECDSA P-256 over SHA-256 of the timestamp header
// and the body, with the verification key SendGrid shows.
type SendGrid struct {
	Key *ecdsa.PublicKey
	Now func() time.Time // nil: time.Now

	replays replays
}

// Headers of SendGrid's signed event webhook.
const (
	SendGridSignature = "X-Twilio-Email-Event-Webhook-Signature"
	SendGridTimestamp = "X-Twilio-Email-Event-Webhook-Timestamp"
)

// ParseSendGridKey reads SendGrid's verification key: base64 of the DER
// public key, as its settings page shows it, or the same in PEM.
func ParseSendGridKey(s string) (*ecdsa.PublicKey, error) {
	s = strings.TrimSpace(s)
	var der []byte
	if block, _ := pem.Decode([]byte(s)); block != nil {
		der = block.Bytes
	} else {
		var err error
		if der, err = base64.StdEncoding.DecodeString(s); err != nil {
			return nil, errors.New("want the verification key as base64 or PEM")
		}
	}
	k, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		return nil, fmt.Errorf("not a public key: %w", err)
	}
	pub, ok := k.(*ecdsa.PublicKey)
	if !ok {
		return nil, errors.New("not an ECDSA public key")
	}
	return pub, nil
}

type sendgridEvent struct {
	Email  string `json:"email"`
	Event  string `json:"event"`
	Type   string `json:"type"`
	SMTPID string `json:"smtp-id"`
	Status string `json:"status"`
	Reason string `json:"reason"`
}

func (sg *SendGrid) events(_ context.Context, r *http.Request, body []byte) ([]hookEvent, error) {
	ts := r.Header.Get(SendGridTimestamp)
	sig, err := base64.StdEncoding.DecodeString(r.Header.Get(SendGridSignature))
	sum := sha256.Sum256(append([]byte(ts), body...))
	if err != nil || ts == "" || !ecdsa.VerifyASN1(sg.Key, sum[:], sig) {
		return nil, fmt.Errorf("%w: SendGrid signature missing or wrong", errUnauthorized)
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%w: SendGrid timestamp %q", errUnauthorized, ts)
	}
	if err := sg.replays.fresh(now(sg.Now), time.Unix(sec, 0), "sendgrid "+string(sig)); err != nil {
		return nil, err
	}
	var list []sendgridEvent
	if err := json.Unmarshal(body, &list); err != nil {
		return nil, badPayload("SendGrid events: %v", err)
	}
	var evs []hookEvent
	for _, e := range list {
		ev := hookEvent{Recipient: e.Email, MessageID: e.SMTPID, Report: Report{Shape: "sendgrid",
			Status: bounceStatus(e.Status, e.Reason, 0), Diagnostic: diagnostic(e.Reason)}}
		ev.Kind = sendgridKind(e)
		evs = append(evs, ev)
	}
	return evs, nil
}

// sendgridKind is what a SendGrid event means for the address: a bounce
// (type blocked: refused for now, soft), a drop because the address
// bounced or complained before, a spam report.
func sendgridKind(e sendgridEvent) Kind {
	switch e.Event {
	case "bounce":
		if e.Type == "blocked" {
			return Soft
		}
		return Hard
	case "spamreport":
		return Complaint
	case "dropped":
		switch e.Reason {
		case "Bounced Address", "Invalid":
			return Hard
		case "Spam Reporting Address":
			return Complaint
		}
	}
	return Ignored
}
