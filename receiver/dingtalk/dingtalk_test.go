package dingtalk

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	fileconfig "github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/action"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/chanhttp"
	"github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
	"github.com/open-autoglm/autoglm-monitor/receiver/providertest"
	"github.com/open-autoglm/autoglm-monitor/receiver/tmpl"
)

const (
	token  = "tok-7f3a9c"
	secret = "SECexample0123456789"
)

// A vector computed independently (Python hmac/base64/urllib) from the
// algorithm in DingTalk's custom robot documentation.
func TestSignVector(t *testing.T) {
	if got := Sign("1700000000000", secret); got != "figG6qqCA/lRh0hsGCW2zNtNV5znkAFut5BI0zKhqnQ=" {
		t.Fatalf("Sign = %s", got)
	}
	u, err := SignURL("https://oapi.dingtalk.com/robot/send?access_token=T", secret, time.UnixMilli(1700000000000))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(u, "sign=figG6qqCA%2FlRh0hsGCW2zNtNV5znkAFut5BI0zKhqnQ%3D") || !strings.Contains(u, "timestamp=1700000000000") || !strings.Contains(u, "access_token=T") {
		t.Fatalf("SignURL = %s", u)
	}
}

func TestNotifyAgainstFakeRobot(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cfg        func(fake *providertest.DingTalk) Config
		ns         []*notify.Notification
		wantParts  int
		wantClass  notify.Class
		wantCode   string
		wantErr    bool
		wantInText []string
	}{
		{
			name: "signed markdown with mentions",
			cfg: func(f *providertest.DingTalk) Config {
				return Config{Endpoint: ep(f.URL()), Secret: fileconfig.Secret(secret), AtMobiles: []string{"13800000000"}}
			},
			ns:         []*notify.Notification{fixture.Notification("LLMHighErrorRate", 2, 200)},
			wantParts:  1,
			wantInText: []string{"LLMHighErrorRate", "@13800000000", "http://prometheus:9090/graph", "http://grafana:3000/d/autoglm"},
		},
		{
			name: "wrong secret is a configuration error",
			cfg: func(f *providertest.DingTalk) Config {
				return Config{Endpoint: ep(f.URL()), Secret: fileconfig.Secret("SECwrong")}
			},
			ns:        []*notify.Notification{fixture.Notification("A", 1, 10)},
			wantErr:   true,
			wantClass: notify.Config, wantCode: "310000",
		},
		{
			name: "unknown token is a configuration error",
			cfg: func(f *providertest.DingTalk) Config {
				return Config{Endpoint: ep(strings.Replace(f.URL(), token, "nope", 1)), Secret: fileconfig.Secret(secret)}
			},
			ns:        []*notify.Notification{fixture.Notification("A", 1, 10)},
			wantErr:   true,
			wantClass: notify.Config, wantCode: "300005",
		},
		{
			name: "oversize digest is split on rune and line boundaries",
			cfg: func(f *providertest.DingTalk) Config {
				return Config{Endpoint: ep(f.URL()), Secret: fileconfig.Secret(secret)}
			},
			ns:         []*notify.Notification{fixture.Notification("A", 40, 30000), fixture.Notification("B", 10, 9000)},
			wantParts:  3,
			wantInText: []string{"(1/3)", "(3/3)"},
		},
		{
			name: "actioncard links to the source",
			cfg: func(f *providertest.DingTalk) Config {
				return Config{Endpoint: ep(f.URL()), MessageType: "actioncard", Secret: fileconfig.Secret(secret)}
			},
			ns:         []*notify.Notification{fixture.Notification("A", 1, 10)},
			wantParts:  1,
			wantInText: []string{"[P1]"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewDingTalk(t, token, secret)
			n := newNotifier(t, tc.cfg(fake), tmpl.New(tmpl.Options{}), nil)
			err := n.Notify(context.Background(), tc.ns...)
			if tc.wantErr {
				class, code, _ := notify.Classify(err)
				if err == nil || class != tc.wantClass || code != tc.wantCode {
					t.Fatalf("err = %v (class %s code %s), want %s %s", err, class, code, tc.wantClass, tc.wantCode)
				}
				if strings.Contains(err.Error(), token) || strings.Contains(err.Error(), "SECwrong") {
					t.Fatalf("error leaks a secret: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("notify: %v", err)
			}
			msgs := fake.Messages()
			if len(msgs) != tc.wantParts {
				t.Fatalf("accepted %d messages, want %d", len(msgs), tc.wantParts)
			}
			var all string
			for _, m := range msgs {
				c := m.Content()
				if len(c) > MaxBytes || !utf8.ValidString(c) {
					t.Errorf("message of %d bytes, valid utf-8 %v", len(c), utf8.ValidString(c))
				}
				all += c
			}
			for _, w := range tc.wantInText {
				if !strings.Contains(all, w) {
					t.Errorf("messages miss %q", w)
				}
			}
			if strings.Contains(tc.name, "mentions") && (msgs[0].At == nil || msgs[0].At.AtMobiles[0] != "13800000000") {
				t.Errorf("at = %+v", msgs[0].At)
			}
			if strings.Contains(tc.name, "actioncard") && (msgs[0].ActionCard == nil || msgs[0].ActionCard.SingleURL != "http://prometheus:9090/graph?g0.expr=x") {
				t.Errorf("action card = %+v", msgs[0].ActionCard)
			}
			if strings.Contains(tc.name, "digest") {
				if !strings.Contains(all, "] A") || !strings.Contains(all, "] B") {
					t.Error("digest misses a group")
				}
				for i, m := range msgs[:len(msgs)-1] {
					if !strings.HasSuffix(m.Content(), "\n") {
						t.Errorf("part %d does not end on a line", i)
					}
				}
			}
		})
	}
}

func TestRateLimitAndRecovery(t *testing.T) {
	fake := providertest.NewDingTalk(t, token, "")
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	fake.SetNow(func() time.Time { return now })
	n := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil, func() time.Time { return now })
	for i := 0; i < RateLimit; i++ {
		if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
	class, code, after := notify.Classify(err)
	if class != notify.Retry || code != "130101" || after != time.Minute {
		t.Fatalf("21st message: %v (class %s code %s after %s)", err, class, code, after)
	}
	now = now.Add(61 * time.Second)
	if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
	if got := len(fake.Messages()); got != RateLimit+1 {
		t.Fatalf("accepted %d", got)
	}
}

func TestRobotSaysTooLongAfterOurSplit(t *testing.T) {
	fake := providertest.NewDingTalk(t, token, "")
	fake.MaxBytes = 6000 // the robot counts more strictly than our split
	n := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil, nil)
	if err := n.Notify(context.Background(), fixture.Notification("A", 30, 15000)); err != nil {
		t.Fatalf("notify: %v", err)
	}
	msgs := fake.Messages()
	if len(msgs) < 3 {
		t.Fatalf("expected a re-split into >= 3 parts, got %d", len(msgs))
	}
	for _, m := range msgs {
		if len(m.Content()) > 6000 {
			t.Errorf("part of %d bytes accepted", len(m.Content()))
		}
	}
}

func TestFailuresAreClassifiedAndRedacted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		fail      providertest.Failure
		wantClass notify.Class
		wantCode  string
	}{
		{"busy", providertest.Failure{Status: 200, Body: `{"errcode":-1,"errmsg":"系统繁忙"}`}, notify.Retry, "-1"},
		{"gateway down", providertest.Failure{Status: 502, Body: "bad gateway"}, notify.Retry, "502"},
		{"keyword missing", providertest.Failure{Status: 200, Body: `{"errcode":310000,"errmsg":"keywords not in content"}`}, notify.Config, "310000"},
		{"unsafe link", providertest.Failure{Status: 200, Body: `{"errcode":430102,"errmsg":"含有不安全的外链"}`}, notify.Permanent, "430102"},
		{"garbage", providertest.Failure{Status: 200, Body: `<html>`}, notify.Retry, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewDingTalk(t, token, secret)
			fake.FailNext(tc.fail)
			n := newNotifier(t, Config{Endpoint: ep(fake.URL()), Secret: fileconfig.Secret(secret)}, nil, nil)
			err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
			class, code, _ := notify.Classify(err)
			if class != tc.wantClass || code != tc.wantCode {
				t.Fatalf("got %v (class %s code %q)", err, class, code)
			}
			msg := err.Error()
			for _, s := range []string{token, secret, "sign=", "timestamp="} {
				if strings.Contains(msg, s) {
					t.Errorf("error %q leaks %q", msg, s)
				}
			}
		})
	}
	// Transport errors carry the URL inside *url.Error; it must be redacted too.
	n := newNotifier(t, Config{Endpoint: ep("http://127.0.0.1:1/robot/send?access_token=" + token), Secret: fileconfig.Secret(secret)}, nil, nil)
	err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
	var ue *url.Error
	if err == nil || strings.Contains(err.Error(), token) || errors.As(err, &ue) {
		t.Fatalf("transport error %v leaks or keeps the URL", err)
	}
	if class, _, _ := notify.Classify(err); class != notify.Retry {
		t.Fatalf("transport error class %s", class)
	}
}

func TestRetryResendsOnlyMissingParts(t *testing.T) {
	fake := providertest.NewDingTalk(t, token, "")
	n := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil, nil)
	big := fixture.Notification("A", 40, 45000) // three parts
	// Part 2 hits the rate limit; parts 1 was accepted.
	fake.FailNext(providertest.Failure{}, providertest.Failure{Status: 200, Body: `{"errcode":130101,"errmsg":"send too fast"}`})
	err := n.Notify(context.Background(), big)
	if c, code, _ := notify.Classify(err); c != notify.Retry || code != "130101" || !strings.Contains(err.Error(), "part 2/3") {
		t.Fatalf("got %v", err)
	}
	if err := n.Notify(context.Background(), big); err != nil {
		t.Fatalf("retry: %v", err)
	}
	msgs := fake.Messages()
	if len(msgs) != 3 {
		t.Fatalf("accepted %d parts, want 3 (no duplicate of part 1)", len(msgs))
	}
	for i, m := range msgs {
		if !strings.HasPrefix(m.Content(), fmt.Sprintf("(%d/3)", i+1)) {
			t.Errorf("part %d starts %q", i, m.Content()[:10])
		}
	}
}

// newNotifier builds a notifier the way the channel builder does: from the
// defaults plus the given keys.
func newNotifier(t testing.TB, c Config, tp *tmpl.Templates, now func() time.Time) *Notifier {
	t.Helper()
	c.HTTP = DefaultConfig().HTTP
	n, err := New(&c, tp, now, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ep is the url key of a channel.
func ep(u string) chanhttp.Endpoint { return chanhttp.Endpoint{URL: fileconfig.Secret(u)} }

// Label and annotation text reaches the robot escaped: no link, image,
// tag or @all mention of its own.
func TestAlertTextCannotInjectMarkdown(t *testing.T) {
	for _, mt := range []string{"markdown", "actioncard"} {
		fake := providertest.NewDingTalk(t, token, secret)
		n := newNotifier(t, Config{Endpoint: ep(fake.URL()), Secret: fileconfig.Secret(secret), MessageType: mt}, tmpl.New(tmpl.Options{}), nil)
		if err := n.Notify(context.Background(), fixture.Hostile()); err != nil {
			t.Fatal(err)
		}
		m := fake.Messages()[0]
		text := m.Content()
		for _, bad := range []string{"](javascript", "](http://evil", "@all", "<@", "<font"} {
			if strings.Contains(text, bad) {
				t.Errorf("%s: message contains %q:\n%s", mt, bad, text)
			}
		}
		if m.At != nil && m.At.IsAtAll {
			t.Errorf("%s: message mentions everyone", mt)
		}
		if m.ActionCard != nil && m.ActionCard.SingleURL != "" {
			t.Errorf("action card links to %q", m.ActionCard.SingleURL)
		}
	}
}

// countingLedger counts the provider messages a channel takes tokens for.
type countingLedger struct {
	takes    int
	accepted []string
}

func (c *countingLedger) Take() error               { c.takes++; return nil }
func (c *countingLedger) Sent(string) bool          { return false }
func (c *countingLedger) Accepted(key string) error { c.accepted = append(c.accepted, key); return nil }

// A 10,000-alert group and a 512 KB description each take at most
// max_parts robot messages: the text says how many alerts are not listed
// and links to all of them, and every message takes one rate-limit token.
func TestHugeGroupIsCappedAndEveryMessageIsCounted(t *testing.T) {
	huge := fixture.Notification("Flood", 10000, 10000*60)
	long := fixture.Notification("LongText", 1, 10)
	long.Data.Alerts[0].Annotations["description"] = strings.Repeat("描述很长的告警内容 ", 512<<10/28)
	for _, tc := range []struct {
		name     string
		n        *notify.Notification
		maxParts int
		want     []string
	}{
		{"10000 alerts", huge, 0, []string{"条告警未在此列出", "一条通知最多 3 段消息", "(http://alertmanager:9093/#/alerts?", "filter=%7Balertname%3D%22Flood%22%7D"}},
		{"10000 alerts, max_parts 1", huge, 1, []string{"条告警未在此列出", "一条通知最多 1 段消息"}},
		{"512 KB description", long, 0, []string{"消息过长，已截断"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewDingTalk(t, token, secret)
			cfg := Config{Endpoint: ep(fake.URL()), Secret: fileconfig.Secret(secret)}
			cfg.MaxParts = tc.maxParts
			n := newNotifier(t, cfg, tmpl.New(tmpl.Options{}), nil)
			l := &countingLedger{}
			if err := n.Notify(notify.WithLedger(context.Background(), l), tc.n); err != nil {
				t.Fatal(err)
			}
			msgs := fake.Messages()
			limit := cfg.Parts.Or(DefaultMaxParts)
			if len(msgs) == 0 || len(msgs) > limit {
				t.Fatalf("%d robot messages, want 1..%d", len(msgs), limit)
			}
			if l.takes != fake.Requests() {
				t.Errorf("took %d tokens for %d robot messages", l.takes, fake.Requests())
			}
			if len(msgs) > 1 && len(l.accepted) != len(msgs) {
				t.Errorf("recorded %d of %d accepted parts", len(l.accepted), len(msgs))
			}
			last := msgs[len(msgs)-1].Content()
			for _, w := range tc.want {
				if !strings.Contains(last, w) {
					t.Errorf("last message lacks %q:\n...%s", w, last[max(0, len(last)-400):])
				}
			}
		})
	}
}

func TestActionButtonsAndOnCallMentions(t *testing.T) {
	fake := providertest.NewDingTalk(t, token, secret)
	n := newNotifier(t, Config{Endpoint: ep(fake.URL()), Secret: secret, AtMobiles: []string{"13900000000"}}, tmpl.New(tmpl.Options{}), nil)
	nt := fixture.Notification("LLMHighErrorRate", 1, 100)
	ctx := action.WithLinker(context.Background(), func(gk string) []action.Link {
		return []action.Link{{Kind: action.Claim, Label: "认领", URL: "https://recv/api/v1/actions/c"}, {Kind: action.Silence, Label: "静默 1 小时", URL: "https://recv/api/v1/actions/s1"}}
	})
	ctx = oncall.WithRecipients(ctx, []oncall.Recipient{{ID: "ann", Person: oncall.Person{Phone: "+8613800000001"}}, {ID: "bob", Person: oncall.Person{DingTalkUserID: "bob01"}}})
	if err := n.Notify(ctx, nt); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) != 2 {
		t.Fatalf("%d messages, want the card and the mentions", len(msgs))
	}
	card := msgs[0].ActionCard
	if msgs[0].MsgType != "actionCard" || card == nil || len(card.Btns) != 2 || card.Btns[0].Title != "认领" || card.Btns[0].ActionURL != "https://recv/api/v1/actions/c" {
		t.Fatalf("card = %+v", msgs[0])
	}
	if strings.Contains(card.Text, "/api/v1/actions/") {
		t.Errorf("the card repeats its buttons as links:\n%s", card.Text)
	}
	// The people on call are mentioned, not the channel's own list.
	at := msgs[1].At
	if msgs[1].MsgType != "markdown" || at == nil || len(at.AtMobiles) != 1 || at.AtMobiles[0] != "13800000001" || len(at.AtUserIDs) != 1 || at.AtUserIDs[0] != "bob01" {
		t.Errorf("mention message = %+v", msgs[1])
	}
	if !strings.Contains(msgs[1].Content(), "@13800000001") || strings.Contains(msgs[1].Content(), "13900000000") {
		t.Errorf("mention text = %q", msgs[1].Content())
	}
}
