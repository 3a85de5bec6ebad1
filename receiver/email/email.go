// Package email delivers notifications over SMTP (STARTTLS, implicit TLS or
// plain for local relays; optional PLAIN/LOGIN auth) as multipart text + HTML
// messages, one message per call: a single group, or a digest of several.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net/textproto"
	"sort"
	"strconv"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Notifier sends mail.
type Notifier struct {
	cfg  *Config
	tls  *tls.Config
	tmpl *tmpl.Templates
	now  func() time.Time
	// externalURL is used when the payload carries none.
	externalURL string
}

// New returns a notifier for a validated configuration.
func New(cfg *Config, t *tmpl.Templates, now func() time.Time, externalURL string) (*Notifier, error) {
	if t == nil {
		t = tmpl.New(tmpl.Options{})
	}
	if now == nil {
		now = time.Now
	}
	tc, err := cfg.SMTP.tlsConfig()
	if err != nil {
		return nil, err
	}
	return &Notifier{cfg: cfg, tls: tc, tmpl: t, now: now, externalURL: externalURL}, nil
}

// Notify sends one message for ns (a digest when several).
func (n *Notifier) Notify(ctx context.Context, ns ...*notify.Notification) error {
	if len(ns) == 0 {
		return nil
	}
	m, err := n.build(ctx, ns)
	if err != nil {
		return err
	}
	c, err := n.client()
	if err != nil {
		return &notify.Error{Class: notify.Config, Err: err}
	}
	ctx, cancel := context.WithTimeout(ctx, n.cfg.RequestTimeout())
	defer cancel()
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return Classify(err, n.cfg.SMTP.Password.Value())
	}
	return nil
}

func (n *Notifier) build(ctx context.Context, ns []*notify.Notification) (*mail.Msg, error) {
	d := tmpl.NewData(n.tmpl.Language(), n.externalURL, ns...)
	m := mail.NewMsg()
	if err := m.From(n.cfg.From); err != nil {
		return nil, &notify.Error{Class: notify.Config, Err: fmt.Errorf("from address: %w", err)}
	}
	if err := m.To(n.cfg.To...); err != nil {
		return nil, &notify.Error{Class: notify.Config, Err: fmt.Errorf("to address: %w", err)}
	}
	m.Subject(strings.ReplaceAll(n.tmpl.Render(ctx, tmpl.EmailSubject, d), "\n", " "))
	m.SetDateWithValue(n.now())
	// A stable Message-ID lets mail clients fold a re-sent copy into the first.
	m.SetMessageIDWithValue(messageID(ns))
	if d.Priority == notify.P1 {
		m.SetImportance(mail.ImportanceHigh)
	}
	m.SetGenHeader(mail.HeaderXMailer, "autoglm-receiver")
	m.SetBodyString(mail.TypeTextPlain, n.tmpl.Render(ctx, tmpl.EmailText, d))
	m.AddAlternativeString(mail.TypeTextHTML, n.tmpl.RenderHTML(ctx, tmpl.EmailHTML, d))
	return m, nil
}

func messageID(ns []*notify.Notification) string {
	ids := make([]string, 0, len(ns))
	for _, n := range ns {
		ids = append(ids, n.ID)
	}
	sort.Strings(ids)
	id := strings.Join(ids, ".")
	if len(id) > 120 {
		id = id[:120]
	}
	clean := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, id)
	return clean + "@autoglm-receiver"
}

func (n *Notifier) client() (*mail.Client, error) {
	sc := &n.cfg.SMTP
	opts := []mail.Option{mail.WithPort(sc.port())}
	tc := n.tls
	switch sc.TLS {
	case "tls":
		opts = append(opts, mail.WithSSL(), mail.WithTLSConfig(tc))
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory), mail.WithTLSConfig(tc))
	}
	if sc.Username != "" {
		auth := mail.SMTPAuthPlain
		if sc.Auth == "login" {
			auth = mail.SMTPAuthLogin
		}
		if sc.TLS == "none" {
			// Credentials in the clear are the operator's explicit choice for a local relay.
			auth = map[mail.SMTPAuthType]mail.SMTPAuthType{mail.SMTPAuthPlain: mail.SMTPAuthPlainNoEnc, mail.SMTPAuthLogin: mail.SMTPAuthLoginNoEnc}[auth]
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(sc.Username), mail.WithPassword(sc.Password.Value()))
	} else {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthNoAuth))
	}
	opts = append(opts, mail.WithTimeout(n.cfg.RequestTimeout()))
	return mail.NewClient(sc.Host, opts...)
}

// Classify maps an SMTP failure to a delivery outcome: 4xx retry, 5xx
// permanent, authentication failures (530, 534, 535, 538) and TLS/auth
// setup problems are configuration errors; network errors retry. password
// is scrubbed from the text in case a server echoes it.
func Classify(err error, password string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if password != "" {
		msg = strings.ReplaceAll(msg, password, "<secret>")
	}
	clean := errors.New("smtp: " + msg)
	code := 0
	var se *mail.SendError
	var te *textproto.Error
	switch {
	case errors.As(err, &se) && se.ErrorCode() > 0:
		code = se.ErrorCode()
	case errors.As(err, &te):
		code = te.Code
	}
	c := ""
	if code > 0 {
		c = strconv.Itoa(code)
	}
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	switch {
	case code == 530 || code == 534 || code == 535 || code == 538 || code == 454 && strings.Contains(strings.ToLower(msg), "auth"):
		return &notify.Error{Class: notify.Config, Code: c, Err: clean}
	case code >= 400 && code < 500:
		return &notify.Error{Class: notify.Retry, Code: c, Err: clean}
	case code >= 500:
		return &notify.Error{Class: notify.Permanent, Code: c, Err: clean}
	case errors.As(err, &certErr), errors.As(err, &unknownAuth),
		errors.Is(err, mail.ErrPlainAuthNotSupported), errors.Is(err, mail.ErrLoginAuthNotSupported),
		strings.Contains(msg, "does not support SMTP AUTH"), strings.Contains(msg, "STARTTLS"):
		return &notify.Error{Class: notify.Config, Err: clean}
	}
	return &notify.Error{Class: notify.Retry, Err: clean}
}
