package email

import (
	"crypto/tls"
	"fmt"
	"net/mail"
	"time"

	commoncfg "github.com/prometheus/common/config"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// DefaultTimeout of one SMTP session when the channel sets none.
const DefaultTimeout = 10 * time.Second

// Config is the keys of a "type: email" channel.
type Config struct {
	SMTP SMTP     `yaml:"smtp"`
	From string   `yaml:"from"`
	To   []string `yaml:"to"`
	// Timeout bounds one SMTP session (dial, TLS, auth, send).
	Timeout fileconfig.Duration `yaml:"timeout"`

	tmpl.Config `yaml:",inline"`
}

// SMTP is the outgoing mail server.
type SMTP struct {
	Host     string            `yaml:"host"`
	Port     int               `yaml:"port"`
	Username string            `yaml:"username"`
	Password fileconfig.Secret `yaml:"password"`
	// PasswordFile is read when the configuration loads (and on reload).
	PasswordFile string `yaml:"password_file"`
	// TLS is starttls (default), tls (implicit, port 465) or none.
	TLS                string `yaml:"tls"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
	// TLSConfig adds a CA, a client certificate or a server name to starttls and tls.
	TLSConfig commoncfg.TLSConfig `yaml:"tls_config"`
	// Auth mechanism when a username is set: plain (default) or login.
	Auth string `yaml:"auth"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{} }

// Validate checks the configuration and resolves smtp.password_file.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	s := &c.SMTP
	chk.Required("smtp.host", s.Host, "an email channel")
	if s.Port < 0 || s.Port > 65535 {
		chk.Add("smtp.port", "must be within 1..65535, got %d", s.Port)
	}
	chk.OneOf("smtp.tls", s.TLS, "starttls", "tls", "none")
	chk.OneOf("smtp.auth", s.Auth, "plain", "login")
	chk.Secret("smtp.password", &s.Password, s.PasswordFile)
	if s.Password != "" && s.Username == "" {
		chk.Add("smtp.username", "is required when a password is set")
	}
	s.TLSConfig.SetDirectory(chk.Dir())
	chk.Wrap("smtp.tls_config", s.TLSConfig.Validate())
	if c.From == "" {
		chk.Add("from", "is required for an email channel")
	} else if _, err := mail.ParseAddress(c.From); err != nil {
		chk.Add("from", "%q is not a mail address: %v", c.From, err)
	}
	if len(c.To) == 0 {
		chk.Add("to", "needs at least one recipient")
	}
	for i, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			chk.Add(fmt.Sprintf("to[%d]", i), "%q is not a mail address: %v", to, err)
		}
	}
	if c.Timeout < 0 {
		chk.Add("timeout", "must be >= 0, got %s", c.Timeout)
	}
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets is the SMTP password.
func (c *Config) Secrets() []string { return []string{c.SMTP.Password.Value()} }

// Target is the relay and how many recipients it serves.
func (c *Config) Target() string {
	return fmt.Sprintf("smtp://%s:%d to %d recipients", c.SMTP.Host, c.SMTP.port(), len(c.To))
}

// RequestTimeout is the configured timeout, or DefaultTimeout.
func (c *Config) RequestTimeout() time.Duration {
	if c.Timeout > 0 {
		return c.Timeout.D()
	}
	return DefaultTimeout
}

func (s *SMTP) port() int {
	if s.Port != 0 {
		return s.Port
	}
	switch s.TLS {
	case "tls":
		return 465
	case "none":
		return 25
	}
	return 587
}

func (s *SMTP) tlsConfig() (*tls.Config, error) {
	tc, err := commoncfg.NewTLSConfig(&s.TLSConfig)
	if err != nil {
		return nil, fmt.Errorf("smtp.tls_config: %w", err)
	}
	if tc.ServerName == "" {
		tc.ServerName = s.Host
	}
	tc.InsecureSkipVerify = tc.InsecureSkipVerify || s.InsecureSkipVerify //nolint:gosec // opt-in for lab relays
	tc.MinVersion = max(tc.MinVersion, tls.VersionTLS12)
	return tc, nil
}
