package smtpclient

import "io"

// wireWriter is Conn's output buffer: everything written between two
// flushes, a message and the next message's commands included, leaves in
// one write, one system call. It grows to the largest such run (a message
// plus a few commands) and is reused.
//
// One contiguous write, not a vectored one from where the message's pieces
// lie: the receiving server handles a message that arrives in one piece with
// less work than the same bytes arriving as a message's dozen or so small
// pieces, and the server's time per message is what bounds throughput; the
// copy into the buffer costs the client less than that.
type wireWriter struct {
	w   io.Writer
	buf []byte
	err error // sticky, as bufio.Writer's
}

func newWireWriter(w io.Writer) *wireWriter {
	return &wireWriter{w: w, buf: make([]byte, 0, 64<<10)}
}

func (w *wireWriter) writeString(s string) { w.buf = append(w.buf, s...) }

func (w *wireWriter) writeByte(b byte) { w.buf = append(w.buf, b) }

func (w *wireWriter) write(p []byte) { w.buf = append(w.buf, p...) }

// flush sends everything written since the last flush. After an error every
// flush fails.
func (w *wireWriter) flush() error {
	defer func() { w.buf = w.buf[:0] }()
	if w.err != nil || len(w.buf) == 0 {
		return w.err
	}
	_, w.err = w.w.Write(w.buf)
	return w.err
}
