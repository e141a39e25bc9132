package bounces

import (
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"net/mail"
	"strings"
)

// The bounces some servers still write in prose (Exim's "Mail delivery
// failed", qmail's and Yahoo's "failure notice", older Exchange's
// "Undeliverable"), and the prose part of the reports that carry one, are
// recognised by who sends them or their subject, then read for the first
// reply code in the text.

// bounceSenders are the local parts bounces come from (RFC 5321 section
// 4.5.5: the null reverse-path; the From is the reporting system's).
var bounceSenders = []string{"mailer-daemon", "postmaster", "mail-daemon", "mailerdaemon"}

// bounceSubjects start the subjects of bounces in prose, lower case.
var bounceSubjects = []string{
	"mail delivery failed", "undeliverable", "undelivered mail", "delivery status notification",
	"failure notice", "returned mail", "delivery failure", "mail delivery failure",
	"message not delivered", "delivery has failed", "warning: message", "delivery delayed",
	"mail delivery subsystem", "non-delivery", "could not send message", "delayed mail",
}

// softPhrases and hardPhrases decide a bounce without a reply code.
var (
	softPhrases = []string{"delayed", "will continue", "will retry", "still trying", "temporar", "mailbox is full", "over quota", "quota exceeded"}
	hardPhrases = []string{"permanent", "does not exist", "doesn't exist", "doesn't have a", "user unknown",
		"no such user", "unknown user", "recipient not found", "recipnotfound", "address rejected", "no mailbox", "invalid recipient", "account has been disabled"}
)

// prose reads a bounce written for people: nil when h and text don't look
// like one.
func prose(h mail.Header, text string) *Report {
	if !fromBouncer(h) && !bounceSubject(h.Get("Subject")) {
		return nil
	}
	lower := strings.ToLower(text)
	rep := &Report{Shape: "text"}
	line := ""
	if m := failureCode(text); m != nil {
		rep.Status, line = text[m[2]:m[3]], lineAt(text, m[2])
	} else if m := basicRe.FindStringSubmatchIndex(text); m != nil {
		rep.Status, line = text[m[2]:m[3]], lineAt(text, m[2])
	}
	rep.Diagnostic = diagnostic(line)
	switch {
	case strings.HasPrefix(rep.Status, "5"):
		rep.Kind = Hard
	case strings.HasPrefix(rep.Status, "4"):
		rep.Kind = Soft
	case containsAny(lower, softPhrases):
		rep.Kind = Soft
	case containsAny(lower, hardPhrases):
		rep.Kind = Hard
	default:
		return nil
	}
	return rep
}

// failureCode is the submatch indices of the first enhanced status code of
// a failure (class 4 or 5) in text, nil if none.
func failureCode(text string) []int {
	for _, m := range enhancedRe.FindAllStringSubmatchIndex(text, 20) {
		if text[m[2]] != '2' {
			return m
		}
	}
	return nil
}

func fromBouncer(h mail.Header) bool {
	a, err := mail.ParseAddress(h.Get("From"))
	if err != nil {
		return false
	}
	local := strings.ToLower(a.Address)
	if i := strings.LastIndexByte(local, '@'); i >= 0 {
		local = local[:i]
	}
	for _, s := range bounceSenders {
		if local == s {
			return true
		}
	}
	return false
}

func bounceSubject(s string) bool {
	s = strings.ToLower(strings.TrimSpace(s))
	for _, p := range bounceSubjects {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// lineAt is the line of text holding byte i, with the next lines of its
// paragraph when they are indented (Exim folds the server's reply so).
func lineAt(text string, i int) string {
	start := strings.LastIndexByte(text[:i], '\n') + 1
	end := len(text)
	if j := strings.IndexByte(text[i:], '\n'); j >= 0 {
		end = i + j
	}
	for end < len(text)-1 && (text[end+1] == ' ' || text[end+1] == '\t') {
		j := strings.IndexByte(text[end+1:], '\n')
		if j < 0 {
			end = len(text)
			break
		}
		end += 1 + j
	}
	return text[start:end]
}

func containsAny(s string, subs []string) bool {
	for _, p := range subs {
		if strings.Contains(s, p) {
			return true
		}
	}
	return false
}

// vacationSubjects start the subjects of automatic answers, lower case.
var vacationSubjects = []string{"out of office", "out of the office", "auto:", "autoreply", "auto-reply",
	"automatic reply", "automatische antwort", "abwesenheit", "réponse automatique", "vacation", "away from"}

// isAutoReply tells an automatic answer (RFC 3834 section 5:
// Auto-Submitted other than "no"; the X- fields of servers before it; a
// vacation subject): it is not a bounce, and not counted as one.
func isAutoReply(h mail.Header) bool {
	if v := strings.ToLower(strings.TrimSpace(h.Get("Auto-Submitted"))); v != "" && v != "no" {
		return true
	}
	for _, f := range []string{"X-Autoreply", "X-Autorespond", "X-Auto-Response-Suppress"} {
		if h.Get(f) != "" {
			return true
		}
	}
	if strings.EqualFold(strings.TrimSpace(h.Get("Precedence")), "auto_reply") {
		return true
	}
	s := strings.ToLower(strings.TrimSpace(h.Get("Subject")))
	for _, p := range vacationSubjects {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

func quotedPrintable(r io.Reader) io.Reader { return quotedprintable.NewReader(r) }

// base64Reader decodes a base64 part; encoding/base64 skips the line
// breaks MIME puts every 76 characters.
func base64Reader(r io.Reader) io.Reader { return base64.NewDecoder(base64.StdEncoding, r) }
