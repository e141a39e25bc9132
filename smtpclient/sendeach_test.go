package smtpclient

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A caller of SendEach learns each outcome while the next message is already
// on its way: when done(k) runs, message k's MAIL, RCPT and DATA were written
// with message k-1's data, so the server reads them while the caller is
// still busy (recording, say). Were the pipeline drained before done, the
// server would never see them until done returned, and this waits in vain.
func TestSendEachReportsWhileTheNextMessageIsOnItsWay(t *testing.T) {
	s := startScript(t, []string{"PIPELINING", "ENHANCEDSTATUSCODES"}, func(cmd string) string {
		if strings.HasPrefix(cmd, "RCPT TO:<reader3@") {
			return "550 5.1.1 no such user\r\n"
		}
		if cmd == "DATA" {
			return "354 go ahead\r\n"
		}
		return "250 2.0.0 Ok\r\n"
	})
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
