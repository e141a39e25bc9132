// Command mailcatcher is the demo's local SMTP server: it accepts every
// message, writes each to a folder as an .eml file, and can pass it on to a
// web inbox such as Mailpit. It is a development tool, not part of the
// newsletter binary.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"newsletter/internal/smtptest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:2525", "address to accept SMTP on")
	dir := flag.String("dir", "", "folder to write each message to as an .eml file")
	relay := flag.String("relay", "", "SMTP server to pass each message on to (host:port), e.g. Mailpit")
	flag.Parse()
	var opts []smtptest.Option
	if *dir != "" {
		if err := os.MkdirAll(*dir, 0o755); err != nil {
			fmt.Fprintf(os.Stderr, "mailcatcher: %v\n", err)
			os.Exit(1)
		}
		opts = append(opts, smtptest.WithDir(*dir))
	}
	if *relay != "" {
		opts = append(opts, smtptest.WithRelay(*relay))
	}
	srv, err := smtptest.Listen(*listen, opts...)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mailcatcher: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("mailcatcher: accepting SMTP on %s\n", srv.Addr())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	srv.Close()
}
