package voice

import (
	"fmt"
	"net/url"
	"regexp"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// SecretResolver reads a secret given inline or from a *_file path;
// *config.File is one.
type SecretResolver interface {
	ResolveSecret(key string, inline config.Secret, file string) (config.Secret, error)
}

// Param is one template variable: Name for Aliyun (${name} in the TTS
// template), position for Tencent ({1}, {2}, ...); Value is a Go template.
type Param struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

// Config is a voice-call channel (type: voice).
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
	AccessKeyID         string        `yaml:"access_key_id"`
	AccessKeySecret     config.Secret `yaml:"access_key_secret"`
	AccessKeySecretFile string        `yaml:"access_key_secret_file"`
	// TTSCode is the approved text-to-speech template (TTS_...).
	TTSCode string `yaml:"tts_code"`
	// CalledShowNumber is the caller id of a dedicated number; empty uses the shared pool.
	CalledShowNumber string `yaml:"called_show_number"`

	// Tencent Cloud.
	SecretID      string        `yaml:"secret_id"`
	SecretKey     config.Secret `yaml:"secret_key"`
	SecretKeyFile string        `yaml:"secret_key_file"`
	VoiceSdkAppID string        `yaml:"voice_sdk_app_id"`
	TemplateID    string        `yaml:"template_id"`
	Region        string        `yaml:"region"`
	// CallbackToken authenticates the call-status callbacks Tencent posts to
	// /api/v1/voice/tencent/<token>: configure that URL in the VMS console.
	CallbackToken     config.Secret `yaml:"callback_token"`
	CallbackTokenFile string        `yaml:"callback_token_file"`
}

// Default endpoints.
const (
	AliyunEndpoint  = "https://dyvmsapi.aliyuncs.com"
	TencentEndpoint = "https://vms.tencentcloudapi.com"
)

var phoneRE = regexp.MustCompile(`^\+?[0-9]{5,20}$`)

// Validate checks the channel's keys; key is its dotted path.
func (c *Config) Validate(r SecretResolver, key string) []error {
	var errs []error
	add := func(k, format string, args ...any) { errs = append(errs, config.Errorf(key+k, format, args...)) }
	required := func(k, v string) {
		if v == "" {
			add("."+k, "is required for a %s voice channel", c.Provider)
		}
	}
	resolve := func(k string, inline config.Secret, file string) config.Secret {
		s, err := r.ResolveSecret(key+"."+k, inline, file)
		if err != nil {
			errs = append(errs, err)
		}
		return s
	}
	switch c.Provider {
	case "aliyun":
		required("access_key_id", c.AccessKeyID)
		if resolve("access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile) == "" && c.AccessKeySecretFile == "" {
			add(".access_key_secret", "is required for an aliyun voice channel (or access_key_secret_file)")
		}
		required("tts_code", c.TTSCode)
		for i, p := range c.TemplateParams {
			if p.Name == "" {
				add(fmt.Sprintf(".template_params[%d].name", i), "is required for aliyun (the ${name} in the TTS template)")
			}
		}
	case "tencent":
		required("secret_id", c.SecretID)
		if resolve("secret_key", c.SecretKey, c.SecretKeyFile) == "" && c.SecretKeyFile == "" {
			add(".secret_key", "is required for a tencent voice channel (or secret_key_file)")
		}
		required("voice_sdk_app_id", c.VoiceSdkAppID)
		required("template_id", c.TemplateID)
		if tok := resolve("callback_token", c.CallbackToken, c.CallbackTokenFile); tok != "" && len(tok.Value()) < 16 {
			add(".callback_token", "must be at least 16 characters (it is the only proof a callback comes from Tencent)")
		}
	case "":
		add(".provider", "is required for a voice channel: aliyun or tencent")
	default:
		add(".provider", "unknown voice provider %q: use aliyun or tencent", c.Provider)
	}
	if c.Endpoint != "" {
		if u, err := url.Parse(c.Endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			add(".endpoint", "must be an http(s) URL")
		}
	}
	if c.PlayTimes < 0 || c.PlayTimes > 3 {
		add(".play_times", "must be within 1..3, got %d", c.PlayTimes)
	}
	for i, p := range c.PhoneNumbers {
		if !phoneRE.MatchString(p) {
			add(fmt.Sprintf(".phone_numbers[%d]", i), "%q is not a phone number (digits, optional leading +)", p)
		}
	}
	return errs
}

// Secrets are the values to redact.
func (c *Config) Secrets(r SecretResolver, key string) []string {
	var out []string
	for _, s := range []struct {
		k      string
		inline config.Secret
		file   string
	}{
		{"access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile},
		{"secret_key", c.SecretKey, c.SecretKeyFile},
		{"callback_token", c.CallbackToken, c.CallbackTokenFile},
	} {
		if v, err := r.ResolveSecret(key+"."+s.k, s.inline, s.file); err == nil && v != "" {
			out = append(out, v.Value())
		}
	}
	return out
}
