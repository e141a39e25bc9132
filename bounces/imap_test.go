package bounces_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"newsletter/bounces"
)

// literal is a message to append to the memory server's mailbox.
type literal struct{ *bytes.Reader }

func (l literal) Size() int64 { return l.Reader.Size() }

// imapFixture is an in-process IMAP server (go-imap's memory server) over
// TLS, with a certificate of a test CA the poller is told to trust.
type imapFixture struct {
	user  *imapmemserver.User
	addr  string
	roots *x509.CertPool
}

func newIMAPServer(t *testing.T) *imapFixture {
	t.Helper()
	ca := newTestCA(t)
	leaf, _ := ca.leaf(t, "127.0.0.1")
	mem := imapmemserver.New()
	user := imapmemserver.NewUser("bounces@example.com", "s3cret")
	if err := user.Create("INBOX", nil); err != nil {
		t.Fatal(err)
	}
	mem.AddUser(user)
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:   imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger: testLogger{t},
	})
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{leaf}})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return &imapFixture{user: user, addr: ln.Addr().String(), roots: ca.pool()}
}

type testLogger struct{ t *testing.T }

func (l testLogger) Printf(format string, args ...any) { l.t.Logf("imap server: "+format, args...) }

// add appends a message to folder, with flags.
func (s *imapFixture) add(t *testing.T, folder string, msg []byte, flags ...imap.Flag) {
	t.Helper()
	if _, err := s.user.Append(folder, literal{bytes.NewReader(msg)}, &imap.AppendOptions{Flags: flags}); err != nil {
		t.Fatal(err)
	}
}

// count is how many messages folder holds.
func (s *imapFixture) count(t *testing.T, folder string) uint32 {
	t.Helper()
	st, err := s.user.Status(folder, &imap.StatusOptions{NumMessages: true})
	if err != nil {
		t.Fatalf("status of %s: %v", folder, err)
	}
	return *st.NumMessages
}

// withDeliveredTo is a fixture message as a delivery agent puts it in the
// inbox: a Delivered-To naming the address it was sent to.
func withDeliveredTo(t *testing.T, file, rcpt string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", file))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte("Delivered-To: "+rcpt+"\r\nDelivered-To: bounces@example.com\r\n"), data...)
}

func TestIMAPPollHandlesAndMovesEachMessageOnce(t *testing.T) {
	f := newFixture(t, 3)
	s := newIMAPServer(t)
	bounced, replied := f.delivery(t, 1), f.delivery(t, 2)
	s.add(t, "INBOX", withDeliveredTo(t, "postfix-hard.eml", f.h.VERP.Address(bounced)))
	s.add(t, "INBOX", withDeliveredTo(t, "autoreply-rfc3834.eml", f.h.VERP.Address(replied)))
	// A reader's reply to the newsletter: no VERP address, not ours to handle.
	s.add(t, "INBOX", []byte("From: reader3@example.org\r\nTo: newsroom@example.com\r\nSubject: Re: Today\r\n\r\nThanks!\r\n"))
	// A message someone already read in the inbox is left alone.
	s.add(t, "INBOX", withDeliveredTo(t, "postfix-hard.eml", f.h.VERP.Address(f.delivery(t, 3))), imap.FlagSeen)

	m, err := bounces.ParseIMAPURL("imaps://bounces%40example.com:s3cret@" + s.addr + "/INBOX")
	if err != nil {
		t.Fatal(err)
	}
	p := &bounces.IMAPPoller{Mailbox: m, Handler: f.h, TLSConfig: &tls.Config{RootCAs: s.roots}, Log: f.h.Log}
	ctx := context.Background()
	n, err := p.Poll(ctx)
	if err != nil || n != 3 {
		t.Fatalf("first poll: %d moved, %v; want 3", n, err)
	}
	if f.status(t, 1) != "bounced" || f.status(t, 2) != "confirmed" || f.status(t, 3) != "confirmed" {
		t.Fatalf("statuses %s %s %s, want the DSN's reader alone bounced", f.status(t, 1), f.status(t, 2), f.status(t, 3))
	}
	if got := f.count(t, `SELECT count(*) FROM bounce_events WHERE source = 'imap' AND kind = 'hard' AND delivery_id = $1`, bounced); got != 1 {
		t.Fatalf("%d hard bounce events from imap, want 1", got)
	}
	if in, done, failed := s.count(t, "INBOX"), s.count(t, bounces.DefaultIMAPProcessed), s.count(t, bounces.DefaultIMAPFailed); in != 1 || done != 2 || failed != 1 {
		t.Fatalf("INBOX %d, processed %d, unhandled %d; want 1 (the seen one), 2, 1", in, done, failed)
	}
	// A second poll finds nothing to do, and changes nothing.
	events := f.count(t, `SELECT count(*) FROM bounce_events`)
	if n, err := p.Poll(ctx); err != nil || n != 0 {
		t.Fatalf("second poll: %d moved, %v; want 0", n, err)
	}
	if got := f.count(t, `SELECT count(*) FROM bounce_events`); got != events {
		t.Fatalf("second poll recorded %d more events", got-events)
	}
	// The same bounce delivered twice (or handled by bounces serve too):
	// nothing more done, and out of the inbox with what was processed.
	s.add(t, "INBOX", withDeliveredTo(t, "postfix-hard.eml", f.h.VERP.Address(bounced)))
	if n, err := p.Poll(ctx); err != nil || n != 1 {
		t.Fatalf("poll of a repeat: %d moved, %v; want 1", n, err)
	}
	if got := f.count(t, `SELECT count(*) FROM bounce_events`); got != events || s.count(t, bounces.DefaultIMAPProcessed) != 3 {
		t.Fatalf("a repeat: %d events (want %d), %d processed (want 3)", got, events, s.count(t, bounces.DefaultIMAPProcessed))
	}
	if strings.Contains(f.log.String(), "reader1@") {
		t.Fatalf("the log names an address:\n%s", f.log)
	}
}

func TestIMAPPollRefusesWrongPasswordAndUntrustedCertificate(t *testing.T) {
	f := newFixture(t, 1)
	s := newIMAPServer(t)
	s.add(t, "INBOX", withDeliveredTo(t, "postfix-hard.eml", f.h.VERP.Address(f.delivery(t, 1))))
	for name, tc := range map[string]struct {
		url   string
		roots *x509.CertPool
	}{
		"wrong password":        {"imaps://bounces%40example.com:nope@" + s.addr, s.roots},
		"untrusted certificate": {"imaps://bounces%40example.com:s3cret@" + s.addr, x509.NewCertPool()},
	} {
		m, err := bounces.ParseIMAPURL(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		p := &bounces.IMAPPoller{Mailbox: m, Handler: f.h, TLSConfig: &tls.Config{RootCAs: tc.roots}, Log: f.h.Log}
		if n, err := p.Poll(context.Background()); err == nil || n != 0 {
			t.Errorf("%s: %d moved, %v; want an error", name, n, err)
		}
	}
	if f.status(t, 1) != "confirmed" || s.count(t, "INBOX") != 1 {
		t.Fatal("a refused poll changed something")
	}
}

func TestIMAPRunStopsWhenContextEnds(t *testing.T) {
	f := newFixture(t, 1)
	// A server that accepts and never greets: the poll waits on it until
	// the context ends.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	m, _ := bounces.ParseIMAPURL("imap://u:p@" + ln.Addr().String())
	p := &bounces.IMAPPoller{Mailbox: m, Handler: f.h, Log: f.h.Log}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, time.Hour) }()
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestParseIMAPURL(t *testing.T) {
	m, err := bounces.ParseIMAPURL("imaps://me%40example.com:p%40ss@imap.example.com/Bounces?processed=Done&failed=Odd")
	if err != nil {
		t.Fatal(err)
	}
	want := bounces.IMAPMailbox{Addr: "imap.example.com:993", TLS: true, User: "me@example.com", Password: "p@ss", Folder: "Bounces", Processed: "Done", Failed: "Odd"}
	if m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
	if m, _ := bounces.ParseIMAPURL("imap://u:p@h"); m.Addr != "h:143" || m.TLS || m.Folder != "INBOX" {
		t.Fatalf("imap:// %+v", m)
	}
	for _, bad := range []string{"http://u:p@h/", "imaps://h/INBOX", "imaps://u:p@/INBOX", "imaps://u:p@h/INBOX?processed=INBOX", "::"} {
		if _, err := bounces.ParseIMAPURL(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
