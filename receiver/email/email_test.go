package email

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	smtp "github.com/emersion/go-smtp"
	commoncfg "github.com/prometheus/common/config"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

const (
	user     = "alerts"
	password = "smtp-pa55-word"
)

type received struct {
	From string
	To   []string
	Data string
	Auth string
}

type backend struct {
	mu   sync.Mutex
	msgs []received
	auth bool
}

func (b *backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{b: b}, nil }

func (b *backend) messages() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.msgs...)
}

type session struct {
	b    *backend
	cur  received
	user string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, u, p string) error {
		if u != user || p != password {
			return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "authentication failed"}
		}
		s.user = u
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.auth && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	s.cur = received{From: from, Auth: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	switch {
	case strings.HasPrefix(to, "bounce@"):
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
	case strings.HasPrefix(to, "later@"):
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	s.cur.To = append(s.cur.To, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.Data = string(b)
	s.b.mu.Lock()
	s.b.msgs = append(s.b.msgs, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        { s.cur = received{} }
func (s *session) Logout() error { return nil }

func selfSigned(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, ca
}

// startSMTP serves mode (none, starttls, tls) on a loopback port.
func startSMTP(t *testing.T, mode string, auth bool) (*backend, int, string) {
	t.Helper()
	be := &backend{auth: auth}
	s := smtp.NewServer(be)
	s.Domain = "localhost"
	s.ReadTimeout, s.WriteTimeout = 10*time.Second, 10*time.Second
	s.AllowInsecureAuth = mode == "none"
	cert, ca := selfSigned(t)
	var l net.Listener
	var err error
	switch mode {
	case "tls":
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l, err = tls.Listen("tcp", "127.0.0.1:0", s.TLSConfig)
	case "starttls":
		s.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		l, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		l, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(l) }()
	// Closing the listener too ends Serve even when Close ran before Serve
	// registered it (the "server gone" case never connects).
	t.Cleanup(func() { _ = s.Close(); _ = l.Close(); <-done })
	return be, l.Addr().(*net.TCPAddr).Port, ca
}

// newNotifier builds a notifier as the channel builder does, from a
// configuration that passed validation.
func newNotifier(t *testing.T, c Config, tp *tmpl.Templates) *Notifier {
	t.Helper()
	if err := c.Validate("c", nil); err != nil {
		t.Fatal(err)
	}
	n, err := New(&c, tp, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSendsMultipartMailOverEveryTLSMode(t *testing.T) {
	for _, tc := range []struct {
		mode string
		auth bool
	}{
		{"none", false},
		{"none", true},
		{"starttls", true},
		{"tls", true},
	} {
		t.Run(tc.mode+"/auth="+strconv.FormatBool(tc.auth), func(t *testing.T) {
			be, port, ca := startSMTP(t, tc.mode, tc.auth)
			cfg := Config{SMTP: SMTP{Host: "127.0.0.1", Port: port, TLS: tc.mode, TLSConfig: commoncfg.TLSConfig{CAFile: ca}}, From: "alerts@example.com", To: []string{"oncall@example.com", "lead@example.com"}, Timeout: fileconfig.Duration(10 * time.Second)}
			if tc.auth {
				cfg.SMTP.Username, cfg.SMTP.Password = user, password
			}
			n := newNotifier(t, cfg, tmpl.New(tmpl.Options{Language: "zh"}))
			if err := n.Notify(context.Background(), fixture.Notification("LLMHighErrorRate", 2, 100)); err != nil {
				t.Fatalf("notify: %v", err)
			}
			msgs := be.messages()
			if len(msgs) != 1 {
				t.Fatalf("server got %d messages", len(msgs))
			}
			m := msgs[0]
			if strings.Join(m.To, ",") != "oncall@example.com,lead@example.com" || m.From != "alerts@example.com" {
				t.Errorf("envelope %+v", m)
			}
			if tc.auth && m.Auth != user {
				t.Errorf("not authenticated as %s: %q", user, m.Auth)
			}
			parsed, err := mail.ReadMessage(strings.NewReader(m.Data))
			if err != nil {
				t.Fatal(err)
			}
			subject, err := new(mime.WordDecoder).DecodeHeader(parsed.Header.Get("Subject"))
			if err != nil || subject != "[P1][告警:2] LLMHighErrorRate" {
				t.Errorf("subject %q (%v)", subject, err)
			}
			if !strings.HasPrefix(parsed.Header.Get("Content-Type"), "multipart/alternative") {
				t.Errorf("content type %q", parsed.Header.Get("Content-Type"))
			}
			for _, w := range []string{"text/plain", "text/html", "n-LLMHighErrorRate@autoglm-receiver"} {
				if !strings.Contains(m.Data, w) {
					t.Errorf("message misses %q", w)
				}
			}
		})
	}
}

func TestDigestIsOneMessage(t *testing.T) {
	be, port, _ := startSMTP(t, "none", false)
	n := newNotifier(t, Config{SMTP: SMTP{Host: "127.0.0.1", Port: port, TLS: "none"}, From: "a@example.com", To: []string{"b@example.com"}}, tmpl.New(tmpl.Options{Language: "en"}))
	if err := n.Notify(context.Background(), fixture.Notification("First", 1, 10), fixture.Notification("Second", 1, 10)); err != nil {
		t.Fatal(err)
	}
	msgs := be.messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d messages", len(msgs))
	}
	body := strings.ReplaceAll(msgs[0].Data, "=\r\n", "")
	for _, w := range []string{"Alert digest (2 notifications)", "] First", "] Second", "http://grafana:3000/d/autoglm"} {
		if !strings.Contains(body, w) {
			t.Errorf("digest misses %q", w)
		}
	}
}

func TestFailuresAreClassifiedWithoutSecrets(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mode      string
		cfg       func(*Config)
		wantClass notify.Class
		wantCode  string
	}{
		{"wrong password", "starttls", func(c *Config) { c.SMTP.Password = "wrong-" + password }, notify.Config, "535"},
		{"auth required", "none", func(c *Config) { c.SMTP.Username, c.SMTP.Password = "", "" }, notify.Config, "530"},
		{"unknown recipient", "starttls", func(c *Config) { c.To = []string{"bounce@example.com"} }, notify.Permanent, "550"},
		{"temporary failure", "starttls", func(c *Config) { c.To = []string{"later@example.com"} }, notify.Retry, "451"},
		{"untrusted certificate", "starttls", func(c *Config) { c.SMTP.TLSConfig.CAFile = "" }, notify.Config, ""},
		{"server gone", "none", func(c *Config) { c.SMTP.Port = 1 }, notify.Retry, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, port, ca := startSMTP(t, tc.mode, true)
			cfg := Config{SMTP: SMTP{Host: "127.0.0.1", Port: port, TLS: tc.mode, Username: user, Password: password, TLSConfig: commoncfg.TLSConfig{CAFile: ca}}, From: "a@example.com", To: []string{"b@example.com"}, Timeout: fileconfig.Duration(5 * time.Second)}
			tc.cfg(&cfg)
			err := newNotifier(t, cfg, nil).Notify(context.Background(), fixture.Notification("A", 1, 10))
			class, code, _ := notify.Classify(err)
			if class != tc.wantClass || code != tc.wantCode {
				t.Fatalf("got %v (class %s code %q)", err, class, code)
			}
			if strings.Contains(err.Error(), password) {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}

func TestClassifyScrubsEchoedPassword(t *testing.T) {
	err := Classify(errors.New("535 bad credentials for alerts/"+password), password)
	if strings.Contains(err.Error(), password) {
		t.Fatalf("password kept: %v", err)
	}
}
