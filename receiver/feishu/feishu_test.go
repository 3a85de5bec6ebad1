package feishu

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

const (
	token  = "8e1f0c2a-robot-token-77"
	secret = "SECfeishu0123456789"
)

// A vector computed independently (Python hmac/base64) from the algorithm in
// Feishu's custom robot documentation: key = timestamp + "\n" + secret, empty message.
func TestSignVector(t *testing.T) {
	if got := Sign("1700000000", secret); got != "/9G2rJ2a+dauXDBvstZRG3px8Jv+AqqN+r06Ozc4Bgw=" {
		t.Fatalf("Sign = %s", got)
	}
}

func file(t *testing.T) *config.File {
	t.Helper()
	f, err := config.Parse([]byte("{}"), filepath.Join(t.TempDir(), "autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// cfg is a channel configuration as the file would give it.
func cfg(url string, secret string, mutate ...func(*Config)) *Config {
	c := DefaultConfig()
	c.URL, c.Secret = config.Secret(url), config.Secret(secret)
	for _, m := range mutate {
		m(&c)
	}
	return &c
}

func newNotifier(t *testing.T, c *Config) *Notifier {
	t.Helper()
	if err := c.Validate("receiver.channels.lark", file(t)); err != nil {
		t.Fatal(err)
	}
	n, err := New(c, tmpl.New(tmpl.Options{}), nil, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestCardWithMentionsAndActionButtons(t *testing.T) {
	fake := providertest.NewFeishu(t, token, secret)
	n := newNotifier(t, cfg(fake.URL(), secret, func(c *Config) { c.AtOpenIDs = []string{"ou_channel"} }))
	nt := fixture.Notification("LLMHighErrorRate", 2, 200)
	ctx := action.WithLinker(context.Background(), func(gk string) []action.Link {
		return []action.Link{{Kind: action.Claim, Label: "认领", URL: "https://recv/a/claim-" + gk}, {Kind: action.Silence, Label: "静默 1h", URL: "https://recv/a/s1-" + gk}}
	})
	if err := n.Notify(ctx, nt); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	m := msgs[0]
	if m.MsgType != "interactive" || !strings.Contains(m.Title(), "[P1]") || !strings.Contains(m.Title(), "LLMHighErrorRate") || m.Card.Header.Template != "red" {
		t.Errorf("card header = %q %q", m.Title(), m.Card.Header.Template)
	}
	for _, want := range []string{"LLMHighErrorRate", "http://prometheus:9090/graph", "http://grafana:3000/d/autoglm", "<at id=ou_channel></at>"} {
		if !strings.Contains(m.Markdown(), want) {
			t.Errorf("card lacks %q:\n%s", want, m.Markdown())
		}
	}
	b := m.Buttons()
	if len(b) != 2 || b[0].Text != "认领" || b[0].URL != "https://recv/a/claim-"+nt.GroupKey || b[0].Type != "primary" || b[1].Text != "静默 1h" {
		t.Errorf("buttons = %+v", b)
	}

	// An escalation step mentions the people on call instead of the channel's list.
	ctx = oncall.WithRecipients(context.Background(), []oncall.Recipient{{ID: "ann", Person: oncall.Person{FeishuOpenID: "ou_ann"}}, {ID: "bob", Person: oncall.Person{Phone: "+86138"}}})
	if err := n.Notify(ctx, fixture.Notification("B", 1, 10)); err != nil {
		t.Fatal(err)
	}
	last := fake.Messages()[1].Markdown()
	if !strings.Contains(last, "<at id=ou_ann></at>") || strings.Contains(last, "ou_channel") {
		t.Errorf("mentions of the step: %s", last)
	}
}

func TestOversizeDigestIsSplitBelowTheLimit(t *testing.T) {
	fake := providertest.NewFeishu(t, token, secret)
	fake.PerSecond = 100
	n := newNotifier(t, cfg(fake.URL(), secret, func(c *Config) { c.MaxParts = chanhttp.MaxPartsLimit }))
	n.pace.SetLimit(1000)
	n.pace.SetBurst(100)
	ns := []*notify.Notification{fixture.Notification("A", 40, 40000), fixture.Notification("B", 20, 20000)}
	ctx := action.WithLinker(context.Background(), func(gk string) []action.Link {
		return []action.Link{{Kind: action.Claim, Label: "Claim", URL: "https://recv/a/" + gk}}
	})
	if err := n.Notify(ctx, ns...); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) < 3 {
		t.Fatalf("a 60 kB digest went out as %d cards", len(msgs))
	}
	var all strings.Builder
	for i, m := range msgs {
		if m.Size > 20*1024 {
			t.Errorf("card %d is %d bytes", i, m.Size)
		}
		if !utf8.ValidString(m.Markdown()) {
			t.Errorf("card %d splits a character", i)
		}
		if !strings.HasPrefix(m.Markdown(), "(") {
			t.Errorf("card %d lacks its (i/n) prefix", i)
		}
		if len(m.Buttons()) > 0 && i != len(msgs)-1 {
			t.Errorf("buttons on card %d of %d", i+1, len(msgs))
		}
		all.WriteString(m.Markdown())
	}
	// A digest carries one row of buttons per group, labelled with the group.
	b := msgs[len(msgs)-1].Buttons()
	if len(b) != 2 || !strings.HasPrefix(b[0].Text, "A · ") || !strings.HasPrefix(b[1].Text, "B · ") {
		t.Errorf("digest buttons = %+v", b)
	}
	for _, name := range []string{"node-0", "node-39", "node-19"} {
		if !strings.Contains(all.String(), name) {
			t.Errorf("%s lost in splitting", name)
		}
	}
}

func TestErrorsAreClassifiedAndCarryNoSecret(t *testing.T) {
	for _, tc := range []struct {
		name  string
		cfg   func(f *providertest.Feishu) *Config
		setup func(f *providertest.Feishu)
		class notify.Class
		code  string
		after time.Duration
	}{
		{name: "wrong signing secret", cfg: func(f *providertest.Feishu) *Config {
			return cfg(f.URL(), "SECwrong-but-long")
		}, class: notify.Config, code: "19021"},
		{name: "unsigned request to a signing robot", cfg: func(f *providertest.Feishu) *Config { return cfg(f.URL(), "") }, class: notify.Config, code: "19021"},
		{name: "unknown token", cfg: func(f *providertest.Feishu) *Config {
			return cfg(strings.Replace(f.URL(), token, "other-token", 1), secret)
		}, class: notify.Config, code: "19001"},
		{name: "keyword missing", cfg: func(f *providertest.Feishu) *Config { return cfg(f.URL(), secret) },
			setup: func(f *providertest.Feishu) { f.Keywords = []string{"告警机器人"} }, class: notify.Config, code: "19024"},
		{name: "rate limited", cfg: func(f *providertest.Feishu) *Config { return cfg(f.URL(), secret) },
			setup: func(f *providertest.Feishu) { f.PerMinute = 0 }, class: notify.Retry, code: "11232", after: time.Minute},
		{name: "gateway error", cfg: func(f *providertest.Feishu) *Config { return cfg(f.URL(), secret) },
			setup: func(f *providertest.Feishu) { f.FailNext(providertest.Failure{Status: 502, Body: "bad gateway"}) }, class: notify.Retry, code: "502"},
		{name: "robot unreachable", cfg: func(f *providertest.Feishu) *Config {
			return cfg("http://127.0.0.1:1/open-apis/bot/v2/hook/"+token, secret)
		}, class: notify.Retry},
		{name: "throttled by the gateway", cfg: func(f *providertest.Feishu) *Config { return cfg(f.URL(), secret) },
			setup: func(f *providertest.Feishu) { f.FailNext(providertest.Failure{Status: 429, Body: "{}"}) }, class: notify.Retry, code: "429"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewFeishu(t, token, secret)
			if tc.setup != nil {
				tc.setup(fake)
			}
			c := tc.cfg(fake)
			n := newNotifier(t, c)
			err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
			var e *notify.Error
			if !errors.As(err, &e) || e.Class != tc.class || e.Code != tc.code || e.RetryAfter != tc.after {
				t.Fatalf("err = %#v (%v), want %s %s", e, err, tc.class, tc.code)
			}
			for _, s := range []string{token, secret, "other-token", "SECwrong-but-long"} {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains a secret", err)
				}
			}
		})
	}
}

func TestFiveRequestsASecondArePaced(t *testing.T) {
	fake := providertest.NewFeishu(t, token, "")
	n := newNotifier(t, cfg(fake.URL(), ""))
	start := time.Now()
	for i := 0; i < 7; i++ {
		if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	if len(fake.Messages()) != 7 {
		t.Fatalf("accepted %d of 7", len(fake.Messages()))
	}
	// Seven messages at 5/s need more than a second; the fake would have refused a sixth within one.
	if time.Since(start) < time.Second {
		t.Errorf("7 messages in %s", time.Since(start))
	}
}

func TestConfigValidateAndSecrets(t *testing.T) {
	f := file(t)
	ok := cfg("https://open.feishu.cn/open-apis/bot/v2/hook/abc-123", "s3cr3t-value", func(c *Config) { c.AtOpenIDs = []string{"ou_1", "all"} })
	if err := ok.Validate("receiver.channels.lark", f); err != nil {
		t.Fatal(err)
	}
	s := strings.Join(ok.Secrets(), ",")
	for _, want := range []string{"https://open.feishu.cn/open-apis/bot/v2/hook/abc-123", "abc-123", "s3cr3t-value"} {
		if !strings.Contains(s, want) {
			t.Errorf("secrets lack %q: %v", want, s)
		}
	}
	if ok.Target() != "https://open.feishu.cn/open-apis/bot/v2/hook/<secret>" {
		t.Errorf("target = %q", ok.Target())
	}
	for _, tc := range []struct {
		c    *Config
		want string
	}{
		{cfg("", ""), "receiver.channels.lark.url: is required"},
		{cfg("https://open.feishu.cn/open-apis/bot/v2/hook/", ""), "must be a custom robot webhook"},
		{cfg("ftp://x/open-apis/bot/v2/hook/tok-secret", ""), "must be an http or https URL"},
		{cfg("https://open.feishu.cn/open-apis/bot/v2/hook/t", "", func(c *Config) { c.AtOpenIDs = []string{"alice"} }), `receiver.channels.lark.at_open_ids[0]: "alice" is neither`},
		{cfg("https://open.feishu.cn/open-apis/bot/v2/hook/t", "", func(c *Config) { c.SecretFile = "missing" }), "receiver.channels.lark.secret_file: cannot read secret file"},
	} {
		err := tc.c.Validate("receiver.channels.lark", f)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "tok-secret") {
			t.Errorf("errors %v, want %q", err, tc.want)
		}
	}
}

// Label and annotation text reaches the card escaped: no link, image, tag
// or <at id=all> mention of its own.
func TestAlertTextCannotInjectMarkdown(t *testing.T) {
	fake := providertest.NewFeishu(t, token, secret)
	n := newNotifier(t, cfg(fake.URL(), secret))
	if err := n.Notify(context.Background(), fixture.Hostile()); err != nil {
		t.Fatal(err)
	}
	m := fake.Messages()[0]
	for _, bad := range []string{"](javascript", "](http://evil", "<at", "<font", "@all"} {
		if strings.Contains(m.Markdown(), bad) || strings.Contains(m.Title(), bad) {
			t.Errorf("card contains %q:\n%s\n%s", bad, m.Title(), m.Markdown())
		}
	}
}

// countingLedger counts the robot messages a channel takes tokens for.
type countingLedger struct {
	takes    int
	accepted map[string]bool
}

func (c *countingLedger) Take() error             { c.takes++; return nil }
func (c *countingLedger) Sent(k string) bool      { return c.accepted[k] }
func (c *countingLedger) Accepted(k string) error { c.accepted[k] = true; return nil }

// A 10,000-alert group takes at most max_parts cards, each counted against
// the robot's rate limit and recorded, and the last says how many alerts
// are not listed with a link to all of them. A retry after the robot
// refused the last card sends only that card.
func TestHugeGroupIsCappedAndEveryCardIsCounted(t *testing.T) {
	fake := providertest.NewFeishu(t, token, secret)
	fake.PerSecond = 100
	n := newNotifier(t, cfg(fake.URL(), secret))
	n.pace.SetLimit(1000)
	l := &countingLedger{accepted: map[string]bool{}}
	ctx := notify.WithLedger(context.Background(), l)
	if err := n.Notify(ctx, fixture.Notification("Flood", 10000, 10000*60)); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) < 2 || len(msgs) > DefaultMaxParts {
		t.Fatalf("%d cards, want 2..%d", len(msgs), DefaultMaxParts)
	}
	if l.takes != len(msgs) || len(l.accepted) != len(msgs) {
		t.Errorf("%d cards took %d tokens and recorded %d", len(msgs), l.takes, len(l.accepted))
	}
	last := msgs[len(msgs)-1].Markdown()
	for _, w := range []string{"条告警未在此列出", "一条通知最多 3 段消息", "http://alertmanager:9093/#/alerts?"} {
		if !strings.Contains(last, w) {
			t.Errorf("last card lacks %q:\n...%s", w, last[max(0, len(last)-400):])
		}
	}
	// Everything recorded: a second attempt sends nothing again.
	if err := n.Notify(ctx, fixture.Notification("Flood", 10000, 10000*60)); err != nil {
		t.Fatal(err)
	}
	if got := len(fake.Messages()); got != len(msgs) {
		t.Errorf("a retry sent %d more cards", got-len(msgs))
	}
}
