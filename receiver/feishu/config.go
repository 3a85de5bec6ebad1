package feishu

import (
	"fmt"
	"net/url"
	"strings"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config is a Feishu / Lark custom robot: the keys of a "type: feishu" channel.
type Config struct {
	// Endpoint is the robot webhook, https://open.feishu.cn/open-apis/bot/v2/hook/<token>
	// (open.larksuite.com for Lark). The token in the path is a secret.
	chanhttp.Endpoint `yaml:",inline"`
	// Secret enables signature verification ("签名校验").
	Secret     fileconfig.Secret `yaml:"secret"`
	SecretFile string            `yaml:"secret_file"`
	// AtOpenIDs are mentioned in every message (ou_...); "all" mentions everyone.
	AtOpenIDs []string `yaml:"at_open_ids"`
	// MaxParts bounds the cards one notification takes.
	chanhttp.Parts `yaml:",inline"`

	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the configuration and resolves url_file and secret_file.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	c.Endpoint.Validate(chk, true, "")
	if u, err := url.Parse(c.URL.Value()); err == nil && u.Host != "" {
		// The error shows scheme and host only: the token is in the path.
		if !strings.Contains(u.Path, "/bot/v2/hook/") || strings.HasSuffix(u.Path, "/hook/") {
			chk.Add("url", "must be a custom robot webhook: %s://%s/open-apis/bot/v2/hook/<token>", u.Scheme, u.Host)
		}
	}
	chk.Secret("secret", &c.Secret, c.SecretFile)
	for i, id := range c.AtOpenIDs {
		if id != "all" && !strings.HasPrefix(id, "ou_") {
			chk.Add(fmt.Sprintf("at_open_ids[%d]", i), "%q is neither an open_id (ou_...) nor all", id)
		}
	}
	c.Parts.Validate(chk)
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// token is the last path segment of the webhook.
func webhookToken(raw string) string {
	if i := strings.LastIndex(raw, "/hook/"); i >= 0 {
		return raw[i+len("/hook/"):]
	}
	return ""
}

// Secrets are the webhook URL and its token, the signing secret and any http_config credential.
func (c *Config) Secrets() []string {
	out := c.Endpoint.Secrets()
	if t := webhookToken(c.URL.Value()); t != "" {
		out = append(out, t)
	}
	return append(append(out, c.Secret.Value()), c.HTTP.Secrets()...)
}

// Target is where the channel delivers, with the token hidden.
func (c *Config) Target() string {
	t := c.Endpoint.Target()
	if tok := webhookToken(t); tok != "" {
		return strings.TrimSuffix(t, tok) + "<secret>"
	}
	return t
}
