// Package smtpclient talks to the SMTP relays mail is handed to: their
// configuration (SMTP_URL, TLS modes), the clients, and the classification of
// what went wrong.
//
// Two clients share the configuration and the error type:
//
//   - Conn, from Dial, sends many pre-built messages over one connection
//     (RFC 5321) with command pipelining (RFC 2920): a message costs one round
//     trip, and its bytes, already dot-stuffed, leave in a few large writes.
//     It is the client for editions.
//   - MsgConn, from DialMsg, sends one go-mail message at a time, lock-step:
//     the client for confirmation mails and test copies.
//
// Both protect the connection as Config says (STARTTLS required by default,
// RFC 3207, or implicit TLS, RFC 8314), authenticate when credentials are
// given (RFC 4954), and report failures as *Error: permanent or temporary
// (RFC 5321 section 4.2.1), throttled, with the enhanced status code (RFC
// 3463), and whether the connection was lost.
//
// The package sends bytes or a *gomail.Msg; building messages belongs to
// package mailer, which this package does not import.
package smtpclient
