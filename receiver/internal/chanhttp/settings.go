package chanhttp

import (
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
)

// DefaultTimeout of one provider request when the channel sets none.
const DefaultTimeout = 10 * time.Second

// Settings are the HTTP client keys of every HTTP channel: the timeout of
// one provider request and Prometheus' http_config (proxy, TLS, extra
// authentication), as in Alertmanager's integrations.
type Settings struct {
	Timeout    fileconfig.Duration `yaml:"timeout"`
	HTTPConfig HTTPConfig          `yaml:"http_config"`
	// Transport, when set, replaces the network (tests reach provider fakes in-process).
	Transport http.RoundTripper `yaml:"-"`
}

// HTTPConfig is Prometheus' HTTPClientConfig, decoded without its own
// validation so that Settings.Validate reports problems with the channel's
// key and line instead of a bare message.
type HTTPConfig commoncfg.HTTPClientConfig

// UnmarshalYAML starts from Prometheus' defaults.
func (h *HTTPConfig) UnmarshalYAML(unmarshal func(any) error) error {
	type plain commoncfg.HTTPClientConfig
	*h = HTTPConfig(commoncfg.DefaultHTTPClientConfig)
	return unmarshal((*plain)(h))
}

func (h *HTTPConfig) common() *commoncfg.HTTPClientConfig { return (*commoncfg.HTTPClientConfig)(h) }

// DefaultSettings follows redirects and allows HTTP/2, like Prometheus' default client.
func DefaultSettings() Settings {
	return Settings{HTTPConfig: HTTPConfig(commoncfg.DefaultHTTPClientConfig)}
}

// Validate checks the settings and makes relative file paths of http_config
// relative to the configuration file.
func (s *Settings) Validate(c *chanconf.Checker) {
	if s.Timeout < 0 {
		c.Add("timeout", "must be >= 0, got %s", s.Timeout)
	}
	s.HTTPConfig.common().SetDirectory(c.Dir())
	c.Wrap("http_config", s.HTTPConfig.common().Validate())
}

// RequestTimeout is the configured timeout, or DefaultTimeout.
func (s *Settings) RequestTimeout() time.Duration {
	if s.Timeout > 0 {
		return s.Timeout.D()
	}
	return DefaultTimeout
}

// Client builds the channel's HTTP client.
func (s *Settings) Client(name string) (*http.Client, error) {
	if s.Transport != nil {
		return &http.Client{Transport: s.Transport}, nil
	}
	return commoncfg.NewClientFromConfig(*s.HTTPConfig.common(), name)
}

// Secrets lists the credentials of http_config (inline and from files) for
// redaction.
func (s *Settings) Secrets() []string {
	h := &s.HTTPConfig
	var out []string
	add := func(inline commoncfg.Secret, file string) {
		out = append(out, string(inline))
		if file != "" {
			if b, err := os.ReadFile(file); err == nil {
				out = append(out, strings.TrimSpace(string(b)))
			}
		}
	}
	if h.BasicAuth != nil {
		add(h.BasicAuth.Password, h.BasicAuth.PasswordFile)
	}
	if h.Authorization != nil {
		add(h.Authorization.Credentials, h.Authorization.CredentialsFile)
	}
	if h.OAuth2 != nil {
		add(h.OAuth2.ClientSecret, h.OAuth2.ClientSecretFile)
	}
	add(h.BearerToken, h.BearerTokenFile)
	if h.ProxyURL.URL != nil {
		out = append(out, URLSecrets(h.ProxyURL.String())...)
	}
	for _, vs := range h.ProxyConnectHeader {
		for _, v := range vs {
			out = append(out, string(v))
		}
	}
	if h.HTTPHeaders != nil {
		for _, hd := range h.HTTPHeaders.Headers {
			for _, v := range hd.Secrets {
				add(v, "")
			}
			for _, f := range hd.Files {
				add("", f)
			}
		}
	}
	return out
}

// sensitiveParams are query parameters that carry credentials.
var sensitiveParams = map[string]bool{
	"access_token": true, "accesstoken": true, "token": true, "key": true, "secret": true, "sign": true,
	"signature": true, "password": true, "passwd": true, "pwd": true, "api_key": true, "apikey": true,
	"access_key": true, "accesskeyid": true, "access_key_secret": true, "secret_key": true,
	"secretid": true, "secret_id": true, "auth": true, "authorization": true,
}

// IsSensitive reports whether a parameter or header name carries credentials.
func IsSensitive(name string) bool { return sensitiveParams[strings.ToLower(name)] }

// URLSecrets returns the whole URL and the credentials inside it (values of
// sensitive query parameters, the user-info password) for redaction.
func URLSecrets(raw string) []string {
	if raw == "" {
		return nil
	}
	out := []string{raw}
	u, err := url.Parse(raw)
	if err != nil {
		return out
	}
	for k, vs := range u.Query() {
		if IsSensitive(k) {
			out = append(out, vs...)
		}
	}
	if u.User != nil {
		if p, ok := u.User.Password(); ok {
			out = append(out, p)
		}
	}
	return out
}

// HeaderSecrets returns the values of credential-named headers.
func HeaderSecrets(h map[string]string) []string {
	var out []string
	for k, v := range h {
		if IsSensitive(k) || strings.EqualFold(k, "Authorization") || strings.Contains(strings.ToLower(k), "token") || strings.Contains(strings.ToLower(k), "key") {
			out = append(out, v)
		}
		out = append(out, URLSecrets(v)...)
	}
	return out
}

// Endpoint is the url / url_file pair of an HTTP channel. Robot and gateway
// URLs carry tokens, so the URL is a secret: it never prints, and only its
// scheme, host and path are shown.
type Endpoint struct {
	URL     fileconfig.Secret `yaml:"url"`
	URLFile string            `yaml:"url_file"`
}

// Validate resolves url_file and checks the URL; wantQuery names a query
// parameter that must be present ("" for none).
func (e *Endpoint) Validate(c *chanconf.Checker, required bool, wantQuery string) {
	c.Secret("url", &e.URL, e.URLFile)
	c.URL("url", e.URL.Value(), required, wantQuery)
}

// Secrets are the URL and the credentials inside it.
func (e *Endpoint) Secrets() []string { return URLSecrets(e.URL.Value()) }

// Target is the URL without query, user info or fragment.
func (e *Endpoint) Target() string { return Redact(e.URL.Value()) }
