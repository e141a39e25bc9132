package smtpclient

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// refusingScript is a pipelining server that takes every message but
// refuses one recipient, as not existing.
func refusingScript(t *testing.T, refused string) *scriptServer {
	return startScript(t, []string{"PIPELINING", "ENHANCEDSTATUSCODES"}, func(cmd string) string {
		if cmd == "RCPT TO:<"+refused+">" {
			return "550 5.1.1 no such user\r\n"
		}
		if cmd == "DATA" {
			return "354 go ahead\r\n"
		}
		return "250 2.0.0 Ok\r\n"
	})
}

// A caller of SendEach learns each outcome while the next message is already
// on its way: when done(k) runs, message k's MAIL, RCPT and DATA were written
// with message k-1's data, so the server reads them while the caller is
// still busy (recording, say). Were the pipeline drained before done, the
// server would never see them until done returned, and this waits in vain.
func TestSendEachReportsWhileTheNextMessageIsOnItsWay(t *testing.T) {
	s := refusingScript(t, rcptN(3))
	c := dialBulkT(t, s.config())
	const n = 6
	envs := envelopes(t, small(t), n, rcptN)
	results := make([]Result, n)
	var calls []int
	c.SendEach(context.Background(), envs, results, func(k int) {
		calls = append(calls, k)
		for i := range k {
			if !results[i].OK && results[i].Err == nil {
				t.Errorf("done(%d): result %d is not final: %+v", k, i, results[i])
			}
		}
		if k >= n {
			return
		}
		want := "RCPT TO:<" + rcptN(k) + ">"
		deadline := time.Now().Add(10 * time.Second)
		for !strings.Contains(strings.Join(s.commands(), "|"), want) {
			if time.Now().After(deadline) {
				t.Fatalf("done(%d) ran before %s was sent: the pipeline ran dry", k, want)
			}
			time.Sleep(time.Millisecond)
		}
	})
	if fmt.Sprint(calls) != "[1 2 3 4 5 6]" {
		t.Errorf("done calls %v, want each k once in order, ending with %d", calls, n)
	}
	for i, r := range results {
		if ok := i != 3; r.OK != ok {
			t.Errorf("message %d: OK=%v (%+v)", i, r.OK, r.Err)
		}
	}
}

// Cancelling SendEach's context from done stops it before the next message:
// the one in flight finishes, the rest are reported not sent, and the
// connection stays usable.
func TestSendEachStopsWhenDoneCancels(t *testing.T) {
	s := startScript(t, []string{"PIPELINING", "ENHANCEDSTATUSCODES"}, func(cmd string) string {
		if cmd == "DATA" {
			return "354 go ahead\r\n"
		}
		return "250 2.0.0 Ok\r\n"
	})
	c := dialBulkT(t, s.config())
	envs := envelopes(t, small(t), 6, rcptN)
	results := make([]Result, 6)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.SendEach(ctx, envs, results, func(k int) {
		if k == 2 {
			cancel()
		}
	})
	// Message 2's commands went out with message 1's data, before done(2):
	// it is sent; 3 on are not.
	for i, r := range results {
		sent := i <= 2
		if r.OK != sent || !sent && (r.Err == nil || r.Err.ConnLost || r.Err.Stage != StageMail || r.Err.Code != 0) {
			t.Errorf("message %d: %+v / %+v", i, r, r.Err)
		}
	}
	if c.Broken() {
		t.Error("the connection is broken after a stop")
	}
	more := make([]Result, 1)
	c.Send(context.Background(), envs[5:], more)
	if !more[0].OK {
		t.Errorf("send after a stop: %+v", more[0].Err)
	}
}

// SendStream asks for each message only when the one before is on its way,
// reports every outcome in order, and keeps one pipeline, one write per
// message, for as long as messages come: a stream of 200 refills its source
// twice, from the done callback, as a sender whose work arrives while it
// sends would, and never drains between them.
func TestSendStreamAsksForEachMessageOnItsWay(t *testing.T) {
	s := refusingScript(t, rcptN(77))
	c := dialBulkT(t, s.config())
	const n = 200
	envs := envelopes(t, small(t), n, rcptN)
	envs[120].To = "bad\r\naddress" // refused before it is sent; the stream goes on
	ready, asked := 50, 0           // the source holds 50 at first, 75 more twice
	var results []Result
	flushes := c.flushes
	c.SendStream(context.Background(), func() (Envelope, bool) {
		if asked == n {
			return Envelope{}, false
		}
		if asked == ready {
			t.Fatalf("asked for message %d with %d ready: the source was asked past its end", asked, ready)
		}
		// Message asked-1 was given before: its commands must be on
		// their way by now, so the server works while we are asked.
		if asked >= 2 {
			want := "RCPT TO:<" + rcptN(asked-1) + ">"
			if asked-1 == 120 {
				want = "RCPT TO:<" + rcptN(asked-2) + ">"
			}
			if !slices.Contains(s.commands(), want) {
				t.Errorf("asked for message %d before %s was written", asked, want)
			}
		}
		asked++
		return envs[asked-1], true
	}, func(r Result) {
		results = append(results, r)
		if len(results) == ready-10 && ready < n {
			ready += 75 // more work arrives while the stream goes on
		}
	})
	if asked != n || len(results) != n {
		t.Fatalf("asked %d, %d results, want %d each", asked, len(results), n)
	}
	for i, r := range results {
		if ok := i != 77 && i != 120; r.OK != ok {
			t.Errorf("message %d: OK=%v (%+v)", i, r.OK, r.Err)
		}
	}
	if results[120].Err == nil || results[120].Err.Stage != StageMessage {
		t.Errorf("message 120 (bad address): %+v, want refused before sending", results[120].Err)
	}
	// The stream keeps a few messages, not every one it sent.
	if cap(c.envs) > 128 {
		t.Errorf("the connection kept room for %d envelopes after a stream of %d", cap(c.envs), n)
	}
	// One write per message sent, plus the first group and the RSET after
	// the refusal: the stream never started over.
	if got := c.flushes - flushes; got > n+1 {
		t.Errorf("%d writes for %d messages: the pipeline ran dry between refills", got, n)
	}
}

// A stream whose source has nothing more ends with the messages given, and
// one stopped by ctx asks for nothing more: what it was given finishes or is
// reported not sent, and the connection stays usable for the next stream.
func TestSendStreamEnds(t *testing.T) {
	s := startScript(t, []string{"PIPELINING"}, func(cmd string) string {
		if cmd == "DATA" {
			return "354 go ahead\r\n"
		}
		return "250 Ok\r\n"
	})
	c := dialBulkT(t, s.config())
	envs := envelopes(t, small(t), 10, rcptN)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	asked := 0
	var results []Result
	c.SendStream(ctx, func() (Envelope, bool) {
		asked++
		return envs[asked-1], true
	}, func(r Result) {
		results = append(results, r)
		if len(results) == 3 {
			cancel()
		}
	})
	// Message 3 was asked for with message 2's data on its way, before
	// done told of 2 (the cancel): its commands went out, so it is sent.
	if asked != 4 || len(results) != 4 {
		t.Fatalf("asked %d, %d results after a stop at the third outcome, want 4 and 4", asked, len(results))
	}
	for i, r := range results {
		if !r.OK {
			t.Errorf("message %d: %+v", i, r.Err)
		}
	}
	if c.Broken() {
		t.Fatal("the connection is broken after a stop")
	}
	asked = 0
	results = nil
	c.SendStream(context.Background(), func() (Envelope, bool) {
		if asked == 2 {
			return Envelope{}, false
		}
		asked++
		return envs[4+asked], true
	}, func(r Result) { results = append(results, r) })
	if len(results) != 2 || !results[0].OK || !results[1].OK {
		t.Fatalf("the next stream: %+v", results)
	}
}
