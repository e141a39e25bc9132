// Package dnstest is an in-process authoritative DNS server for tests
// (github.com/miekg/dns), answering over UDP and TCP on one loopback port
// from records given in zone-file syntax.
package dnstest

import (
	"net"
	"strings"
	"sync"
	"testing"

	"github.com/miekg/dns"
)

// Server answers from its records; a name it has no record of is NXDOMAIN.
type Server struct {
	Addr string // host:port, UDP and TCP

	mu      sync.Mutex
	records map[string][]dns.RR // by lower-case FQDN
}

// Start serves the records (zone-file lines, e.g. `example.com. 300 IN TXT "v=spf1 -all"`)
// until the test ends.
func Start(t testing.TB, records ...string) *Server {
	t.Helper()
	s := &Server{records: map[string][]dns.RR{}}
	for _, r := range records {
		s.Add(t, r)
	}
	// Retry until a port is free for both protocols.
	for range 20 {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ln, err := net.Listen("tcp", pc.LocalAddr().String())
		if err != nil {
			pc.Close()
			continue
		}
		s.Addr = pc.LocalAddr().String()
		udp := &dns.Server{PacketConn: pc, Handler: s}
		tcp := &dns.Server{Listener: ln, Handler: s}
		go udp.ActivateAndServe()
		go tcp.ActivateAndServe()
		t.Cleanup(func() { udp.Shutdown(); tcp.Shutdown() })
		return s
	}
	t.Fatal("dnstest: no port free for UDP and TCP")
	return nil
}

// Add adds a record, in zone-file syntax.
func (s *Server) Add(t testing.TB, record string) {
	t.Helper()
	rr, err := dns.NewRR(record)
	if err != nil {
		t.Fatalf("dnstest: record %q: %v", record, err)
	}
	s.AddRR(rr)
}

// AddRR adds a record built in Go (a TXT record of several strings, say).
func (s *Server) AddRR(rr dns.RR) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name := strings.ToLower(rr.Header().Name)
	s.records[name] = append(s.records[name], rr)
}

// ServeDNS answers a query from the records.
func (s *Server) ServeDNS(w dns.ResponseWriter, req *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	if len(req.Question) != 1 {
		m.Rcode = dns.RcodeFormatError
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	s.mu.Lock()
	rrs, known := s.records[strings.ToLower(q.Name)]
	for _, rr := range rrs {
		if rr.Header().Rrtype == q.Qtype {
			m.Answer = append(m.Answer, rr)
		}
	}
	s.mu.Unlock()
	if !known {
		m.Rcode = dns.RcodeNameError
	}
	w.WriteMsg(m)
}
