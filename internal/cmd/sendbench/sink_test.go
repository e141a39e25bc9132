package main

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// The delaying proxy holds back every reply by its delay and passes what
// the client writes at once; with -trace it counts each connection's MAIL
// commands and says how long a message took it.
func TestDelayProxyDelaysRepliesAndTraces(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() { // a server that answers each line at once
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			c.Write([]byte("250 ok\r\n"))
		}
	}()
	const delay = 30 * time.Millisecond
	p, err := startDelayProxy(ln.Addr().String(), delay, true)
	if err != nil {
		t.Fatal(err)
	}
	defer p.close()
	c, err := net.Dial("tcp", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	for range 4 {
		sent := time.Now()
		c.Write([]byte("MAIL FROM:<a@example.com>\r\n"))
		line, err := r.ReadString('\n')
		if err != nil || line != "250 ok\r\n" {
			t.Fatalf("reply %q, %v", line, err)
		}
		if took := time.Since(sent); took < delay {
			t.Fatalf("a reply came back in %v, before the proxy's delay of %v", took, delay)
		}
	}
	c.Close()
	sum := p.traced()
	if !strings.Contains(sum, "trace: 1 connections") || !strings.Contains(sum, "ms per message per connection") {
		t.Fatalf("trace summary %q", sum)
	}
	var per float64
	i := strings.LastIndex(sum, ", ")
	if _, err := fmt.Sscanf(sum[i+2:], "%f ms per message", &per); err != nil || per < float64(delay.Milliseconds()) {
		t.Fatalf("trace summary %q: want at least %v per message (%v)", sum, delay, err)
	}
}
