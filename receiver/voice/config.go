package voice

import (
	"fmt"
	"strings"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

// Param is one template variable: Name for Aliyun (${name} in the TTS
// template), position for Tencent ({1}, {2}, ...); Value is a Go template.
type Param = sms.Param

// Config is a voice-call channel: the keys of a "type: voice" channel.
type Config struct {
	// Provider is aliyun (Dyvms SingleCallByTts) or tencent (VMS SendTtsVoice).
	Provider string `yaml:"provider"`
	Endpoint string `yaml:"endpoint"`
	// PhoneNumbers are called when the delivery is not an escalation step
	// (escalation steps call the people on call).
	PhoneNumbers   []string `yaml:"phone_numbers"`
	TemplateParams []Param  `yaml:"template_params"`
	// PlayTimes is how often the text is read in one call (1-3; default 2).
	PlayTimes int `yaml:"play_times"`

	// Aliyun.
	AccessKeyID         string            `yaml:"access_key_id"`
	AccessKeySecret     fileconfig.Secret `yaml:"access_key_secret"`
	AccessKeySecretFile string            `yaml:"access_key_secret_file"`
	// TTSCode is the approved text-to-speech template (TTS_...).
	TTSCode string `yaml:"tts_code"`
	// CalledShowNumber is the caller id of a dedicated number; empty uses the shared pool.
	CalledShowNumber string `yaml:"called_show_number"`

	// Tencent Cloud.
	SecretID      string            `yaml:"secret_id"`
	SecretKey     fileconfig.Secret `yaml:"secret_key"`
	SecretKeyFile string            `yaml:"secret_key_file"`
	VoiceSdkAppID string            `yaml:"voice_sdk_app_id"`
	TemplateID    string            `yaml:"template_id"`
	Region        string            `yaml:"region"`
	// CallbackToken authenticates the call-status callbacks Tencent posts to
	// /api/v1/voice/tencent/<token>: configure that URL in the VMS console.
	CallbackToken     fileconfig.Secret `yaml:"callback_token"`
	CallbackTokenFile string            `yaml:"callback_token_file"`

	tmpl.Config `yaml:",inline"`
	HTTP        chanhttp.Settings `yaml:",inline"`
}

// Default endpoints.
const (
	AliyunEndpoint  = "https://dyvmsapi.aliyuncs.com"
	TencentEndpoint = "https://vms.tencentcloudapi.com"
)

// DefaultConfig is what an entry starts from before its keys are decoded.
func DefaultConfig() Config { return Config{HTTP: chanhttp.DefaultSettings()} }

// Validate checks the provider's keys and resolves the secret files.
func (c *Config) Validate(key string, f *fileconfig.File) error {
	chk := chanconf.New(key, f)
	what := "a " + c.Provider + " voice channel"
	switch c.Provider {
	case "aliyun":
		chk.Required("access_key_id", c.AccessKeyID, what)
		chk.Secret("access_key_secret", &c.AccessKeySecret, c.AccessKeySecretFile)
		chk.Required("access_key_secret", c.AccessKeySecret.Value(), what+" (or access_key_secret_file)")
		chk.Required("tts_code", c.TTSCode, what)
		for i, p := range c.TemplateParams {
			if p.Name == "" {
				chk.Add(fmt.Sprintf("template_params[%d].name", i), "is required for aliyun (the ${name} in the TTS template)")
			}
		}
	case "tencent":
		chk.Required("secret_id", c.SecretID, what)
		chk.Secret("secret_key", &c.SecretKey, c.SecretKeyFile)
		chk.Required("secret_key", c.SecretKey.Value(), what+" (or secret_key_file)")
		chk.Required("voice_sdk_app_id", c.VoiceSdkAppID, what)
		chk.Required("template_id", c.TemplateID, what)
		chk.Secret("callback_token", &c.CallbackToken, c.CallbackTokenFile)
		if tok := c.CallbackToken.Value(); tok != "" && (len(tok) < 16 || strings.ContainsAny(tok, "/?#% ")) {
			chk.Add("callback_token", "must be at least 16 characters without / ? # %% or spaces (it is the only proof a callback comes from Tencent)")
		}
	case "":
		chk.Add("provider", "is required for a voice channel: aliyun or tencent")
	default:
		chk.Add("provider", "unknown voice provider %q: use aliyun or tencent", c.Provider)
	}
	chk.URL("endpoint", c.Endpoint, false, "")
	if c.PlayTimes < 0 || c.PlayTimes > 3 {
		chk.Add("play_times", "must be within 1..3, got %d", c.PlayTimes)
	}
	chk.Phones("phone_numbers", c.PhoneNumbers)
	for i, p := range c.TemplateParams {
		if err := tmpl.Check("voice_param", p.Value); err != nil {
			chk.Add(fmt.Sprintf("template_params[%d].value", i), "template does not parse: %v", err)
		}
	}
	c.HTTP.Validate(chk)
	return chk.Err(c.Config.Validate(key)...)
}

// Secrets are the provider key, the callback token and any http_config credential.
func (c *Config) Secrets() []string {
	return append([]string{c.AccessKeySecret.Value(), c.SecretKey.Value(), c.CallbackToken.Value()}, c.HTTP.Secrets()...)
}

// Target is the provider and the numbers, masked.
func (c *Config) Target() string {
	masked := make([]string, 0, len(c.PhoneNumbers))
	for _, p := range c.PhoneNumbers {
		masked = append(masked, sms.MaskPhone(p))
	}
	return fmt.Sprintf("voice %s %v", c.Provider, masked)
}
