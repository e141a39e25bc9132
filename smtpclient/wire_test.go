package smtpclient

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
)

// Whatever mix of commands, reused scratch bytes and message data is
// written, the peer reads exactly those bytes in order.
func TestWireWriterKeepsOrder(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan []byte, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		b, _ := io.ReadAll(c)
		got <- b
	}()
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	var other bytes.Buffer
	tcpW, otherW := newWireWriter(conn), newWireWriter(&other)
	var want bytes.Buffer
	rng := rand.New(rand.NewPCG(3, 4))
	scratch := make([]byte, 0, 16)
	for round := range 200 {
		for range rng.IntN(8) + 1 {
			switch rng.IntN(4) {
			case 0:
				s := "MAIL FROM:<a@example.com>\r\n"
				tcpW.writeString(s)
				otherW.writeString(s)
				want.WriteString(s)
			case 1:
				tcpW.writeByte('>')
				otherW.writeByte('>')
				want.WriteByte('>')
			case 2:
				// A reused scratch buffer (like SIZE=): copied, so its
				// next use can't change what was queued.
				scratch = append(scratch[:0], byte('0'+round%10), byte('0'+rng.IntN(10)))
				tcpW.write(scratch)
				otherW.write(scratch)
				want.Write(scratch)
			default:
				big := bytes.Repeat([]byte{byte('a' + round%26)}, 1+rng.IntN(70000))
				tcpW.write(big)
				otherW.write(big)
				want.Write(big)
			}
		}
		if err := tcpW.flush(); err != nil {
			t.Fatal(err)
		}
		if err := otherW.flush(); err != nil {
			t.Fatal(err)
		}
	}
	conn.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Fatalf("TCP peer read %d bytes, want %d (or they differ)", len(b), want.Len())
	}
	if !bytes.Equal(other.Bytes(), want.Bytes()) {
		t.Fatalf("writer got %d bytes, want %d (or they differ)", other.Len(), want.Len())
	}
}

type failingWriter struct{ n int }

func (f *failingWriter) Write(p []byte) (int, error) {
	f.n++
	return 0, errors.New("broken pipe")
}

func TestWireWriterErrorSticks(t *testing.T) {
	fw := &failingWriter{}
	w := newWireWriter(fw)
	w.writeString("QUIT\r\n")
	if err := w.flush(); err == nil {
		t.Fatal("flush after a failed write: no error")
	}
	w.writeString("NOOP\r\n")
	if err := w.flush(); err == nil || fw.n != 1 {
		t.Fatalf("second flush: %v after %d writes; want the first error, no new write", err, fw.n)
	}
}
