package dingtalk

import (
	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config of one robot: the keys of a "type: dingtalk" channel.
type Config struct {
	// Endpoint is the robot webhook with its access_token.
	chanhttp.Endpoint `yaml:",inline"`
	// Secret enables signing when set (the SEC... value of the robot's "加签").
	Secret         fileconfig.Secret `yaml:"secret"`
	SecretFile     string            `yaml:"secret_file"`
	AtMobiles      []string          `yaml:"at_mobiles"`
	AtUserIDs      []string          `yaml:"at_user_ids"`
	AtAll          bool              `yaml:"at_all"`
	MessageType    string            `yaml:"message_type"` // markdown (default) or actioncard
	chanhttp.Parts `yaml:",inline"`

	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the configuration and resolves url_file and secret_file.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	c.Endpoint.Validate(chk, true, "access_token")
	chk.Secret("secret", &c.Secret, c.SecretFile)
	chk.OneOf("message_type", c.MessageType, "markdown", "actioncard")
	chk.Phones("at_mobiles", c.AtMobiles)
	c.Parts.Validate(chk)
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets are the robot token (inside the URL), the signing secret and any http_config credential.
func (c *Config) Secrets() []string {
	return append(append(c.Endpoint.Secrets(), c.Secret.Value()), c.HTTP.Secrets()...)
}
