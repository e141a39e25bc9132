package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The baseline is the least an SMTP client can do to deliver the same
// messages to the same sink: one message built once (the edition as
// `newsletter preview --format eml` writes it), dot-stuffed once, and sent N
// times over C connections with PIPELINING (RFC 2920). Nothing is queued,
// composed or recorded. The newsletter's rate is judged against it in the
// same run, since the machine's speed varies too much for a fixed figure.
//
// It runs as a child process (sendbench baseline ...), so its CPU time and
// peak RSS come from wait4 exactly like the newsletter's.

// baselineReport is what the child prints on stdout, as JSON.
type baselineReport struct {
	Sent        int64 `json:"sent"`
	Connections int64 `json:"connections"`
	ElapsedNS   int64 `json:"elapsed_ns"`
}

func baselineMain(args []string) int {
	fs := flag.NewFlagSet("sendbench baseline", flag.ContinueOnError)
	addr := fs.String("addr", "", "SMTP server host:port")
	n := fs.Int("n", 0, "messages to send")
	conns := fs.Int("conns", 2, "connections in parallel")
	msgPath := fs.String("msg", "", "the message (RFC 5322, as newsletter preview --format eml writes it)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	// SIGINT stops it after the message in flight, like `newsletter send`,
	// and it still reports what it sent.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	raw, err := os.ReadFile(*msgPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "sendbench baseline: %v\n", err)
		return 1
	}
	rep, err := runBaseline(ctx, *addr, *n, *conns, dotStuff(raw))
	if err != nil {
		fmt.Fprintf(os.Stderr, "sendbench baseline: %v\n", err)
		return 1
	}
	json.NewEncoder(os.Stdout).Encode(rep)
	return 0
}

// dotStuff turns a message into its DATA form once: CRLF line ends, a dot
// doubled at the start of a line (RFC 5321 section 4.5.2), and the closing
// "." line.
func dotStuff(msg []byte) []byte {
	var b bytes.Buffer
	b.Grow(len(msg) + len(msg)/50 + 8)
	for line := range bytes.Lines(msg) {
		line = bytes.TrimRight(line, "\r\n")
		if len(line) > 0 && line[0] == '.' {
			b.WriteByte('.')
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	b.WriteString(".\r\n")
	return b.Bytes()
}

func runBaseline(ctx context.Context, addr string, n, conns int, data []byte) (baselineReport, error) {
	var next, sent, opened atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = baselineConn(ctx, addr, int64(n), data, &next, &sent, &opened)
		}()
	}
	wg.Wait()
	rep := baselineReport{Sent: sent.Load(), Connections: opened.Load(), ElapsedNS: int64(time.Since(start))}
	return rep, errors.Join(errs...)
}

// baselineConn sends messages until the shared counter reaches n. Per
// message it makes one write (writev): the data of the previous message and
// the envelope of the next (MAIL, RCPT, DATA), which RFC 2920 section 3.1
// allows since the message content may open a group; then it reads the four
// replies: 250 to the data, 250, 250, 354.
func baselineConn(ctx context.Context, addr string, n int64, data []byte, next, sent, opened *atomic.Int64) error {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dial %s: %w", addr, err)
	}
	defer c.Close()
	opened.Add(1)
	r := bufio.NewReaderSize(c, 4096)
	if _, err := readReply(r, 220); err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	if _, err := c.Write([]byte("EHLO sendbench.example\r\n")); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	ehlo, err := readReply(r, 250)
	if err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if !strings.Contains(strings.ToUpper(ehlo), "PIPELINING") {
		return errors.New("the server does not offer PIPELINING")
	}
	envelope := func(i int64) []byte {
		return []byte("MAIL FROM:<newsletter@example.com>\r\nRCPT TO:<reader" + strconv.FormatInt(i, 10) + "@example.com>\r\nDATA\r\n")
	}
	readEnvelope := func() error {
		for _, want := range []int{250, 250, 354} {
			if _, err := readReply(r, want); err != nil {
				return fmt.Errorf("envelope: %w", err)
			}
		}
		return nil
	}
	i := next.Add(1)
	if i > n || ctx.Err() != nil {
		return quit(c, r)
	}
	if _, err := c.Write(envelope(i)); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if err := readEnvelope(); err != nil {
		return err
	}
	for {
		// The server is waiting for the data of message i; claim the next
		// message before writing, so its envelope goes in the same write.
		j := next.Add(1)
		more := j <= n && ctx.Err() == nil
		bufs := net.Buffers{data}
		if more {
			bufs = append(bufs, envelope(j))
		}
		if _, err := bufs.WriteTo(c); err != nil {
			return fmt.Errorf("write: %w", err)
		}
		if _, err := readReply(r, 250); err != nil {
			return fmt.Errorf("end of data: %w", err)
		}
		sent.Add(1)
		if !more {
			return quit(c, r)
		}
		if err := readEnvelope(); err != nil {
			return err
		}
	}
}

func quit(c net.Conn, r *bufio.Reader) error {
	if _, err := c.Write([]byte("QUIT\r\n")); err != nil {
		return fmt.Errorf("QUIT: %w", err)
	}
	readReply(r, 221) // the server may just close
	return nil
}

// readReply reads one reply, multi-line or not, and checks its code. It
// returns the reply's text only for the EHLO reply (its keywords); the
// per-message replies are only checked, allocating nothing.
func readReply(r *bufio.Reader, want int) (string, error) {
	var text []byte
	for {
		line, err := r.ReadSlice('\n')
		if err != nil {
			return "", fmt.Errorf("read reply: %w", err)
		}
		if len(line) < 4 || line[0] < '0' || line[0] > '9' || line[1] < '0' || line[1] > '9' || line[2] < '0' || line[2] > '9' {
			return "", fmt.Errorf("bad reply %q", line)
		}
		if code := int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0'); code != want {
			return "", fmt.Errorf("reply %q, want %d", bytes.TrimRight(line, "\r\n"), want)
		}
		if want == 250 && (line[3] == '-' || text != nil) {
			text = append(text, line[4:]...)
		}
		if line[3] != '-' {
			return string(text), nil
		}
	}
}
