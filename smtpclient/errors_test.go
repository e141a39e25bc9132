package smtpclient

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"os"
	"syscall"
	"testing"
)

func TestClassify(t *testing.T) {
	if Classify(nil) != nil {
		t.Fatal("Classify(nil) != nil")
	}
	timeoutErr := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	tests := []struct {
		name string
		err  error
		want Error // Err is not compared
	}{
		{"550 5.1.1 during AUTH-like exchange", fmt.Errorf("SMTP AUTH failed: %w", &textproto.Error{Code: 535, Msg: "5.7.8 Authentication failed"}),
			Error{Code: 535, Enhanced: "5.7.8", Text: "Authentication failed", Permanent: true, Stage: StageDial, Misconfigured: true, Fix: fixCredentials}},
		{"421 closing", &textproto.Error{Code: 421, Msg: "4.3.2 Service shutting down"},
			Error{Code: 421, Enhanced: "4.3.2", Text: "Service shutting down", Stage: StageDial, Throttled: true, ConnLost: true}},
		{"451 4.7.1 policy deferral", &textproto.Error{Code: 451, Msg: "4.7.1 Try later"},
			Error{Code: 451, Enhanced: "4.7.1", Text: "Try later", Stage: StageDial, Throttled: true}},
		{"450 4.7.28 gmail rate limit", &textproto.Error{Code: 450, Msg: "4.7.28 Unusual rate\n4.7.28 see https://support.google.com"},
			Error{Code: 450, Enhanced: "4.7.28", Text: "Unusual rate see https://support.google.com", Stage: StageDial, Throttled: true}},
		{"452 not throttled", &textproto.Error{Code: 452, Msg: "4.5.3 Too many recipients"},
			Error{Code: 452, Enhanced: "4.5.3", Text: "Too many recipients", Stage: StageDial}},
		{"no enhanced code", &textproto.Error{Code: 554, Msg: "Transaction failed"},
			Error{Code: 554, Text: "Transaction failed", Stage: StageDial, Permanent: true}},
		{"EOF", io.EOF,
			Error{Text: "connection lost: EOF", Stage: StageDial, ConnLost: true}},
		{"reset", &net.OpError{Op: "read", Net: "tcp", Err: os.NewSyscallError("read", syscall.ECONNRESET)},
			Error{Text: "connection lost: read tcp: read: connection reset by peer", Stage: StageDial, ConnLost: true}},
		{"timeout", timeoutErr,
			Error{Text: "timed out: read tcp: i/o timeout", Stage: StageDial, ConnLost: true, Timeout: true}},
		{"context deadline", fmt.Errorf("dialing: %w", context.DeadlineExceeded),
			Error{Text: "timed out: dialing: context deadline exceeded", Stage: StageDial, ConnLost: true, Timeout: true}},
		{"canceled", context.Canceled,
			Error{Text: "canceled: context canceled", Stage: StageDial, ConnLost: true}},
		{"unknown CA", fmt.Errorf("STARTTLS: %w", x509.UnknownAuthorityError{}),
			Error{Text: "TLS certificate verification failed: STARTTLS: x509: certificate signed by unknown authority", Stage: StageDial, ConnLost: true}},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			Error{Text: "network error: dial tcp: connect: connection refused", Stage: StageDial, ConnLost: true}},
		{"other dial error", errors.New("server does not support SMTP AUTH"),
			Error{Text: "server does not support SMTP AUTH", Stage: StageDial, ConnLost: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Classify(tt.err)
			if got.Err != tt.err {
				t.Errorf("Err = %v, want the original error", got.Err)
			}
			got.Err = nil
			if *got != tt.want {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
			if !errors.Is(Classify(tt.err), tt.err) {
				t.Error("original error not in the chain")
			}
		})
	}
}

func TestIsHardBounce(t *testing.T) {
	tests := []struct {
		e    Error
		want bool
	}{
		{Error{Code: 550, Enhanced: "5.1.1", Permanent: true, Stage: StageRcpt}, true},
		{Error{Code: 550, Enhanced: "5.1.10", Permanent: true, Stage: StageRcpt}, true}, // null MX, RFC 7505
		{Error{Code: 553, Enhanced: "5.1.3", Permanent: true, Stage: StageRcpt}, true},
		{Error{Code: 550, Enhanced: "5.1.8", Permanent: true, Stage: StageRcpt}, false}, // sender's domain
		{Error{Code: 550, Enhanced: "5.7.1", Permanent: true, Stage: StageRcpt}, false}, // policy
		{Error{Code: 550, Permanent: true, Stage: StageRcpt}, false},                    // no enhanced code
		{Error{Code: 550, Enhanced: "5.1.1", Permanent: true, Stage: StageData}, false},
		{Error{Code: 450, Enhanced: "4.1.1", Stage: StageRcpt}, false},
	}
	for _, tt := range tests {
		if got := tt.e.IsHardBounce(); got != tt.want {
			t.Errorf("%+v: IsHardBounce = %v", tt.e, got)
		}
	}
	var nilErr *Error
	if nilErr.IsHardBounce() {
		t.Error("nil IsHardBounce")
	}
}

func TestRedactError(t *testing.T) {
	inner := errors.New("535 5.7.8 bad credentials for user:" + secret)
	err := redactError(fmt.Errorf("dialing: %w", inner), secret)
	if got := err.Error(); got != "dialing: 535 5.7.8 bad credentials for user:xxxxx" {
		t.Errorf("redacted = %q", got)
	}
	if errors.Unwrap(err) != nil {
		t.Error("redacted error keeps a chain that still holds the secret")
	}
	plain := errors.New("fine")
	if redactError(plain, secret) != plain || redactError(plain, "") != plain {
		t.Error("errors without the secret must pass unchanged")
	}
}
