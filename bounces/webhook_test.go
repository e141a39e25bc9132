package bounces_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"newsletter/bounces"
)

// hooks serves the webhooks as serve does, on a test server.
func (f *fixture) hooks(t *testing.T, w *bounces.Webhooks) string {
	t.Helper()
	w.Handler = f.h
	mux := http.NewServeMux()
	mux.Handle("POST /webhooks/{provider}", w)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL + "/webhooks/"
}

// post sends body to url with the headers given and returns the status.
func post(t *testing.T, url string, body []byte, header http.Header) int {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// messageID is the Message-ID the send gave reader i's delivery.
func (f *fixture) messageID(t *testing.T, i int) string {
	t.Helper()
	var id string
	if err := f.db.Get(&id, `SELECT s.uuid::text || '.' || d.edition_id || '@' || e.message_id_domain
		FROM deliveries d JOIN subscribers s ON s.id = d.subscriber_id JOIN editions e ON e.id = d.edition_id
		WHERE d.id = $1`, f.delivery(t, i)); err != nil {
		t.Fatal(err)
	}
	return "<" + id + ">"
}

// snsFixture is SNS as the tests see it: a topic's signing key, its
// certificate served over HTTPS by a host the SES webhook is told to
// trust, and the subscription confirmation URL, counting its visits.
type snsFixture struct {
	key       *rsa.PrivateKey
	certURL   string
	confirm   string
	confirmed atomic.Int32
	ses       *bounces.SES
}

const topic = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"

func newSNS(t *testing.T) *snsFixture {
	t.Helper()
	ca := newTestCA(t)
	tlsCert, _ := ca.leaf(t, "127.0.0.1")
	// The signing certificate: a second leaf, whose key signs the messages.
	signTLS, key := ca.leaf(t, "sns.eu-west-1.amazonaws.com")
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: signTLS.Certificate[0]})
	s := &snsFixture{key: key}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /SimpleNotificationService-test.pem", func(w http.ResponseWriter, _ *http.Request) { w.Write(certPEM) })
	mux.HandleFunc("GET /confirm", func(w http.ResponseWriter, _ *http.Request) { s.confirmed.Add(1) })
	srv := httptest.NewUnstartedServer(mux)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{tlsCert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	s.certURL = srv.URL + "/SimpleNotificationService-test.pem"
	s.confirm = srv.URL + "/confirm?Action=ConfirmSubscription&Token=abc"
	host := strings.TrimPrefix(srv.URL, "https://")
	s.ses = &bounces.SES{TopicArn: topic, TrustedHost: regexp.MustCompile("^" + regexp.QuoteMeta(host) + "$"),
		Client: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool()}}}}
	return s
}

// message is a signed SNS message: fields as SNS sends them, signed as
// version (1: SHA-1, 2: SHA-256) over the canonical string.
func (s *snsFixture) message(t *testing.T, version int, m map[string]string) []byte {
	t.Helper()
	m["TopicArn"], m["SignatureVersion"], m["SigningCertURL"] = topic, fmt.Sprint(version), s.certURL
	m["MessageId"], m["Timestamp"] = "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324", "2026-11-30T08:01:02.123Z"
	names := []string{"Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"}
	if m["Type"] != "Notification" {
		names = []string{"Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"}
	}
	var text strings.Builder
	for _, n := range names {
		if v, ok := m[n]; ok {
			text.WriteString(n + "\n" + v + "\n")
		}
	}
	var sig []byte
	var err error
	if version == 1 {
		sum := sha1.Sum([]byte(text.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA1, sum[:])
	} else {
		sum := sha256.Sum256([]byte(text.String()))
		sig, err = rsa.SignPKCS1v15(rand.Reader, s.key, crypto.SHA256, sum[:])
	}
	if err != nil {
		t.Fatal(err)
	}
	m["Signature"] = base64.StdEncoding.EncodeToString(sig)
	body, _ := json.Marshal(m)
	return body
}

// tamper changes one field of a signed message, keeping its signature.
func tamper(t *testing.T, body []byte, field, value string) []byte {
	t.Helper()
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	m[field] = value
	out, _ := json.Marshal(m)
	return out
}

// sesBounce is an SES bounce notification as SES documents it: the mail's
// source is the envelope sender the message went out with.
func sesBounce(source, messageID string) string {
	return `{"notificationType":"Bounce","bounce":{"bounceType":"Permanent","bounceSubType":"General",
"bouncedRecipients":[{"emailAddress":"reader1@example.org","action":"failed","status":"5.1.1",
"diagnosticCode":"smtp; 550 5.1.1 <reader1@example.org>: Recipient address rejected: User unknown"}],
"timestamp":"2026-11-30T08:01:00.000Z","feedbackId":"0102017f-bounce","remoteMtaIp":"192.0.2.1","reportingMTA":"dsn; a1-2.smtp-out.eu-west-1.amazonses.com"},
"mail":{"timestamp":"2026-11-30T08:00:58.000Z","source":"` + source + `","sourceArn":"arn:aws:ses:eu-west-1:123456789012:identity/example.com",
"messageId":"0102017f-ses-id","destination":["reader1@example.org"],"headersTruncated":false,
"commonHeaders":{"from":["London Daily <news@example.com>"],"to":["reader1@example.org"],"messageId":"` + messageID + `","subject":"Today"}}}`
}

func sesComplaint(messageID string) string {
	return `{"notificationType":"Complaint","complaint":{"userAgent":"Yahoo!-Mail-Feedback/2.0",
"complainedRecipients":[{"emailAddress":"reader2@example.org"}],"complaintFeedbackType":"abuse",
"arrivalDate":"2026-11-30T09:00:00.000Z","timestamp":"2026-11-30T09:01:00.000Z","feedbackId":"0102017f-complaint"},
"mail":{"timestamp":"2026-11-30T08:00:58.000Z","source":"news@example.com","messageId":"0102017f-ses-id-2",
"destination":["reader2@example.org"],"commonHeaders":{"messageId":"` + messageID + `"}}}`
}

func TestSESWebhook(t *testing.T) {
	f := newFixture(t, 3)
	sns := newSNS(t)
	url := f.hooks(t, &bounces.Webhooks{SES: sns.ses}) + "ses"
	note := http.Header{"X-Amz-Sns-Message-Type": {"Notification"}}

	// Refused, nothing changed: a body signed and then altered, a message
	// of another topic, a certificate from a host that is not SNS's, and
	// a confirmation request with a bad signature (its URL not visited).
	hard := sns.message(t, 1, map[string]string{"Type": "Notification", "Message": sesBounce(f.h.VERP.Address(f.delivery(t, 1)), "")})
	for name, body := range map[string][]byte{
		"tampered":     tamper(t, hard, "Message", sesBounce(f.h.VERP.Address(f.delivery(t, 3)), "")),
		"bad base64":   tamper(t, hard, "Signature", "!!"),
		"no signature": tamper(t, hard, "Signature", ""),
		"other topic":  tamper(t, hard, "TopicArn", "arn:aws:sns:eu-west-1:999999999999:other"),
		"cert host":    tamper(t, hard, "SigningCertURL", "https://sns.eu-west-1.amazonaws.com.evil.example/x.pem"),
		"confirm":      tamper(t, sns.message(t, 2, map[string]string{"Type": "SubscriptionConfirmation", "Message": "confirm", "Token": "abc", "SubscribeURL": sns.confirm}), "Token", "xyz"),
	} {
		if code := post(t, url, body, note); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	f.unchanged(t, 3)
	if sns.confirmed.Load() != 0 {
		t.Fatal("a subscription was confirmed from an unverified message")
	}

	// A subscription confirmation, signed: its URL is visited once.
	confirm := sns.message(t, 2, map[string]string{"Type": "SubscriptionConfirmation", "Message": "You have chosen to subscribe", "Token": "abc", "SubscribeURL": sns.confirm})
	if code := post(t, url, confirm, http.Header{"X-Amz-Sns-Message-Type": {"SubscriptionConfirmation"}}); code != http.StatusNoContent || sns.confirmed.Load() != 1 {
		t.Fatalf("subscription confirmation: %d, %d visits", code, sns.confirmed.Load())
	}
	// A hard bounce (signature version 1), by the VERP address.
	if code := post(t, url, hard, note); code != http.StatusNoContent {
		t.Fatalf("bounce: %d", code)
	}
	// A complaint (version 2, with a Subject), by our Message-ID.
	complaint := sns.message(t, 2, map[string]string{"Type": "Notification", "Subject": "Amazon SES Email Event Notification", "Message": sesComplaint(f.messageID(t, 2))})
	if code := post(t, url, complaint, note); code != http.StatusNoContent {
		t.Fatalf("complaint: %d", code)
	}
	if f.status(t, 1) != "bounced" || f.status(t, 2) != "unsubscribed" || f.status(t, 3) != "confirmed" {
		t.Fatalf("statuses %s %s %s", f.status(t, 1), f.status(t, 2), f.status(t, 3))
	}
	var status, source string
	if err := f.db.QueryRow(`SELECT status, source FROM bounce_events WHERE kind = 'hard'`).Scan(&status, &source); err != nil || status != "5.1.1" || source != "webhook:ses" {
		t.Fatalf("hard bounce event: %q %q %v", status, source, err)
	}
}

func TestMailgunWebhook(t *testing.T) {
	f := newFixture(t, 2)
	clock := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	mg := &bounces.Mailgun{Key: []byte("key-3ax6xnjp29jd6fds4gc373sgvjxteol0"), Now: func() time.Time { return clock }}
	url := f.hooks(t, &bounces.Webhooks{Mailgun: mg}) + "mailgun"
	sign := func(ts time.Time, token, event, severity, messageID string) []byte {
		stamp := fmt.Sprint(ts.Unix())
		mac := hmac.New(sha256.New, mg.Key)
		mac.Write([]byte(stamp + token))
		return []byte(`{"signature":{"timestamp":"` + stamp + `","token":"` + token + `","signature":"` + hex.EncodeToString(mac.Sum(nil)) + `"},
"event-data":{"id":"G9Bn5sl1TC6nu79C8C0bwg","timestamp":1764489600.0,"log-level":"error","event":"` + event + `","severity":"` + severity + `",
"reason":"bounce","recipient":"reader1@example.org","envelope":{"sender":"news@example.com","transport":"smtp","targets":"reader1@example.org"},
"message":{"headers":{"to":"reader1@example.org","message-id":"` + messageID + `","from":"news@example.com","subject":"Today"}},
"delivery-status":{"attempt-no":1,"code":550,"message":"5.1.1 The email account that you tried to reach does not exist","description":"","session-seconds":0.1}}}`)
	}
	id := strings.Trim(f.messageID(t, 1), "<>") // Mailgun quotes it without brackets
	good := sign(clock, "a8ce0edb2dd8301dee6c2405235584e45aa91d1e9f979f3de0", "failed", "permanent", id)
	for name, body := range map[string][]byte{
		"wrong key":  bytes.Replace(good, []byte(`"signature":"`), []byte(`"signature":"00`), 1),
		"old":        sign(clock.Add(-time.Hour), "tok-old-0123456789012345678901234567890123456789", "failed", "permanent", id),
		"no payload": []byte(`{}`),
	} {
		if code := post(t, url, body, nil); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	f.unchanged(t, 2)
	if code := post(t, url, good, nil); code != http.StatusNoContent {
		t.Fatalf("bounce: %d", code)
	}
	if f.status(t, 1) != "bounced" || f.status(t, 2) != "confirmed" {
		t.Fatalf("statuses %s %s", f.status(t, 1), f.status(t, 2))
	}
	// The same request again, within the time window: a replay.
	if code := post(t, url, good, nil); code != http.StatusUnauthorized {
		t.Fatalf("replay: %d, want 401", code)
	}
	complaint := sign(clock, "b9df1fec3ee9412eef7d3516346695f56bb02e2f0a080a4ef1", "complained", "", strings.Trim(f.messageID(t, 2), "<>"))
	if code := post(t, url, complaint, nil); code != http.StatusNoContent || f.status(t, 2) != "unsubscribed" {
		t.Fatalf("complaint: %d, %s", code, f.status(t, 2))
	}
}

func TestPostmarkWebhook(t *testing.T) {
	f := newFixture(t, 3)
	url := f.hooks(t, &bounces.Webhooks{Postmark: &bounces.Postmark{User: "newsletter", Password: "hook-pass"}}) + "postmark"
	auth := func(user, pass string) http.Header {
		return http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))}, "Content-Type": {"application/json"}}
	}
	// A hard bounce without the message's content: the latest delivery to
	// the address.
	hard := []byte(`{"RecordType":"Bounce","MessageStream":"outbound","ID":4323372036854775807,"Type":"HardBounce","TypeCode":1,
"Name":"Hard bounce","Tag":"","MessageID":"883953f4-6105-42a2-a16a-77a8eac79483","Metadata":{},"ServerID":23,
"Description":"The server was unable to deliver your message (ex: unknown user, mailbox not found).",
"Details":"smtp;550 5.1.1 The email account that you tried to reach does not exist.","Email":"reader1@example.org",
"From":"news@example.com","BouncedAt":"2026-11-30T08:01:02Z","DumpAvailable":true,"Inactive":true,"CanActivate":true,"Subject":"Today"}`)
	for name, h := range map[string]http.Header{"no auth": nil, "wrong password": auth("newsletter", "nope"), "wrong user": auth("other", "hook-pass")} {
		if code := post(t, url, hard, h); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	f.unchanged(t, 3)
	if code := post(t, url, hard, auth("newsletter", "hook-pass")); code != http.StatusNoContent || f.status(t, 1) != "bounced" {
		t.Fatalf("hard bounce: %d, %s", code, f.status(t, 1))
	}
	// A spam complaint quoting the message: our Message-ID in its content.
	content := "Message-ID: " + f.messageID(t, 2) + "\r\nFrom: news@example.com\r\nSubject: Today\r\n\r\nBody"
	complaint, _ := json.Marshal(map[string]any{"RecordType": "SpamComplaint", "Type": "SpamComplaint", "TypeCode": 512,
		"Email": "someone-else@example.org", "Content": content, "Details": "Test spam complaint details", "BouncedAt": "2026-11-30T09:00:00Z"})
	if code := post(t, url, complaint, auth("newsletter", "hook-pass")); code != http.StatusNoContent || f.status(t, 2) != "unsubscribed" {
		t.Fatalf("complaint: %d, %s", code, f.status(t, 2))
	}
	if f.status(t, 3) != "confirmed" {
		t.Fatal("reader 3 changed")
	}
}

func TestSendGridWebhook(t *testing.T) {
	f := newFixture(t, 3)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pub, err := bounces.ParseSendGridKey(base64.StdEncoding.EncodeToString(der))
	if err != nil {
		t.Fatal(err)
	}
	if p, err := bounces.ParseSendGridKey(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))); err != nil || !p.Equal(pub) {
		t.Fatalf("PEM key: %v", err)
	}
	clock := time.Date(2026, 11, 30, 8, 0, 0, 0, time.UTC)
	url := f.hooks(t, &bounces.Webhooks{SendGrid: &bounces.SendGrid{Key: pub, Now: func() time.Time { return clock }}}) + "sendgrid"
	body := []byte(`[
{"email":"reader1@example.org","timestamp":1764489600,"smtp-id":"` + f.messageID(t, 1) + `","event":"bounce","category":["newsletter"],
 "sg_event_id":"6g4ZI7SA-xmRDv57GoPIPw==","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.0","reason":"550 5.1.1 The email account that you tried to reach does not exist.","status":"5.1.1","type":"bounce"},
{"email":"reader2@example.org","timestamp":1764489601,"smtp-id":"` + f.messageID(t, 2) + `","event":"spamreport","sg_event_id":"x2","sg_message_id":"14c5d75ce93.dfd.64b469.filter0001.16648.5515E0B88.1"},
{"email":"reader3@example.org","timestamp":1764489602,"smtp-id":"` + f.messageID(t, 3) + `","event":"delivered","response":"250 OK","sg_event_id":"x3"}]`)
	sign := func(ts string, b []byte) http.Header {
		sum := sha256.Sum256(append([]byte(ts), b...))
		sig, err := ecdsa.SignASN1(rand.Reader, key, sum[:])
		if err != nil {
			t.Fatal(err)
		}
		return http.Header{bounces.SendGridSignature: {base64.StdEncoding.EncodeToString(sig)}, bounces.SendGridTimestamp: {ts}}
	}
	now := fmt.Sprint(clock.Unix())
	good := sign(now, body)
	other := sign(now, []byte("[]"))
	for name, tc := range map[string]struct {
		body []byte
		h    http.Header
	}{
		"signature of another body": {body, other},
		"no signature":              {body, http.Header{bounces.SendGridTimestamp: {now}}},
		"timestamp changed":         {body, http.Header{bounces.SendGridSignature: good[bounces.SendGridSignature], bounces.SendGridTimestamp: {fmt.Sprint(clock.Unix() + 1)}}},
		"old":                       {body, sign(fmt.Sprint(clock.Add(-time.Hour).Unix()), body)},
	} {
		if code := post(t, url, tc.body, tc.h); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", name, code)
		}
	}
	f.unchanged(t, 3)
	if code := post(t, url, body, good); code != http.StatusNoContent {
		t.Fatalf("events: %d", code)
	}
	if f.status(t, 1) != "bounced" || f.status(t, 2) != "unsubscribed" || f.status(t, 3) != "confirmed" {
		t.Fatalf("statuses %s %s %s", f.status(t, 1), f.status(t, 2), f.status(t, 3))
	}
}

func TestWebhookUnconfiguredAndOversized(t *testing.T) {
	f := newFixture(t, 1)
	base := f.hooks(t, &bounces.Webhooks{Postmark: &bounces.Postmark{User: "u", Password: "p"}})
	for _, p := range []string{"ses", "mailgun", "sendgrid", "other"} {
		if code := post(t, base+p, []byte(`{}`), nil); code != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", p, code)
		}
	}
	big := bytes.Repeat([]byte(" "), bounces.MaxWebhookBody+1)
	if code := post(t, base+"postmark", big, http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))}}); code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: %d, want 413", code)
	}
	f.unchanged(t, 1)
}
