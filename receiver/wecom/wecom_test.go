package wecom

import (
	"context"
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

const key = "k-693b-secret"

func TestNotifyAgainstFakeRobot(t *testing.T) {
	for _, tc := range []struct {
		name      string
		cfg       Config
		ns        []*notify.Notification
		wantMsgs  int
		wantType  string
		limit     int
		wantWords []string
	}{
		{"markdown", Config{}, []*notify.Notification{fixture.Notification("LLMHighLatency", 2, 100)}, 1, "markdown", MaxMarkdownBytes, []string{"LLMHighLatency", "http://grafana:3000/d/autoglm"}},
		{"markdown with mentions adds a text", Config{MentionedMobileList: []string{"13800000000"}}, []*notify.Notification{fixture.Notification("A", 1, 10)}, 2, "", MaxMarkdownBytes, nil},
		{"text split at 2048 bytes", Config{MessageType: "text", MentionedMobileList: []string{"@all"}}, []*notify.Notification{fixture.Notification("A", 10, 5000)}, 4, "text", MaxTextBytes, []string{"(1/4)", "(4/4)"}},
		{"markdown digest split at 4096 bytes", Config{}, []*notify.Notification{fixture.Notification("A", 10, 6000), fixture.Notification("B", 3, 1000)}, 3, "markdown", MaxMarkdownBytes, []string{"] A", "] B"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := providertest.NewWeCom(t, key)
			cfg := tc.cfg
			cfg.Endpoint = ep(fake.URL())
			if err := newNotifier(t, cfg, tmpl.New(tmpl.Options{Language: "en"})).Notify(context.Background(), tc.ns...); err != nil {
				t.Fatalf("notify: %v", err)
			}
			msgs := fake.Messages()
			if len(msgs) != tc.wantMsgs {
				t.Fatalf("accepted %d, want %d", len(msgs), tc.wantMsgs)
			}
			var all string
			for _, m := range msgs {
				if tc.wantType != "" && m.MsgType != tc.wantType {
					t.Errorf("msgtype %s", m.MsgType)
				}
				if len(m.Content()) > tc.limit || !utf8.ValidString(m.Content()) {
					t.Errorf("bad part: %d bytes", len(m.Content()))
				}
				all += m.Content()
			}
			for _, w := range tc.wantWords {
				if !strings.Contains(all, w) {
					t.Errorf("messages miss %q", w)
				}
			}
			if len(tc.cfg.MentionedMobileList) > 0 {
				last := msgs[len(msgs)-1]
				if last.Text == nil || strings.Join(last.Text.MentionedMobileList, ",") != strings.Join(tc.cfg.MentionedMobileList, ",") {
					t.Errorf("last message does not mention %v: %+v", tc.cfg.MentionedMobileList, last)
				}
			}
		})
	}
}

func TestErrorsAreClassified(t *testing.T) {
	t.Run("bad key", func(t *testing.T) {
		fake := providertest.NewWeCom(t, key)
		err := newNotifier(t, Config{Endpoint: ep(strings.Replace(fake.URL(), key, "other", 1))}, nil).Notify(context.Background(), fixture.Notification("A", 1, 10))
		if c, code, _ := notify.Classify(err); c != notify.Config || code != "93000" {
			t.Fatalf("got %v", err)
		}
		if strings.Contains(err.Error(), "other") {
			t.Fatalf("error leaks the key: %v", err)
		}
	})
	t.Run("rate limit", func(t *testing.T) {
		fake := providertest.NewWeCom(t, key)
		now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
		fake.SetNow(func() time.Time { return now })
		n := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil)
		for i := 0; i < RateLimit; i++ {
			if err := n.Notify(context.Background(), fixture.Notification("A", 1, 10)); err != nil {
				t.Fatal(err)
			}
		}
		err := n.Notify(context.Background(), fixture.Notification("A", 1, 10))
		if c, code, after := notify.Classify(err); c != notify.Retry || code != "45009" || after != time.Minute {
			t.Fatalf("got %v", err)
		}
	})
	for _, tc := range []struct {
		body      string
		status    int
		wantClass notify.Class
	}{
		{`{"errcode":-1,"errmsg":"system busy"}`, 200, notify.Retry},
		{`{"errcode":93004,"errmsg":"robot disabled"}`, 200, notify.Config},
		{`{"errcode":40008,"errmsg":"invalid message type"}`, 200, notify.Permanent},
		{`oops`, 503, notify.Retry},
	} {
		fake := providertest.NewWeCom(t, key)
		fake.FailNext(providertest.Failure{Status: tc.status, Body: tc.body})
		err := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil).Notify(context.Background(), fixture.Notification("A", 1, 10))
		if c, _, _ := notify.Classify(err); c != tc.wantClass || strings.Contains(err.Error(), key) {
			t.Errorf("%s: got %v", tc.body, err)
		}
	}
}

func TestRobotSaysTooLongIsResplit(t *testing.T) {
	fake := providertest.NewWeCom(t, key)
	// First answer 40058 as if the robot measured more than we did.
	fake.FailNext(providertest.Failure{Status: 200, Body: `{"errcode":40058,"errmsg":"markdown.content exceed max length"}`})
	if err := newNotifier(t, Config{Endpoint: ep(fake.URL())}, nil).Notify(context.Background(), fixture.Notification("A", 5, 3000)); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) < 2 {
		t.Fatalf("expected a re-split, got %d messages", len(msgs))
	}
	for _, m := range msgs {
		if len(m.Content()) > MaxMarkdownBytes/2 {
			t.Errorf("re-split part of %d bytes", len(m.Content()))
		}
	}
}

// newNotifier builds a notifier the way the channel builder does: from the
// defaults plus the given keys.
func newNotifier(t testing.TB, c Config, tp *tmpl.Templates) *Notifier {
	t.Helper()
	c.HTTP = DefaultConfig().HTTP
	n, err := New(&c, tp, "")
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// ep is the url key of a channel.
func ep(u string) chanhttp.Endpoint { return chanhttp.Endpoint{URL: fileconfig.Secret(u)} }

func TestActionCardAndOnCallMentions(t *testing.T) {
	fake := providertest.NewWeCom(t, key)
	n := newNotifier(t, Config{Endpoint: ep(fake.URL()), MentionedMobileList: []string{"13900000000"}}, nil)
	ctx := action.WithLinker(context.Background(), func(string) []action.Link {
		return []action.Link{{Kind: action.Claim, Label: "认领", URL: "https://recv/api/v1/actions/c"}, {Kind: action.Silence, Label: "静默 1 小时", URL: "https://recv/api/v1/actions/s1"},
			{Kind: action.Silence, Label: "静默 4 小时", URL: "https://recv/api/v1/actions/s4"}, {Kind: action.Silence, Label: "静默 8 小时", URL: "https://recv/api/v1/actions/s8"}}
	})
	ctx = oncall.WithRecipients(ctx, []oncall.Recipient{{ID: "ann", Person: oncall.Person{Phone: "+8613800000001"}}})
	if err := n.Notify(ctx, fixture.Notification("LLMHighErrorRate", 1, 100)); err != nil {
		t.Fatal(err)
	}
	msgs := fake.Messages()
	if len(msgs) != 3 || msgs[0].MsgType != "markdown" || msgs[1].MsgType != "template_card" || msgs[2].MsgType != "text" {
		t.Fatalf("messages = %+v", msgs)
	}
	if strings.Contains(msgs[0].Content(), "/api/v1/actions/") {
		t.Errorf("markdown repeats the card's actions:\n%s", msgs[0].Content())
	}
	c := msgs[1].TemplateCard
	if len(c.JumpList) != 3 || c.JumpList[0].Title != "认领" || c.CardAction.URL != "https://recv/api/v1/actions/c" || c.MainTitle.Title != "LLMHighErrorRate" {
		t.Errorf("card = %+v", c)
	}
	if m := msgs[2].Text.MentionedMobileList; len(m) != 1 || m[0] != "13800000001" {
		t.Errorf("mentions = %v", m)
	}
}
