package webhook

import (
	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config is the keys of a "type: webhook" channel.
type Config struct {
	chanhttp.Endpoint `yaml:",inline"`
	// Headers are added to every request (values are sent as given).
	Headers map[string]string `yaml:"headers"`

	// The payload is not templated; the keys are accepted so every channel
	// takes the same common keys.
	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the configuration and resolves url_file.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	c.Endpoint.Validate(chk, true, "")
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets are the URL with its credentials, credential-named headers and any http_config credential.
func (c *Config) Secrets() []string {
	out := append(c.Endpoint.Secrets(), chanhttp.HeaderSecrets(c.Headers)...)
	return append(out, c.HTTP.Secrets()...)
}
