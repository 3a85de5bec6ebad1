package tmpl

import (
	"context"
	"strings"
	"testing"

	chanfixture "github.com/open-autoglm/autoglm-monitor/receiver/internal/fixture"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

func TestMarkdownFromAlertTextCannotInjectLinksOrMentions(t *testing.T) {
	ns := ForMarkdown([]*notify.Notification{chanfixture.Hostile()})
	tp := New(Options{})
	d := NewData("zh", "", ns...)
	out := tp.Render(context.Background(), Title, d) + "\n" + tp.Render(context.Background(), Markdown, d)
	for _, bad := range []string{"](javascript", "](http://evil", "(javascript:alert(2)", "(javascript:alert(3)", "@all", "<@", "<font", "]: javascript"} {
		if strings.Contains(out, bad) {
			t.Errorf("markdown contains %q:\n%s", bad, out)
		}
	}
	// What people read is unchanged apart from invisible characters.
	if plain := strings.ReplaceAll(out, zwsp, ""); !strings.Contains(plain, "click [here](javascript:fetch('//evil'))") || !strings.Contains(plain, "@all <@all>") {
		t.Errorf("escaped text does not read as the original:\n%s", plain)
	}
	if !strings.Contains(out, "(http://grafana/d/x%29%20%5By%5D%28javascript:z)") {
		t.Errorf("a link target was not confined to its URL:\n%s", out)
	}
	if chanfixture.Hostile().Data.Alerts[0].Labels["team"] != "@all <@all>" || ns[0].Data == chanfixture.Hostile().Data {
		t.Error("ForMarkdown changed the original")
	}
}

func TestSafeURL(t *testing.T) {
	for in, want := range map[string]string{
		"https://grafana.example.com/d/x?var-a=b": "https://grafana.example.com/d/x?var-a=b",
		"javascript:alert(1)":                     "",
		"data:text/html,x":                        "",
		"/relative":                               "",
		"http://h/a(b)":                           "http://h/a%28b%29",
	} {
		if got := SafeURL(in); got != want {
			t.Errorf("SafeURL(%q) = %q, want %q", in, got, want)
		}
	}
}
