package config

import (
	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/dingtalk"
	"github.com/open-autoglm/autoglm-monitor/receiver/email"
	"github.com/open-autoglm/autoglm-monitor/receiver/feishu"
	"github.com/open-autoglm/autoglm-monitor/receiver/file"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanconf"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/voice"
	"github.com/open-autoglm/autoglm-monitor/receiver/webhook"
	"github.com/open-autoglm/autoglm-monitor/receiver/wecom"
)

// Channel types.
const (
	TypeDingTalk = "dingtalk"
	TypeWeCom    = "wecom"
	TypeEmail    = "email"
	TypeSMS      = "sms"
	TypeWebhook  = "webhook"
	TypeFile     = "file"
	TypeFeishu   = "feishu"
	TypeVoice    = "voice"
)

// ChannelTypes lists every channel type.
var ChannelTypes = []string{TypeDingTalk, TypeWeCom, TypeFeishu, TypeEmail, TypeSMS, TypeVoice, TypeWebhook, TypeFile}

// IsChat reports whether a channel type posts to a group chat, where a
// claim is announced.
func IsChat(typ string) bool { return typ == TypeDingTalk || typ == TypeWeCom || typ == TypeFeishu }

// Channel is one entry under receiver.channels: its type and exactly one
// typed configuration, owned by the channel's package.
type Channel struct {
	Type     string
	DingTalk *dingtalk.Config
	WeCom    *wecom.Config
	Email    *email.Config
	SMS      *sms.Config
	Webhook  *webhook.Config
	File     *file.Config
	Feishu   *feishu.Config
	Voice    *voice.Config
}

// Spec is what every channel configuration provides.
type Spec interface {
	// Validate checks the keys under key and resolves the *_file secrets.
	Validate(key string, f *fileconfig.File) error
	// Secrets lists every credential value, for redaction.
	Secrets() []string
	// Target describes where the channel delivers, without credentials.
	Target() string
}

// Spec returns the typed configuration (nil for an unknown type).
func (c *Channel) Spec() Spec {
	switch {
	case c.DingTalk != nil:
		return c.DingTalk
	case c.WeCom != nil:
		return c.WeCom
	case c.Email != nil:
		return c.Email
	case c.SMS != nil:
		return c.SMS
	case c.Webhook != nil:
		return c.Webhook
	case c.File != nil:
		return c.File
	case c.Feishu != nil:
		return c.Feishu
	case c.Voice != nil:
		return c.Voice
	}
	return nil
}

// typed is an entry's keys: type plus the channel's own.
type typed[T any] struct {
	Type string `yaml:"type"`
	Cfg  T      `yaml:",inline"`
}

// decodeAs decodes the entry into the channel's configuration, starting from its defaults.
func decodeAs[T any](unmarshal func(any) error, def T) (*T, error) {
	v := typed[T]{Cfg: def}
	if err := unmarshal(&v); err != nil {
		return nil, err
	}
	return &v.Cfg, nil
}

// UnmarshalYAML picks the channel's configuration by type. It uses the
// unmarshal-function form so that the strict decoder of the file (unknown
// keys are errors) also applies to the channel's keys.
func (c *Channel) UnmarshalYAML(unmarshal func(any) error) error {
	var probe map[string]any
	if err := unmarshal(&probe); err != nil {
		return err
	}
	c.Type, _ = probe["type"].(string)
	var err error
	switch c.Type {
	case TypeDingTalk:
		c.DingTalk, err = decodeAs(unmarshal, dingtalk.DefaultConfig())
	case TypeWeCom:
		c.WeCom, err = decodeAs(unmarshal, wecom.DefaultConfig())
	case TypeEmail:
		c.Email, err = decodeAs(unmarshal, email.DefaultConfig())
	case TypeSMS:
		c.SMS, err = decodeAs(unmarshal, sms.DefaultConfig())
	case TypeWebhook:
		c.Webhook, err = decodeAs(unmarshal, webhook.DefaultConfig())
	case TypeFile:
		c.File, err = decodeAs(unmarshal, file.DefaultConfig())
	case TypeFeishu:
		c.Feishu, err = decodeAs(unmarshal, feishu.DefaultConfig())
	case TypeVoice:
		c.Voice, err = decodeAs(unmarshal, voice.DefaultConfig())
	}
	// An unknown or missing type is reported by Validate with its key.
	return err
}

// Validate checks the type and the channel's own keys.
func (c *Channel) Validate(key string, f *fileconfig.File) error {
	s := c.Spec()
	switch {
	case c.Type == "":
		return fileconfig.Errorf(key+".type", "%v", errNoType)
	case s == nil:
		return fileconfig.Errorf(key+".type", "unknown channel type %q: use %s", c.Type, chanconf.OrList(ChannelTypes))
	}
	return s.Validate(key, f)
}
