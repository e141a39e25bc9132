package bounces

import (
	"bytes"
	"context"
	"crypto/tls"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/lib/pq"
)

// IMAPMailbox is where a newsroom's bounces land when they come to an
// ordinary inbox rather than to bounces serve: the server, the login, the
// folder to read and the two folders messages are moved to once read.
type IMAPMailbox struct {
	Addr      string // host:port
	TLS       bool   // implicit TLS (imaps, RFC 8314 section 3.2); else STARTTLS, required
	User      string
	Password  string
	Folder    string // read: INBOX by default
	Processed string // what was handled goes here
	Failed    string // what could not be handled (not a bounce, names no delivery) goes here
}

// Default folders of an IMAPMailbox.
const (
	DefaultIMAPProcessed = "newsletter/processed"
	DefaultIMAPFailed    = "newsletter/unhandled"
)

// ParseIMAPURL reads imaps://user:pass@host:993/INBOX (implicit TLS) or
// imap://user:pass@host:143/INBOX (STARTTLS, required: the password never
// goes in clear), with ?processed=FOLDER&failed=FOLDER to name the folders
// messages are moved to. User and password are percent-encoded as in any
// URL (an @ in a user name is %40).
func ParseIMAPURL(s string) (IMAPMailbox, error) {
	u, err := url.Parse(s)
	if err != nil {
		return IMAPMailbox{}, errors.New("not a URL: want imaps://user:pass@host:993/INBOX")
	}
	m := IMAPMailbox{Processed: DefaultIMAPProcessed, Failed: DefaultIMAPFailed, Folder: "INBOX"}
	port := "993"
	switch u.Scheme {
	case "imaps":
		m.TLS = true
	case "imap":
		port = "143"
	default:
		return IMAPMailbox{}, fmt.Errorf("scheme %q: want imaps:// (or imap:// for STARTTLS)", u.Scheme)
	}
	if u.Hostname() == "" || u.User == nil || u.User.Username() == "" {
		return IMAPMailbox{}, errors.New("want a host and a user: imaps://user:pass@host:993/INBOX")
	}
	if u.Port() != "" {
		port = u.Port()
	}
	m.Addr = net.JoinHostPort(u.Hostname(), port)
	m.User = u.User.Username()
	m.Password, _ = u.User.Password()
	if f := strings.Trim(u.Path, "/"); f != "" {
		m.Folder = f
	}
	q := u.Query()
	if f := q.Get("processed"); f != "" {
		m.Processed = f
	}
	if f := q.Get("failed"); f != "" {
		m.Failed = f
	}
	if m.Processed == m.Folder || m.Failed == m.Folder {
		return IMAPMailbox{}, errors.New("the processed and failed folders must differ from the one read")
	}
	return m, nil
}

// IMAPPoller reads the unseen messages of a mailbox, hands each to the
// Handler as if it had come to bounces serve, and moves it out of the
// folder: to Processed when it was handled (a bounce acted on, an
// auto-reply ignored), to Failed when it can't be (not a bounce, no VERP
// or unsubscribe recipient, a token that names nothing). A message leaves
// the folder once read, so nothing is handled twice; only when the
// database could not be reached does it stay, unseen, for the next poll.
type IMAPPoller struct {
	Mailbox IMAPMailbox
	Handler *Handler
	// TLSConfig is for the server's certificate (tests give their own
	// roots); nil verifies it against the system's.
	TLSConfig *tls.Config
	Log       *slog.Logger
}

// imapBatch is how many messages one poll reads at most: the rest wait for
// the next, so a flooded inbox does not keep one session open for hours.
const imapBatch = 200

// imapTimeout bounds each read and write on the connection: a server
// that stops answering ends the poll, not the poller.
const imapTimeout = 2 * time.Minute

// Run polls every interval until ctx ends. A poll that fails is logged and
// the next one tries again.
func (p *IMAPPoller) Run(ctx context.Context, interval time.Duration) error {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		n, err := p.Poll(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil:
			p.Log.Error("IMAP poll failed", "mailbox", p.Mailbox.Addr, "folder", p.Mailbox.Folder, "err", err)
		case n > 0:
			p.Log.Info("IMAP poll", "messages", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll reads the folder's unseen messages once and returns how many it
// moved out of it.
func (p *IMAPPoller) Poll(ctx context.Context) (int, error) {
	conn, err := p.dial(ctx)
	if err != nil {
		return 0, err
	}
	// The IMAP client's calls take no context: closing the connection when
	// ctx ends is what unblocks whichever is waiting.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	defer conn.Close()
	c, err := p.login(conn)
	if err != nil {
		return 0, errors.Join(err, ctx.Err())
	}
	n, err := p.session(ctx, c)
	if ctx.Err() != nil {
		return n, ctx.Err()
	}
	if err == nil {
		err = c.Logout().Wait()
	}
	return n, err
}

// dial connects to the server: over TLS at once for imaps, in clear until
// STARTTLS for imap.
func (p *IMAPPoller) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{Timeout: 30 * time.Second}
	var conn net.Conn
	var err error
	if p.Mailbox.TLS {
		conn, err = (&tls.Dialer{NetDialer: d, Config: p.tlsConfig()}).DialContext(ctx, "tcp", p.Mailbox.Addr)
	} else {
		conn, err = d.DialContext(ctx, "tcp", p.Mailbox.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", p.Mailbox.Addr, err)
	}
	return deadlined{conn}, nil
}

func (p *IMAPPoller) tlsConfig() *tls.Config {
	cfg := p.TLSConfig.Clone()
	if cfg == nil {
		cfg = &tls.Config{}
	}
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(p.Mailbox.Addr)
	}
	return cfg
}

// login starts the IMAP session on conn (STARTTLS first for imap://: the
// password never goes in clear, RFC 8314 section 3) and logs in.
func (p *IMAPPoller) login(conn net.Conn) (*imapclient.Client, error) {
	m := p.Mailbox
	opts := &imapclient.Options{TLSConfig: p.tlsConfig()}
	var c *imapclient.Client
	if m.TLS {
		c = imapclient.New(conn, opts)
	} else {
		var err error
		if c, err = imapclient.NewStartTLS(conn, opts); err != nil {
			return nil, fmt.Errorf("STARTTLS with %s: %w", m.Addr, err)
		}
	}
	if err := c.Login(m.User, m.Password).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("log in to %s as %s: %w", m.Addr, m.User, err)
	}
	return c, nil
}

// deadlined is a connection whose every read and write must finish within
// imapTimeout.
type deadlined struct{ net.Conn }

func (d deadlined) Read(b []byte) (int, error) {
	d.SetReadDeadline(time.Now().Add(imapTimeout))
	return d.Conn.Read(b)
}

func (d deadlined) Write(b []byte) (int, error) {
	d.SetWriteDeadline(time.Now().Add(imapTimeout))
	return d.Conn.Write(b)
}

// session does one poll on a logged-in connection.
func (p *IMAPPoller) session(ctx context.Context, c *imapclient.Client) (int, error) {
	m := p.Mailbox
	for _, f := range []string{m.Processed, m.Failed} {
		if err := ensureFolder(c, f); err != nil {
			return 0, err
		}
	}
	if _, err := c.Select(m.Folder, nil).Wait(); err != nil {
		return 0, fmt.Errorf("select %s: %w", m.Folder, err)
	}
	found, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen, imap.FlagDeleted}}, nil).Wait()
	if err != nil {
		return 0, fmt.Errorf("search %s for unseen messages: %w", m.Folder, err)
	}
	uids := found.AllUIDs()
	if len(uids) > imapBatch {
		uids = uids[:imapBatch]
	}
	var moved int
	for _, uid := range uids {
		if ctx.Err() != nil {
			return moved, ctx.Err()
		}
		folder, err := p.handle(ctx, c, uid)
		if err != nil {
			return moved, err
		}
		if folder == "" {
			continue
		}
		if _, err := c.Move(imap.UIDSetNum(uid), folder).Wait(); err != nil {
			return moved, fmt.Errorf("move message %d to %s: %w", uid, folder, err)
		}
		moved++
	}
	return moved, nil
}

// ensureFolder creates folder unless it exists.
func ensureFolder(c *imapclient.Client, folder string) error {
	l, err := c.List("", folder, nil).Collect()
	if err != nil {
		return fmt.Errorf("list folder %s: %w", folder, err)
	}
	if len(l) > 0 {
		return nil
	}
	if err := c.Create(folder, nil).Wait(); err != nil {
		return fmt.Errorf("create folder %s: %w", folder, err)
	}
	return nil
}

// handle reads one message and hands it to the Handler, and says which
// folder it goes to: "" leaves it where it is, unseen, for the next poll.
func (p *IMAPPoller) handle(ctx context.Context, c *imapclient.Client, uid imap.UID) (string, error) {
	log := p.Log.With("source", "imap", "uid", uid)
	section := &imap.FetchItemBodySection{Peek: true} // Peek: not \Seen until handled
	// A message over the parser's limit is not fetched whole: only its
	// first MaxMessage+1 bytes, so that Parse refuses it.
	section.Partial = &imap.SectionPartial{Offset: 0, Size: MaxMessage + 1}
	msgs, err := c.Fetch(imap.UIDSetNum(uid), &imap.FetchOptions{UID: true, BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		return "", fmt.Errorf("fetch message %d: %w", uid, err)
	}
	if len(msgs) == 0 {
		return "", nil // expunged meanwhile by another client
	}
	body := msgs[0].FindBodySection(section)
	rcpt := p.recipient(body)
	if rcpt == "" {
		log.Warn("IMAP message not handled: no VERP or unsubscribe address among its recipients")
		return p.Mailbox.Failed, nil
	}
	out, err := p.Handler.Inbound(ctx, "imap", rcpt, bytes.NewReader(body))
	switch {
	case err == nil:
		log.Info("IMAP message handled", "outcome", out)
		return p.Mailbox.Processed, nil
	case ctx.Err() != nil || transient(err):
		return "", fmt.Errorf("handle message %d: %w", uid, err)
	case errors.Is(err, ErrReused):
		// Handled already: by bounces serve, or by a poll that stopped
		// before it could move the message.
		log.Info("IMAP message handled already", "err", err)
		return p.Mailbox.Processed, nil
	}
	log.Warn("IMAP message not handled", "err", err)
	return p.Mailbox.Failed, nil
}

// recipient is the address of the bounce domain a message was sent to:
// the first of Delivered-To (the final recipient a delivery agent
// records; one per hop, the latest first), X-Original-To (Postfix's
// recipient before aliasing), then To, that is a VERP or unsubscribe
// address. Headers only: a bounce quotes the original message, whose
// headers name the reader, not us.
func (p *IMAPPoller) recipient(msg []byte) string {
	end := bytes.Index(msg, []byte("\r\n\r\n"))
	if end < 0 {
		end = bytes.Index(msg, []byte("\n\n"))
	}
	if end < 0 {
		end = len(msg)
	}
	m, err := mail.ReadMessage(bytes.NewReader(append(msg[:end:end], "\r\n\r\n"...)))
	if err != nil {
		return ""
	}
	for _, field := range []string{"Delivered-To", "X-Original-To", "To"} {
		for _, v := range m.Header[field] {
			for _, a := range addresses(v) {
				if p.Handler.VERP.Classify(a).Kind != NotOurs {
					return a
				}
			}
		}
	}
	return ""
}

// addresses reads a header's addresses: an address list (RFC 5322 section
// 3.4), or a bare address as Delivered-To carries.
func addresses(v string) []string {
	if l, err := mail.ParseAddressList(v); err == nil {
		out := make([]string, len(l))
		for i, a := range l {
			out[i] = a.Address
		}
		return out
	}
	return []string{strings.Trim(strings.TrimSpace(v), "<>")}
}

// transient tells an error worth trying again later (the database down or
// unreachable) from one the message itself causes.
func transient(err error) bool {
	var pqErr *pq.Error
	var netErr net.Error
	return errors.As(err, &pqErr) || errors.As(err, &netErr) ||
		errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone)
}
