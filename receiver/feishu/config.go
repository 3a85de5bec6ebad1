package feishu

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// SecretResolver reads a secret given inline or from a *_file path;
// *config.File is one.
type SecretResolver interface {
	ResolveSecret(key string, inline config.Secret, file string) (config.Secret, error)
}

// Config is a Feishu / Lark custom robot channel (type: feishu).
type Config struct {
	// URL is the robot webhook, https://open.feishu.cn/open-apis/bot/v2/hook/<token>
	// (or open.larksuite.com for Lark). The token in the path is a secret.
	URL     config.Secret `yaml:"url"`
	URLFile string        `yaml:"url_file"`
	// Secret enables signature verification ("签名校验").
	Secret     config.Secret `yaml:"secret"`
	SecretFile string        `yaml:"secret_file"`
	// AtOpenIDs are mentioned in every message (ou_...); "all" mentions everyone.
	AtOpenIDs []string `yaml:"at_open_ids"`
}

// Validate checks the type-specific keys; key is the channel's dotted path.
func (c *Config) Validate(r SecretResolver, key string) []error {
	var errs []error
	u, err := r.ResolveSecret(key+".url", c.URL, c.URLFile)
	if err != nil {
		errs = append(errs, err)
	} else if e := checkURL(u.Value()); e != "" {
		// The URL carries the robot token, so the error never quotes it.
		errs = append(errs, config.Errorf(key+".url", "%s", e))
	}
	if _, err := r.ResolveSecret(key+".secret", c.Secret, c.SecretFile); err != nil {
		errs = append(errs, err)
	}
	for i, id := range c.AtOpenIDs {
		if id != "all" && !strings.HasPrefix(id, "ou_") {
			errs = append(errs, config.Errorf(fmt.Sprintf("%s.at_open_ids[%d]", key, i), "%q is neither an open_id (ou_...) nor all", id))
		}
	}
	return errs
}

func checkURL(raw string) string {
	if raw == "" {
		return "is required (the robot webhook URL, or url_file)"
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "must be an http(s) URL such as https://open.feishu.cn/open-apis/bot/v2/hook/<token>"
	}
	if !strings.Contains(u.Path, "/bot/v2/hook/") || strings.HasSuffix(u.Path, "/hook/") {
		return fmt.Sprintf("must be a custom robot webhook: %s://%s/open-apis/bot/v2/hook/<token>", u.Scheme, u.Host)
	}
	return ""
}

// Secrets are the values to redact: the webhook URL (its token) and the signing secret.
func (c *Config) Secrets(r SecretResolver, key string) []string {
	var out []string
	if u, err := r.ResolveSecret(key+".url", c.URL, c.URLFile); err == nil && u != "" {
		out = append(out, u.Value())
		if i := strings.LastIndex(u.Value(), "/hook/"); i >= 0 {
			out = append(out, u.Value()[i+len("/hook/"):])
		}
	}
	if s, err := r.ResolveSecret(key+".secret", c.Secret, c.SecretFile); err == nil && s != "" {
		out = append(out, s.Value())
	}
	return out
}
