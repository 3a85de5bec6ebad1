package tmpl

import (
	"context"
	"strings"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/receiver/action"
)

func linker(gk string) []action.Link {
	return []action.Link{
		{Kind: action.Claim, Label: "认领", URL: "https://recv/api/v1/actions/c-" + action.GroupOf(gk).String()},
		{Kind: action.Silence, Label: "静默 1 小时", URL: "https://recv/api/v1/actions/s-" + action.GroupOf(gk).String()},
	}
}

func TestActionLinksInEveryTextTemplate(t *testing.T) {
	tp := New(Options{Language: "zh"})
	ctx := action.WithLinker(context.Background(), linker)
	n := fixture("LLMHighErrorRate", "firing")
	claim := "https://recv/api/v1/actions/c-" + action.GroupOf(n.GroupKey).String()
	for name, want := range map[string][]string{
		Markdown:  {"[认领](" + claim + ")", "[静默 1 小时](https://recv/api/v1/actions/s-"},
		Text:      {"认领: " + claim, "静默 1 小时: "},
		EmailText: {"认领: " + claim},
		SMS:       {"认领: " + claim},
	} {
		d := NewData("zh", "", n)
		out := tp.Render(ctx, name, d)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("%s lacks %q:\n%s", name, w, out)
			}
		}
	}
	d := NewData("zh", "", n)
	html := tp.RenderHTML(ctx, EmailHTML, d)
	if !strings.Contains(html, `href="`+claim+`"`) {
		t.Errorf("email html lacks the claim button:\n%s", html)
	}
	// Without links in the context (or hidden for a card with buttons), no links.
	for _, c := range []context.Context{context.Background(), action.WithoutLinks(ctx)} {
		if out := tp.Render(c, Markdown, d); strings.Contains(out, "/api/v1/actions/") {
			t.Errorf("links without a linker:\n%s", out)
		}
	}
	// A digest carries each group's own links.
	dd := NewData("zh", "", fixture("AAA", "firing"), fixture("BBB", "firing"))
	md := tp.Render(ctx, Markdown, dd)
	for _, g := range []string{"AAA", "BBB"} {
		if !strings.Contains(md, "/c-"+action.GroupOf(fixture(g, "firing").GroupKey).String()) {
			t.Errorf("digest lacks the links of %s:\n%s", g, md)
		}
	}
	if strings.Count(md, "[认领]") != 2 {
		t.Errorf("digest has %d claim links:\n%s", strings.Count(md, "[认领]"), md)
	}
}

func TestClaimAnnouncement(t *testing.T) {
	n := fixture("LLMHighErrorRate", "firing")
	n.Note = "ann claimed at 2026-01-02T03:10:00Z (ops-dingtalk)"
	for _, lang := range []string{"zh", "en"} {
		tp := New(Options{Language: lang})
		d := NewData(lang, "", n)
		word := map[string]string{"zh": "已认领", "en": "CLAIMED"}[lang]
		title := tp.Render(context.Background(), Title, d)
		if title != "[P1]["+word+"] LLMHighErrorRate" {
			t.Errorf("%s title = %q", lang, title)
		}
		for _, name := range []string{Markdown, Text, SMS, EmailText} {
			out := tp.Render(context.Background(), name, d)
			if !strings.Contains(out, n.Note) || !strings.Contains(out, word) {
				t.Errorf("%s %s lacks the announcement:\n%s", lang, name, out)
			}
			// The announcement replaces the alert details.
			if name == Markdown && strings.Contains(out, "错误率 12%") {
				t.Errorf("%s markdown repeats the alert:\n%s", lang, out)
			}
		}
	}
}
