package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"newsletter/internal/logtest"
	"strings"
	"testing"
	"time"
)

// The reader pages hold at most limit connections: one more waits, unanswered,
// until one of them closes. And what net/http itself logs reaches the
// process's log.
func TestServeLimitsConnectionsAndLogs(t *testing.T) {
	var logs logtest.Buffer
	a := &app{cfg: &config{}, log: slog.New(slog.NewTextHandler(&logs, nil))}
	hs := a.httpServer(context.Background(), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("handler fault")
		}
		w.Write([]byte("ok"))
	}))
	ln, err := listen("127.0.0.1:0", 1)
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)
	t.Cleanup(func() { hs.Close() })
	url := "http://" + ln.Addr().String()

	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	// A fresh client, so no kept-alive connection is reused.
	quick := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{DisableKeepAlives: true}}
	if resp, err := quick.Get(url + "/"); err == nil {
		resp.Body.Close()
		t.Fatal("a second connection was served while the limit of one was taken")
	}
	idle.Close()
	patient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := patient.Get(url + "/")
	if err != nil {
		t.Fatalf("after the first connection closed: %v", err)
	}
	resp.Body.Close()

	if resp, err := patient.Get(url + "/panic"); err == nil {
		resp.Body.Close()
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "handler fault") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := logs.String(); !strings.Contains(got, "handler fault") || !strings.Contains(got, "level=WARN") {
		t.Errorf("the handler's panic did not reach the log as a warning: %q", got)
	}
}
