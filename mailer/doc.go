// Package mailer builds the messages the newsletter sends (RFC 5322, MIME):
// one message with go-mail (Build, for confirmation mails, test copies and
// as the reference the fast path is tested against), and an edition
// prepared once and spliced per recipient (Prepare, AppendParts), already
// encoded and dot-stuffed for SMTP DATA; and it signs them with DKIM.
//
// Sending them belongs to package smtpclient, which this package does not
// import.
package mailer
