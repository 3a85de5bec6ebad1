package wecom

import (
	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config of one robot: the keys of a "type: wecom" channel.
type Config struct {
	// Endpoint is the robot webhook with its key.
	chanhttp.Endpoint   `yaml:",inline"`
	MessageType         string   `yaml:"message_type"` // markdown (default) or text
	MentionedMobileList []string `yaml:"mentioned_mobile_list"`
	chanhttp.Parts      `yaml:",inline"`

	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the configuration and resolves url_file.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	c.Endpoint.Validate(chk, true, "key")
	chk.OneOf("message_type", c.MessageType, "markdown", "text")
	chk.Phones("mentioned_mobile_list", c.MentionedMobileList, "@all")
	c.Parts.Validate(chk)
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets are the robot key (inside the URL) and any http_config credential.
func (c *Config) Secrets() []string {
	return append(c.Endpoint.Secrets(), c.HTTP.Secrets()...)
}
