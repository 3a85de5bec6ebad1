// Package channels is the one builder of the receiver's channels: it turns
// each entry of receiver.channels into a notify.Integration (the notifier,
// its provider rate limit, a redacted target and its secrets). Each channel
// package owns its configuration and constructor; this is the only place
// that knows every type.
package channels

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/dingtalk"
	"github.com/open-autoglm/autoglm-monitor/receiver/email"
	"github.com/open-autoglm/autoglm-monitor/receiver/feishu"
	"github.com/open-autoglm/autoglm-monitor/receiver/file"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/sms"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
	"github.com/open-autoglm/autoglm-monitor/receiver/voice"
	"github.com/open-autoglm/autoglm-monitor/receiver/webhook"
	"github.com/open-autoglm/autoglm-monitor/receiver/wecom"
)

// Options are shared by every channel.
type Options struct {
	Logger *slog.Logger
	Now    func() time.Time
	// OnTemplateError receives custom-template failures (the built-in text was
	// sent instead) unless the delivery context carries a tmpl.Reporter.
	// Default: a warning in Logger.
	OnTemplateError func(channel string, f tmpl.Failure)
	// OnCall is told about each phone call a voice channel placed, with the
	// notifier that can ask the provider for its result.
	OnCall func(channel string, q voice.Querier, c voice.Call)
	// Transport, when set, replaces the network of every HTTP channel (tests).
	Transport http.RoundTripper
}

// Build constructs every channel of a validated receiver configuration, in
// name order.
func Build(c *config.Config, o Options) ([]notify.Integration, error) {
	names := make([]string, 0, len(c.Channels))
	for n := range c.Channels {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]notify.Integration, 0, len(names))
	for _, n := range names {
		in, err := New(n, c.Channels[n], c.ExternalURL, o)
		if err != nil {
			return nil, err
		}
		out = append(out, in)
	}
	return out, nil
}

// New constructs the channel name from its validated entry.
func New(name string, ch *config.Channel, externalURL string, o Options) (notify.Integration, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	report := o.OnTemplateError
	if report == nil {
		logger := o.Logger
		report = func(ch string, fl tmpl.Failure) {
			logger.Warn("template failed, built-in used", "channel", ch, "template", fl.Template, "source", fl.Source, "err", fl.Err)
		}
	}
	reporter := func(fl tmpl.Failure) { report(name, fl) }
	spec := ch.Spec()
	if spec == nil {
		return notify.Integration{}, fmt.Errorf("channel %s: unknown type %q", name, ch.Type)
	}
	in := notify.Integration{Name: name, Target: spec.Target()}
	if o.Transport != nil {
		if s := settingsOf(ch); s != nil {
			s.Transport = o.Transport
		}
	}
	var err error
	switch {
	case ch.DingTalk != nil:
		in.Notifier, err = dingtalk.New(ch.DingTalk, ch.DingTalk.Config.New(reporter), o.Now, externalURL)
		in.PerMinute = dingtalk.RateLimit
	case ch.WeCom != nil:
		in.Notifier, err = wecom.New(ch.WeCom, ch.WeCom.Config.New(reporter), externalURL)
		in.PerMinute = wecom.RateLimit
	case ch.Email != nil:
		in.Notifier, err = email.New(ch.Email, ch.Email.Config.New(reporter), o.Now, externalURL)
	case ch.SMS != nil:
		in.Notifier, err = sms.New(ch.SMS, ch.SMS.Config.New(reporter), o.Now)
	case ch.Webhook != nil:
		in.Notifier, err = webhook.New(ch.Webhook)
	case ch.File != nil:
		in.Notifier = file.New(name, ch.File, ch.File.Config.New(reporter), o.Now, nil)
	case ch.Feishu != nil:
		in.Notifier, err = feishu.New(ch.Feishu, ch.Feishu.Config.New(reporter), o.Now, externalURL)
		in.PerMinute = feishu.RateLimit
	case ch.Voice != nil:
		var vn *voice.Notifier
		vo := voice.Options{Now: o.Now}
		if o.OnCall != nil {
			// vn is set before any call can be placed: Notify runs after New returns.
			vo.OnCall = func(c voice.Call) { o.OnCall(name, vn, c) }
		}
		vn, err = voice.New(ch.Voice, ch.Voice.Config.New(reporter), vo)
		in.Notifier = vn
	}
	if err != nil {
		return notify.Integration{}, fmt.Errorf("channel %s: %w", name, err)
	}
	return in, nil
}

// settingsOf is the HTTP settings of an HTTP channel (nil for the others).
func settingsOf(ch *config.Channel) *chanhttp.Settings {
	switch {
	case ch.DingTalk != nil:
		return &ch.DingTalk.HTTP
	case ch.WeCom != nil:
		return &ch.WeCom.HTTP
	case ch.Feishu != nil:
		return &ch.Feishu.HTTP
	case ch.SMS != nil:
		return &ch.SMS.HTTP
	case ch.Voice != nil:
		return &ch.Voice.HTTP
	case ch.Webhook != nil:
		return &ch.Webhook.HTTP
	}
	return nil
}
