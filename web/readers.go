package web

import (
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strconv"
	"time"

	"newsletter/mailer"
	"newsletter/subscribers"
	"newsletter/templates"
)

// maxFormBytes bounds a form's body: an address, a name and a token fit in
// far less.
const maxFormBytes = 16 << 10

// subscribeForm is the sign-up page.
func (s *Server) subscribeForm(w http.ResponseWriter, r *http.Request) {
	s.page(w, http.StatusOK, "subscribe.html", s.subscribePage(w, r, templates.SubscribePage{}))
}

func (s *Server) subscribePage(w http.ResponseWriter, r *http.Request, p templates.SubscribePage) templates.SubscribePage {
	p.SiteName = s.SiteName
	p.Action = s.basePath + "/subscribe"
	p.CSRF = s.csrf.token(w, r)
	p.ArchiveURL = s.basePath + "/editions"
	return p
}

// subscribe takes the sign-up form. Whatever the address's standing, a
// valid one gets the same page with the same status ("check your inbox"),
// so the form tells nobody who is subscribed; the confirmation email, if
// any, goes out after the answer (see Outbox).
func (s *Server) subscribe(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) || !s.checkCSRF(w, r, s.basePath+"/subscribe") {
		return
	}
	email, name := r.PostFormValue("email"), r.PostFormValue("name")
	// The honeypot: people don't see the field, bots fill it in. They get
	// the page a person gets, and nothing is stored or sent.
	if r.PostFormValue("website") != "" {
		s.Log.Info("sign-up refused", "reason", "honeypot")
		s.checkInbox(w, email)
		return
	}
	addr, err := subscribers.NormalizeAddress(email)
	if err != nil {
		s.page(w, http.StatusBadRequest, "subscribe.html", s.subscribePage(w, r, templates.SubscribePage{
			Email: email, Name: name, Error: addressError(err),
		}))
		return
	}
	if msg := nameError(name); msg != "" {
		s.page(w, http.StatusBadRequest, "subscribe.html", s.subscribePage(w, r, templates.SubscribePage{
			Email: email, Name: name, NameError: msg,
		}))
		return
	}
	// Only a form that would be stored counts against the client's
	// limit: someone fixing a typo isn't held back.
	if !s.allowIP(w, r) {
		return
	}
	res, err := s.Subscribers.SignUp(r.Context(), addr, name, s.source(r, subscribers.MethodForm))
	if err != nil {
		s.Log.Error("sign-up failed", "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "We could not sign you up just now. Please try again in a minute."))
		return
	}
	s.Log.Info("sign-up", "subscriber", res.SubscriberID, "outcome", res.Outcome, "mailed", res.Mailing != nil)
	s.Counts.SignUps.Add(1)
	s.mailConfirmation(res.Mailing)
	s.checkInbox(w, addr)
}

// checkInbox is the answer to every accepted sign-up.
func (s *Server) checkInbox(w http.ResponseWriter, addr string) {
	s.page(w, http.StatusOK, "message.html", messageLink("Check your inbox",
		fmt.Sprintf("We’ve sent a link to %s to confirm the subscription, unless that address is already subscribed. "+
			"Nothing happens until you press it, and it works for %s. "+
			"No email after a few minutes? Look in your spam folder, or check the address and sign up again.", addr, s.validFor()),
		s.basePath+"/editions", "Read past editions"))
}

// addressError is what the form says about an address it refuses: the
// reason NormalizeAddress gives, which names the part to fix.
func addressError(err error) string {
	return "Please check the address: " + err.Error() + "."
}

func nameError(name string) string {
	if subscribers.CheckName(name) != nil {
		return fmt.Sprintf("Please shorten the name to %d characters or fewer.", subscribers.MaxNameLen)
	}
	return ""
}

// confirmPage is the GET of a confirmation link: it shows a button and
// changes nothing, since link scanners and previews fetch links.
func (s *Server) confirmPage(w http.ResponseWriter, r *http.Request) {
	info, err := s.Subscribers.LookupToken(r.Context(), r.PathValue("token"))
	if err != nil {
		s.tokenError(w, err)
		return
	}
	p := templates.ConfirmPage{
		SiteName:    s.SiteName,
		Action:      s.basePath + "/confirm/" + r.PathValue("token"),
		CSRF:        s.csrf.token(w, r),
		MaskedEmail: templates.MaskEmail(info.Email),
	}
	if info.Purpose == subscribers.PurposeChangeAddress {
		p.ChangeAddress = true
		p.MaskedEmail = templates.MaskEmail(*info.NewEmail)
	}
	s.page(w, http.StatusOK, "confirm.html", p)
}

// confirm is the confirmation page's button.
func (s *Server) confirm(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) || !s.checkCSRF(w, r, s.basePath+"/confirm/"+r.PathValue("token")) {
		return
	}
	c, err := s.Subscribers.ConfirmToken(r.Context(), r.PathValue("token"), s.source(r, subscribers.MethodForm))
	if errors.Is(err, subscribers.ErrAddressTaken) {
		s.page(w, http.StatusConflict, "message.html", message("That address has its own subscription",
			"Nothing changed: the subscription you wanted to move stays at its old address. To stop either one, use the unsubscribe link in its emails."))
		return
	}
	if err != nil {
		s.tokenError(w, err)
		return
	}
	s.Log.Info("confirmed", "subscriber", c.SubscriberID, "purpose", string(c.Purpose), "already", c.Already)
	if !c.Already && c.Purpose != subscribers.PurposeChangeAddress {
		s.Counts.Confirmations.Add(1)
	}
	archive := s.basePath + "/editions"
	if c.Purpose == subscribers.PurposeChangeAddress {
		s.page(w, http.StatusOK, "message.html", messageLink("Your address is changed",
			fmt.Sprintf("%s now comes to %s.", s.SiteName, templates.MaskEmail(c.Email)), archive, "Read past editions"))
		return
	}
	s.page(w, http.StatusOK, "message.html", messageLink("You are subscribed",
		fmt.Sprintf("The next edition of %s will come to %s. Every email has a link to unsubscribe, or to change your name or address.", s.SiteName, templates.MaskEmail(c.Email)),
		archive, "Read past editions"))
}

// tokenError answers a confirmation link that can't be used.
func (s *Server) tokenError(w http.ResponseWriter, err error) {
	signUp := s.basePath + "/subscribe"
	switch {
	case errors.Is(err, subscribers.ErrTokenNotFound):
		s.page(w, http.StatusNotFound, "message.html", messageLink("This link is not valid",
			"Check that the whole link from the email was copied.", signUp, "Sign up"))
	case errors.Is(err, subscribers.ErrTokenExpired):
		s.page(w, http.StatusGone, "message.html", messageLink("This link has expired",
			fmt.Sprintf("Confirmation links work for %s. Sign up again to get a new one.", s.validFor()), signUp, "Sign up again"))
	case errors.Is(err, subscribers.ErrTokenUsed):
		s.page(w, http.StatusGone, "message.html", messageLink("This link has been used",
			"Each confirmation link works once, and a later one replaces it. If you pressed it, there is nothing more to do.", s.basePath+"/editions", "Read past editions"))
	default:
		s.Log.Error("confirmation link", "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
	}
}

// resubscribe is "subscribe again" on the page of someone who left: a
// confirmation email; nothing changes until it is pressed.
func (s *Server) resubscribe(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sub, ok := s.subscriber(w, r)
	if !ok || !s.checkCSRF(w, r, s.basePath+"/u/"+r.PathValue("token")) || !s.allowIP(w, r) {
		return
	}
	m, err := s.Subscribers.RequestConfirmation(r.Context(), sub.ID, s.source(r, subscribers.MethodForm))
	if err != nil {
		s.Log.Error("resubscribe failed", "subscriber", sub.ID, "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return
	}
	s.Log.Info("resubscribe requested", "subscriber", sub.ID, "mailed", m != nil)
	s.mailConfirmation(m)
	notice := fmt.Sprintf("We’ve sent a confirmation link to %s. You are back on the list when you press it; it works for %s.", templates.MaskEmail(sub.Email), s.validFor())
	if sub.Status == subscribers.Confirmed {
		notice = "You are subscribed."
	}
	s.managePage(w, r, http.StatusOK, sub, s.csrf.token(w, r), templates.UnsubscribePage{Notice: notice})
}

// changeName sets the subscription's name at once: it only changes the
// greeting, and whoever holds the link may change it.
func (s *Server) changeName(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sub, ok := s.subscriber(w, r)
	if !ok || !s.checkCSRF(w, r, s.basePath+"/u/"+r.PathValue("token")) {
		return
	}
	name := r.PostFormValue("name")
	if msg := nameError(name); msg != "" {
		s.managePage(w, r, http.StatusBadRequest, sub, s.csrf.token(w, r), templates.UnsubscribePage{Name: name, NameError: msg})
		return
	}
	if err := s.Subscribers.ChangeName(r.Context(), sub.ID, name); err != nil {
		s.Log.Error("change name failed", "subscriber", sub.ID, "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return
	}
	s.Log.Info("name changed", "subscriber", sub.ID)
	sub.Name = subscribers.CleanName(name)
	s.managePage(w, r, http.StatusOK, sub, s.csrf.token(w, r), templates.UnsubscribePage{Notice: "Your name is saved."})
}

// changeEmail mails a link to the new address; the subscription moves
// when it is pressed. The page says the same whether or not the new
// address has a subscription of its own (only its owner finds out).
func (s *Server) changeEmail(w http.ResponseWriter, r *http.Request) {
	if !s.parseForm(w, r) {
		return
	}
	sub, ok := s.subscriber(w, r)
	if !ok || !s.checkCSRF(w, r, s.basePath+"/u/"+r.PathValue("token")) {
		return
	}
	typed := r.PostFormValue("email")
	addr, err := subscribers.NormalizeAddress(typed)
	if err != nil {
		s.managePage(w, r, http.StatusBadRequest, sub, s.csrf.token(w, r), templates.UnsubscribePage{NewEmail: typed, EmailError: addressError(err)})
		return
	}
	if !s.allowIP(w, r) {
		return
	}
	m, err := s.Subscribers.RequestAddressChange(r.Context(), sub.ID, addr)
	if errors.Is(err, subscribers.ErrSameAddress) {
		s.managePage(w, r, http.StatusBadRequest, sub, s.csrf.token(w, r), templates.UnsubscribePage{NewEmail: typed, EmailError: "That is already this subscription’s address."})
		return
	}
	if err != nil {
		s.Log.Error("change address failed", "subscriber", sub.ID, "err", err)
		s.page(w, http.StatusInternalServerError, "message.html", message("Something went wrong", "Please try again in a minute."))
		return
	}
	s.Log.Info("address change requested", "subscriber", sub.ID, "mailed", m != nil)
	s.mailConfirmation(m)
	s.managePage(w, r, http.StatusOK, sub, s.csrf.token(w, r), templates.UnsubscribePage{
		Notice: fmt.Sprintf("We’ve sent a link to %s: check that inbox. The subscription moves there when you press it; it works for %s.", addr, s.validFor()),
	})
}

// mailConfirmation renders and queues a confirmation email; nil does
// nothing.
func (s *Server) mailConfirmation(m *subscribers.Mailing) {
	if m == nil {
		return
	}
	if s.Outbox == nil || s.From == nil {
		s.Log.Error("confirmation email not sent: no outbox configured", "subscriber", m.SubscriberID)
		return
	}
	msg, err := s.Templates.ConfirmEmail(templates.ConfirmEmail{
		SiteName:      s.SiteName,
		Email:         m.To,
		ConfirmURL:    s.BaseURL + "/confirm/" + m.Token,
		ChangeAddress: m.Purpose == subscribers.PurposeChangeAddress,
		ValidFor:      s.validFor(),
		BaseURL:       s.BaseURL,
	})
	if err != nil {
		s.Log.Error("confirmation email not rendered", "subscriber", m.SubscriberID, "err", err)
		return
	}
	s.Outbox.Enqueue(m.SubscriberID, mailer.Message{
		From: s.From,
		// No name: the owner of the address hasn't confirmed the one typed
		// in the form, and it would be mailed from the newsroom's domain.
		To:      &mail.Address{Address: subscribers.SMTPAddress(m.To)},
		Subject: msg.Subject,
		Text:    msg.Text,
		HTML:    msg.HTML,
		// RFC 3834 section 5: sent by a program, not a person, so
		// auto-responders leave it alone.
		Headers:       map[string]string{"Auto-Submitted": "auto-generated"},
		DKIM:          s.DKIM,
		Transactional: true,
	})
}

// validFor is how long a confirmation link works, as the pages say it.
func (s *Server) validFor() string {
	return humanDuration(s.Subscribers.Confirm.WithDefaults().TTL)
}

// humanDuration says d in the largest whole unit: "7 days", "36 hours".
func humanDuration(d time.Duration) string {
	unit := func(n int64, one string) string {
		if n == 1 {
			return "1 " + one
		}
		return strconv.FormatInt(n, 10) + " " + one + "s"
	}
	switch {
	case d >= 24*time.Hour && d%(24*time.Hour) == 0:
		return unit(int64(d/(24*time.Hour)), "day")
	case d >= time.Hour && d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour")
	default:
		return unit(max(1, int64(d/time.Minute)), "minute")
	}
}

// source is the consent record's "how and from where" of r.
func (s *Server) source(r *http.Request, m subscribers.Method) subscribers.Source {
	src := subscribers.Source{Method: m, UserAgent: r.UserAgent()}
	if ip := clientIP(r, s.TrustedProxies); ip.IsValid() {
		src.IP = ip.String()
	}
	return src
}

// parseForm reads a POSTed form of bounded size, answering 400 if it can't.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request) bool {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		s.page(w, http.StatusBadRequest, "message.html", message("Bad request", "The form could not be read."))
		return false
	}
	return true
}

// checkCSRF answers 403 with a way back to the form unless the POST came
// from one of our pages (see csrf).
func (s *Server) checkCSRF(w http.ResponseWriter, r *http.Request, formURL string) bool {
	if s.csrf.check(r) {
		return true
	}
	s.Log.Info("form refused", "route", r.Pattern, "reason", "csrf")
	s.page(w, http.StatusForbidden, "message.html", messageLink("Please try that again",
		"The form was too old, or came from another site, or your browser didn’t send its cookie. Open the page again and resend the form.",
		formURL, "Open the page again"))
	return false
}

// allowIP answers 429 when the client used up its share of the forms
// that send email.
func (s *Server) allowIP(w http.ResponseWriter, r *http.Request) bool {
	if s.limiter.allow(limiterKey(clientIP(r, s.TrustedProxies)), s.now()) {
		return true
	}
	s.Log.Info("form refused", "route", r.Pattern, "reason", "rate limit")
	w.Header().Set("Retry-After", strconv.Itoa(int(s.limiter.retryAfter().Seconds())))
	s.page(w, http.StatusTooManyRequests, "message.html", message("Too many requests",
		"This connection has sent that form too often. Please wait a few minutes, then try again."))
	return false
}
