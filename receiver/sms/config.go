package sms

import (
	"fmt"
	"strings"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Config is the keys of a "type: sms" channel; which apply depends on Provider.
type Config struct {
	Provider     string   `yaml:"provider"` // aliyun, tencent, generic
	Endpoint     string   `yaml:"endpoint"`
	PhoneNumbers []string `yaml:"phone_numbers"`
	SignName     string   `yaml:"sign_name"`
	// TemplateParams are the template variables: Go templates, named for
	// Aliyun (${name} in the SMS template), positional for Tencent ({1}, {2}, ...).
	TemplateParams []Param `yaml:"template_params"`

	// Aliyun
	AccessKeyID         string            `yaml:"access_key_id"`
	AccessKeySecret     fileconfig.Secret `yaml:"access_key_secret"`
	AccessKeySecretFile string            `yaml:"access_key_secret_file"`
	TemplateCode        string            `yaml:"template_code"`

	// Tencent
	SecretID      string            `yaml:"secret_id"`
	SecretKey     fileconfig.Secret `yaml:"secret_key"`
	SecretKeyFile string            `yaml:"secret_key_file"`
	SMSSdkAppID   string            `yaml:"sms_sdk_app_id"`
	TemplateID    string            `yaml:"template_id"`
	Region        string            `yaml:"region"`

	// Generic gateway: URL, header values and body are templates over the message data.
	Gateway chanhttp.Endpoint `yaml:",inline"`
	Method  string            `yaml:"method"`
	Headers map[string]string `yaml:"headers"`
	Body    string            `yaml:"body"`

	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// Param is one SMS template variable (Name for Aliyun; order for Tencent).
type Param struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"` // Go template
}

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the provider's keys and resolves the secret files.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	what := "a " + c.Provider + " SMS channel"
	switch c.Provider {
	case "aliyun":
		chk.Required("access_key_id", c.AccessKeyID, what)
		chk.RequiredSecret("access_key_secret", &c.AccessKeySecret, c.AccessKeySecretFile, what)
		chk.Required("sign_name", c.SignName, what)
		chk.Required("template_code", c.TemplateCode, what)
		for i, p := range c.TemplateParams {
			if p.Name == "" {
				chk.Add(fmt.Sprintf("template_params[%d].name", i), "is required for aliyun (the ${name} in the SMS template)")
			}
		}
	case "tencent":
		chk.Required("secret_id", c.SecretID, what)
		chk.RequiredSecret("secret_key", &c.SecretKey, c.SecretKeyFile, what)
		chk.Required("sms_sdk_app_id", c.SMSSdkAppID, what)
		chk.Required("sign_name", c.SignName, what)
		chk.Required("template_id", c.TemplateID, what)
	case "generic":
		c.Gateway.Validate(chk, false, "")
		chk.Required("body", c.Body, "a generic SMS gateway (a template of the request body)")
		chk.OneOf("method", strings.ToUpper(c.Method), "GET", "POST", "PUT")
		checks := map[string]string{"body": c.Body, "url": c.Gateway.URL.Value()}
		for h, v := range c.Headers {
			checks["headers."+h] = v
		}
		for _, k := range chanconf.SortedKeys(checks) {
			if err := tmpl.Check(k, checks[k]); err != nil {
				chk.Add(k, "template does not parse: %v", err)
			}
		}
	case "":
		chk.Add("provider", "is required for an SMS channel: aliyun, tencent or generic")
	default:
		chk.Add("provider", "unknown SMS provider %q: use aliyun, tencent or generic", c.Provider)
	}
	for i, p := range c.TemplateParams {
		if err := tmpl.Check(p.Name, p.Value); err != nil {
			chk.Add(fmt.Sprintf("template_params[%d].value", i), "template does not parse: %v", err)
		}
	}
	chk.URL("endpoint", c.Endpoint, false, "")
	if len(c.PhoneNumbers) == 0 {
		chk.Add("phone_numbers", "needs at least one phone number")
	}
	chk.Phones("phone_numbers", c.PhoneNumbers)
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets are the provider credentials, the gateway URL's and headers'
// credentials and any http_config credential.
func (c *Config) Secrets() []string {
	out := []string{c.AccessKeySecret.Value(), c.SecretKey.Value()}
	out = append(out, c.Gateway.Secrets()...)
	out = append(out, chanhttp.HeaderSecrets(c.Headers)...)
	return append(out, c.HTTP.Secrets()...)
}

// Target names the provider and the masked numbers.
func (c *Config) Target() string {
	masked := make([]string, 0, len(c.PhoneNumbers))
	for _, p := range c.PhoneNumbers {
		masked = append(masked, MaskPhone(p))
	}
	return fmt.Sprintf("sms %s %v", c.Provider, masked)
}
