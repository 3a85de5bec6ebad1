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

// Label and annotation text reaches the robot escaped: no link, <@id> or
// @all mention of its own, in markdown and in text messages.
func TestAlertTextCannotInjectMarkdown(t *testing.T) {
	for _, mt := range []string{"markdown", "text"} {
		fake := providertest.NewWeCom(t, key)
		n := newNotifier(t, Config{Endpoint: ep(fake.URL()), MessageType: mt}, nil)
		if err := n.Notify(context.Background(), fixture.Hostile()); err != nil {
			t.Fatal(err)
		}
		m := fake.Messages()[0]
		for _, bad := range []string{"](javascript", "](http://evil", "@all", "<@", "<font"} {
			if strings.Contains(m.Content(), bad) {
				t.Errorf("%s: message contains %q:\n%s", mt, bad, m.Content())
			}
		}
		if m.Text != nil && len(m.Text.MentionedList) > 0 {
			t.Errorf("%s: mentions %v", mt, m.Text.MentionedList)
		}
	}
}

// A 10,000-alert group takes at most max_parts robot messages, says how
// many alerts are not listed and links to all of them; with mentions, the
// follow-up text is one more message and every message takes a token.
func TestHugeGroupIsCapped(t *testing.T) {
	for _, mt := range []string{"markdown", "text"} {
		fake := providertest.NewWeCom(t, key)
		n := newNotifier(t, Config{Endpoint: ep(fake.URL()), MessageType: mt, MentionedMobileList: []string{"13800000000"}}, tmpl.New(tmpl.Options{Language: "en"}))
		takes := 0
		l := &ledgerFunc{take: func() error { takes++; return nil }}
		if err := n.Notify(notify.WithLedger(context.Background(), l), fixture.Notification("Flood", 10000, 10000*60)); err != nil {
			t.Fatal(err)
		}
		msgs := fake.Messages()
		parts := len(msgs)
		if mt == "markdown" {
			parts-- // the mention
		}
		if parts < 1 || parts > DefaultMaxParts {
			t.Fatalf("%s: %d robot messages for the text, want 1..%d", mt, parts, DefaultMaxParts)
		}
		if takes != fake.Requests() {
			t.Errorf("%s: took %d tokens for %d robot messages", mt, takes, fake.Requests())
		}
		text := msgs[parts-1].Content()
		if !strings.Contains(text, "more alerts are not listed here (a notification takes at most 5 messages)") || !strings.Contains(text, "http://alertmanager:9093/#/alerts?") {
			t.Errorf("%s: last part lacks the note and link:\n...%s", mt, text[max(0, len(text)-300):])
		}
	}
}

type ledgerFunc struct{ take func() error }

func (l *ledgerFunc) Take() error           { return l.take() }
func (l *ledgerFunc) Sent(string) bool      { return false }
func (l *ledgerFunc) Accepted(string) error { return nil }

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
