package smtptest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Messages returns a copy of all accepted messages in acceptance order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return copyMessages(s.msgs)
}

// RecipientCounts returns how many messages each recipient was sent (kept
// even WithDiscard), for tests that count duplicates in big sends.
func (s *Server) RecipientCounts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.perRcpt))
	for k, v := range s.perRcpt {
		out[k] = v
	}
	return out
}

// Accepted returns how many messages the server has accepted (replied 250 to the
// end of DATA), including those not kept because of WithDiscard.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// WaitFor waits until at least n messages have been accepted and returns a copy of
// the kept messages (all of them, or none with WithDiscard). It fails the test if
// that does not happen within timeout.
func (s *Server) WaitFor(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.accepted >= n {
			msgs := copyMessages(s.msgs)
			s.mu.Unlock()
			return msgs
		}
		changed, got := s.changed, s.accepted
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("smtptest: waited %v for %d messages, got %d", timeout, n, got)
			return nil
		}
	}
}

func copyMessages(in []Message) []Message {
	out := make([]Message, len(in))
	for i, m := range in {
		out[i] = Message{
			From: m.From,
			To:   append([]string(nil), m.To...),
			Data: append([]byte(nil), m.Data...),
			At:   m.At,
		}
	}
	return out
}

// accept keeps an accepted message (the .eml file, then the record) and hands it to
// the background relay. Returning an error makes the server reply 451 instead of
// 250: only when the message could not be kept.
func (s *Server) accept(m Message) error {
	seq := s.seq.Add(1)
	if s.opts.dir != "" {
		rcpt := ""
		if len(m.To) > 0 {
			rcpt = m.To[0]
		}
		name := fmt.Sprintf("%04d-%s.eml", seq, sanitize(rcpt))
		if err := os.WriteFile(filepath.Join(s.opts.dir, name), m.Data, 0o644); err != nil {
			s.log.Error("cannot store message", "file", name, "err", err)
			return &smtp.SMTPError{
				Code:         451,
				EnhancedCode: smtp.EnhancedCode{4, 3, 0},
				Message:      "cannot store message",
			}
		}
	}
	s.mu.Lock()
	if !s.opts.discard {
		s.msgs = append(s.msgs, m)
	}
	s.accepted++
	if s.perRcpt == nil {
		s.perRcpt = map[string]int{}
	}
	for _, to := range m.To {
		s.perRcpt[to]++
	}
	close(s.changed)
	s.changed = make(chan struct{})
	if s.dropAfter > 0 {
		s.dropAfter--
	}
	s.mu.Unlock()
	if s.relay != nil {
		s.relay.enqueue(m)
	}
	return nil
}

// sanitize keeps a recipient address usable as part of a file name on any OS.
func sanitize(addr string) string {
	if addr == "" {
		return "unknown"
	}
	var b strings.Builder
	for _, r := range strings.ToLower(addr) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '.', r == '-', r == '+', r == '@':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	out := strings.ReplaceAll(b.String(), "@", "_")
	if len(out) > 100 {
		out = out[:100]
	}
	return out
}
