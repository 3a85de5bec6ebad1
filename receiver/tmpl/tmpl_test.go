package tmpl

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

func fixture(name, status string) *notify.Notification {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	return &notify.Notification{
		ID: "id-" + name, GroupKey: "{}:{alertname=\"" + name + "\"}", Priority: notify.P1, Route: "critical",
		Data: &amtemplate.Data{
			Receiver: "autoglm", Status: status,
			Alerts: amtemplate.Alerts{{
				Status: status, StartsAt: start, GeneratorURL: "http://prom:9090/graph?g0.expr=up",
				Labels:      amtemplate.KV{"alertname": name, "severity": "critical", "http_route": "/v1/chat/completions"},
				Annotations: amtemplate.KV{"summary": "错误率 12% 超过阈值", "dashboard_url": "http://grafana/d/llm", "runbook_url": "http://runbook/x"},
			}},
			GroupLabels:       amtemplate.KV{"alertname": name},
			CommonLabels:      amtemplate.KV{"alertname": name, "severity": "critical"},
			CommonAnnotations: amtemplate.KV{"summary": "错误率 12% 超过阈值"},
			ExternalURL:       "http://am:9093",
		},
	}
}

func TestBuiltinsRenderEveryNameInBothLanguages(t *testing.T) {
	for _, lang := range []string{"zh", "en"} {
		for _, name := range Names {
			t.Run(lang+"/"+name, func(t *testing.T) {
				var failures []Failure
				tp := New(Options{Language: lang, Reporter: func(f Failure) { failures = append(failures, f) }})
				d := NewData(lang, "", fixture("LLMHighErrorRate", "firing"))
				var out string
				if name == EmailHTML {
					out = tp.RenderHTML(context.Background(), name, d)
				} else {
					out = tp.Render(context.Background(), name, d)
				}
				if len(failures) > 0 {
					t.Fatalf("built-in failed: %v", failures)
				}
				if !strings.Contains(out, "LLMHighErrorRate") || !strings.Contains(out, "P1") {
					t.Errorf("output misses alert name or priority:\n%s", out)
				}
				wantWord := map[string]string{"zh": "告警", "en": "FIRING"}[lang]
				if !strings.Contains(out, wantWord) {
					t.Errorf("output misses %q:\n%s", wantWord, out)
				}
				if name == Markdown || name == Text || name == EmailText || name == EmailHTML {
					for _, link := range []string{"http://prom:9090/graph", "http://grafana/d/llm", "http://runbook/x"} {
						if !strings.Contains(out, link) {
							t.Errorf("output misses link %s:\n%s", link, out)
						}
					}
				}
			})
		}
	}
}

func TestDigestListsEveryGroup(t *testing.T) {
	tp := New(Options{Language: "en"})
	ns := []*notify.Notification{fixture("A", "firing"), fixture("B", "resolved"), fixture("C", "firing")}
	ns[1].Priority = notify.P2
	d := NewData("en", "", ns...)
	if !d.Digest || len(d.Groups) != 3 || len(d.Alerts) != 3 || d.Status != "firing" || d.Priority != notify.P1 {
		t.Fatalf("digest data wrong: digest=%v groups=%d alerts=%d status=%s prio=%s", d.Digest, len(d.Groups), len(d.Alerts), d.Status, d.Priority)
	}
	md := tp.Render(context.Background(), Markdown, d)
	for _, want := range []string{"Alert digest (3 notifications)", "] A", "] B", "] C", "RESOLVED"} {
		if !strings.Contains(md, want) {
			t.Errorf("digest markdown misses %q:\n%s", want, md)
		}
	}
	if title := tp.Render(context.Background(), Title, d); !strings.Contains(title, "3 notifications") {
		t.Errorf("digest title = %q", title)
	}
}

func TestOverridesAndFallback(t *testing.T) {
	n := fixture("X", "firing")
	for _, tc := range []struct {
		name            string
		channel, route  string
		want            string
		wantFailSources []string
	}{
		{"channel override", "C:{{ .Name }}", "", "C:X", nil},
		{"route wins over channel", "C:{{ .Name }}", "R:{{ .Name }}", "R:X", nil},
		{"bad route falls back to channel", "C:{{ .Name }}", "R:{{ .Nope.Deeper }}", "C:X", []string{"route"}},
		{"parse error falls back to builtin", "{{ .Name ", "", "[P1][告警:1] X", []string{"channel"}},
		{"exec error in both falls back to builtin", "{{ index .Alerts 5 }}", "{{ template \"missing\" }}", "[P1][告警:1] X", []string{"route", "channel"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tp := New(Options{Overrides: map[string]string{Title: tc.channel}})
			ctx := WithReporter(context.Background(), func(f Failure) {
				if f.Err == nil || f.Template != Title {
					t.Errorf("bad failure %+v", f)
				}
				got = append(got, f.Source)
			})
			if tc.route != "" {
				ctx = WithRouteTemplates(ctx, map[string]string{Title: tc.route})
			}
			if out := tp.Render(ctx, Title, NewData("zh", "", n)); out != tc.want {
				t.Errorf("got %q, want %q", out, tc.want)
			}
			if !slices.Equal(got, tc.wantFailSources) {
				t.Errorf("failures from %v, want %v", got, tc.wantFailSources)
			}
		})
	}
}

func TestTruncateKeepsRunes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 5, "abc"},
		{"abcdef", 4, "abc…"},
		{"服务错误率过高", 4, "服务错…"},
		{"服务", 2, "服务"},
		{"服务", 1, "…"},
		{"x", 0, ""},
	} {
		if got := Truncate(tc.in, tc.n); got != tc.want {
			t.Errorf("Truncate(%q,%d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
	s := strings.Repeat("告警", 10)
	for n := 0; n <= len(s); n++ {
		got := TruncateBytes(s, n)
		if len(got) > n || !utf8.ValidString(got) || !strings.HasPrefix(s, got) || n-len(got) >= 3 {
			t.Fatalf("TruncateBytes(%d) = %q", n, got)
		}
	}
}

// Configured templates are checked with the very functions rendering uses.
func TestConfigValidateUsesTheRenderingFunctions(t *testing.T) {
	ok := Config{Language: "en", Templates: map[string]string{Title: `{{ truncate 5 .Name }} {{ severityIcon "critical" }}`, SMS: `{{ .Status | toUpper }}`}}
	if errs := ok.Validate("c"); len(errs) != 0 {
		t.Fatalf("valid templates rejected: %v", errs)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Language: "fr"}, "c.language: must be zh or en"},
		{Config{Templates: map[string]string{"body": "x"}}, "c.templates.body: unknown template"},
		{Config{Templates: map[string]string{Title: "{{ nosuchfunc .Name }}"}}, "c.templates.title: does not parse"},
	} {
		errs := tc.cfg.Validate("c")
		if len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.cfg, errs, tc.want)
		}
	}
	if err := Check("u", "https://gw/send?token=SECRET-IN-TEMPLATE&to={{ .Phone "); err == nil || strings.Contains(err.Error(), "SECRET-IN-TEMPLATE") {
		t.Errorf("Check must fail without echoing the text: %v", err)
	}
}

// routeGroup is what Alertmanager sends for one incident on several routes
// when it groups by alertname and job: one alert per route.
func routeGroup(routes ...string) *notify.Notification {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	d := &amtemplate.Data{
		Receiver: "autoglm-warning", Status: "firing",
		GroupLabels:       amtemplate.KV{"alertname": "AutoGLMHighErrorRate", "job": "autoglm-exporter"},
		CommonLabels:      amtemplate.KV{"alertname": "AutoGLMHighErrorRate", "job": "autoglm-exporter", "severity": "warning"},
		CommonAnnotations: amtemplate.KV{"summary": "Error ratio is above alert_rules.error_rate.", "runbook_url": "http://runbook/autoglmhigherrorrate"},
	}
	for i, r := range routes {
		d.Alerts = append(d.Alerts, amtemplate.Alert{
			Status: "firing", StartsAt: start, Fingerprint: fmt.Sprintf("%016x", i),
			GeneratorURL: "http://127.0.0.1:9090/graph?g0.expr=job_route%3Ahttp_server_request_errors%3Aratio_rate5m+%3E+0.05",
			Labels:       amtemplate.KV{"alertname": "AutoGLMHighErrorRate", "job": "autoglm-exporter", "severity": "warning", "http_route": r},
			Annotations: amtemplate.KV{
				"summary":     "Error ratio is above alert_rules.error_rate.",
				"description": fmt.Sprintf("%d%% of requests to %s on autoglm-exporter fail.", 40+i, r),
				"runbook_url": "http://runbook/autoglmhigherrorrate",
			},
		})
	}
	return &notify.Notification{ID: "g", GroupKey: `{}/{severity="warning"}:{alertname="AutoGLMHighErrorRate", job="autoglm-exporter"}`, Priority: notify.P2, Route: "warning", Data: d}
}

// One incident over four routes is one message that names every route once,
// says what the alerts share once, and fits a WeCom markdown message.
func TestGroupOfRoutesRendersCompactly(t *testing.T) {
	routes := []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/generate"}
	for _, lang := range []string{"zh", "en"} {
		tp := New(Options{Language: lang})
		d := NewData(lang, "", routeGroup(routes...))
		for _, name := range []string{Markdown, Text, EmailText, EmailHTML} {
			var out string
			if name == EmailHTML {
				out = tp.RenderHTML(context.Background(), name, d)
			} else {
				out = tp.Render(context.Background(), name, d)
			}
			wantRoutes := fmt.Sprintf("(4): %s", strings.Join(routes, ", "))
			if !strings.Contains(out, wantRoutes) {
				t.Errorf("%s/%s does not list the routes %q:\n%s", lang, name, wantRoutes, out)
			}
			for i, r := range routes {
				if want := fmt.Sprintf("%d%% of requests to %s", 40+i, r); !strings.Contains(out, want) {
					t.Errorf("%s/%s misses the description of %s:\n%s", lang, name, r, out)
				}
			}
			if n := strings.Count(out, "Error ratio is above alert_rules.error_rate."); n != 1 {
				t.Errorf("%s/%s repeats the common summary %d times:\n%s", lang, name, n, out)
			}
			if n := strings.Count(out, "http://runbook/autoglmhigherrorrate"); n != 1 {
				t.Errorf("%s/%s repeats the runbook link %d times:\n%s", lang, name, n, out)
			}
			// One rule, one source link: said once, not per route.
			if n := strings.Count(out, "http://127.0.0.1:9090/graph"); n != 1 {
				t.Errorf("%s/%s repeats the common source link %d times:\n%s", lang, name, n, out)
			}
			if name == Markdown && len(out) > 4096 {
				t.Errorf("%s markdown of a four-route group is %d bytes, above a WeCom message (4096)", lang, len(out))
			}
		}
	}
}
