// Command mailcatcher is the demo's local SMTP server: it accepts every
// message, writes each to a folder as an .eml file, and can pass it on to a
// web inbox such as Mailpit. It is a development tool, not part of the
// newsletter binary.
//
// A message is kept once the .eml file is written; passing it on happens in
// the background, and a failure there (the web inbox did not start, or
// stopped) is logged on stderr, never answered with a 4xx: the sender would
// retry a message that is already kept.
package main

import (
	"flag"
	"fmt"
	"log/slog"
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
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	opts := []smtptest.Option{smtptest.WithDiscard(), smtptest.WithLog(log)}
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
	if *relay != "" {
		fmt.Printf("mailcatcher: passing messages on to %s\n", *relay)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Printf("mailcatcher: accepted %d messages, passed on %d, failed to pass on %d\n",
		srv.Accepted(), srv.Relayed(), srv.RelayFailed())
	srv.Close()
}
