package smtptest

import (
	"fmt"
	"net"
	"net/smtp"
	"time"
)

// relay forwards m to a plain SMTP server with the standard library client. A fixed
// deadline keeps a dead relay from blocking the catcher forever.
func relay(addr string, m Message) error {
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return fmt.Errorf("dialing relay %s: %w", addr, err)
	}
	if err := conn.SetDeadline(time.Now().Add(time.Minute)); err != nil {
		conn.Close()
		return fmt.Errorf("setting relay deadline: %w", err)
	}
	return relayOn(conn, addr, m)
}

// relayOn delivers m over an already connected conn using net/smtp. No STARTTLS and
// no AUTH: the relay target is a local development catcher such as Mailpit.
func relayOn(conn net.Conn, addr string, m Message) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		conn.Close()
		return fmt.Errorf("parsing relay address: %w", err)
	}
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return fmt.Errorf("greeting from relay %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Mail(m.From); err != nil {
		return fmt.Errorf("relay MAIL FROM: %w", err)
	}
	for _, rcpt := range m.To {
		if err := c.Rcpt(rcpt); err != nil {
			return fmt.Errorf("relay RCPT TO %s: %w", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("relay DATA: %w", err)
	}
	if _, err := w.Write(m.Data); err != nil {
		return fmt.Errorf("relay writing message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("relay end of DATA: %w", err)
	}
	if err := c.Quit(); err != nil {
		return fmt.Errorf("relay QUIT: %w", err)
	}
	return nil
}
