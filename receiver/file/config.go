package file

import (
	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config is the keys of a "type: file" channel.
type Config struct {
	// Path is appended to; "-" or "" means standard output.
	Path string `yaml:"path"`
	// Timeout is accepted like on every channel; a local write does not use it.
	Timeout fileconfig.Duration `yaml:"timeout"`

	tmpl.Config `yaml:",inline"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{} }

// Validate checks the configuration.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	if c.Timeout < 0 {
		chk.Add("timeout", "must be >= 0, got %s", c.Timeout)
	}
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets: a file channel has none.
func (c *Config) Secrets() []string { return nil }

// Target is the file, or stdout.
func (c *Config) Target() string {
	if c.Path == "" || c.Path == "-" {
		return "stdout"
	}
	return c.Path
}
