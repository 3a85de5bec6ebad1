// Package channels builds the notification channels configured under
// receiver.channels: the one place that knows every channel type.
package channels

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/dingtalk"
	"github.com/open-autoglm/autoglm-monitor/receiver/email"
	"github.com/open-autoglm/autoglm-monitor/receiver/file"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
	"github.com/open-autoglm/autoglm-monitor/receiver/webhook"
	"github.com/open-autoglm/autoglm-monitor/receiver/wecom"
)

// Options are shared by every channel.
type Options struct {
	Logger      *slog.Logger
	HTTPClient  *http.Client
	Now         func() time.Time
	ExternalURL string
	// OnTemplateError receives custom-template failures (the built-in text was
	// sent instead) unless the delivery context carries a tmpl.Reporter.
	// Default: a warning in Logger.
	OnTemplateError func(channel string, f tmpl.Failure)
}

// Build returns the channel named name. Secrets are resolved here (inline or
// *_file), so a reload picks up rotated secret files.
func Build(name string, c config.Channel, f *config.File, o Options) (notify.Channel, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	key := "receiver.channels." + name
	var errs []error
	secret := func(k string, inline config.Secret, file string) string {
		s, err := f.ResolveSecret(key+"."+k, inline, file)
		if err != nil {
			errs = append(errs, err)
		}
		return s.Value()
	}
	report := o.OnTemplateError
	if report == nil {
		logger := o.Logger
		report = func(ch string, fl tmpl.Failure) {
			logger.Warn("template failed, built-in used", "channel", ch, "template", fl.Template, "source", fl.Source, "err", fl.Err)
		}
	}
	t := tmpl.New(tmpl.Options{Language: c.Language, Overrides: c.Templates, Reporter: func(fl tmpl.Failure) { report(name, fl) }})
	timeout := c.Timeout.D()
	if timeout == 0 {
		timeout = config.DefaultTimeout
	}
	var ch notify.Channel
	switch c.Type {
	case config.ChannelDingTalk:
		ch = dingtalk.New(dingtalk.Config{
			URL: secret("url", c.URL, c.URLFile), Secret: secret("secret", c.Secret, c.SecretFile),
			AtMobiles: c.AtMobiles, AtUserIDs: c.AtUserIDs, AtAll: c.AtAll, MessageType: c.MessageType, Timeout: timeout,
		}, t, o.HTTPClient, o.Now, o.ExternalURL)
	case config.ChannelWeCom:
		ch = wecom.New(wecom.Config{
			URL: secret("url", c.URL, c.URLFile), MessageType: c.MessageType, MentionedMobileList: c.MentionedMobileList, Timeout: timeout,
		}, t, o.HTTPClient, o.ExternalURL)
	case config.ChannelEmail:
		ch = email.New(email.Config{
			Host: c.SMTP.Host, Port: c.SMTP.Port, Username: c.SMTP.Username,
			Password: secret("smtp.password", c.SMTP.Password, c.SMTP.PasswordFile),
			TLS:      c.SMTP.TLS, InsecureSkipVerify: c.SMTP.InsecureSkipVerify, Auth: c.SMTP.Auth,
			From: c.From, To: c.To, Timeout: timeout,
		}, t, o.Now, o.ExternalURL)
	case config.ChannelSMS:
		params := make([]sms.Param, 0, len(c.TemplateParams))
		for _, p := range c.TemplateParams {
			params = append(params, sms.Param{Name: p.Name, Value: p.Value})
		}
		cfg := sms.Config{
			Provider: c.Provider, Endpoint: c.Endpoint, PhoneNumbers: c.PhoneNumbers, SignName: c.SignName, Params: params, Timeout: timeout,
			AccessKeyID: c.AccessKeyID, TemplateCode: c.TemplateCode,
			SecretID: c.SecretID, SMSSdkAppID: c.SMSSdkAppID, TemplateID: c.TemplateID, Region: c.Region,
			Method: c.Method, Headers: c.Headers, Body: c.Body,
		}
		switch c.Provider {
		case "aliyun":
			cfg.AccessKeySecret = secret("access_key_secret", c.AccessKeySecret, c.AccessKeySecretFile)
		case "tencent":
			cfg.SecretKey = secret("secret_key", c.SecretKey, c.SecretKeyFile)
		case "generic":
			cfg.URL = secret("url", c.URL, c.URLFile)
		}
		if len(errs) > 0 {
			break
		}
		n, err := sms.New(cfg, t, o.HTTPClient, o.Now)
		if err != nil {
			return nil, fmt.Errorf("channel %s: %w", name, err)
		}
		ch = n
	case config.ChannelWebhook:
		ch = webhook.New(webhook.Config{URL: secret("url", c.URL, c.URLFile), Headers: c.Headers, Timeout: timeout}, o.HTTPClient)
	case config.ChannelFile:
		ch = file.New(name, c.Path, t, o.Now, nil)
	default:
		return nil, fmt.Errorf("channel %s: unknown type %q", name, c.Type)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("channel %s: %w", name, errs[0])
	}
	return ch, nil
}

// RateLimit is the provider's documented per-channel limit in messages per
// minute (0 = none): 20 for DingTalk and WeCom robots.
func RateLimit(c config.Channel) int {
	switch c.Type {
	case config.ChannelDingTalk:
		return dingtalk.RateLimit
	case config.ChannelWeCom:
		return wecom.RateLimit
	}
	return 0
}

// Target is a redacted description of where a channel delivers, for audit
// records and logs (never a token or key).
func Target(c config.Channel) string {
	switch c.Type {
	case config.ChannelEmail:
		return fmt.Sprintf("smtp://%s:%d to %d recipients", c.SMTP.Host, c.SMTP.Port, len(c.To))
	case config.ChannelSMS:
		masked := make([]string, 0, len(c.PhoneNumbers))
		for _, p := range c.PhoneNumbers {
			masked = append(masked, sms.MaskPhone(p))
		}
		return fmt.Sprintf("sms %s %v", c.Provider, masked)
	case config.ChannelFile:
		if c.Path == "" || c.Path == "-" {
			return "stdout"
		}
		return c.Path
	}
	return redactURL(c.URL.Value())
}
