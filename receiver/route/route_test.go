package route

import (
	"fmt"
	"strings"
	"testing"
	"time"

	amwebhook "github.com/prometheus/alertmanager/notify/webhook"
	"github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

func router(t *testing.T) *Router {
	t.Helper()
	c, err := config.Parse([]byte(`receiver:
  storage: {path: /tmp/r}
  channels: {sms: {type: file}, im: {type: file}, mail: {type: file}, audit: {type: file}}
  routes:
    - name: everything-llm
      matchers: ['route=~"/v1/.*"']
      channels: [audit]
      continue: true
    - name: pager
      matchers: ['severity="critical"']
      channels: [sms, im]
      fallback: [mail]
      escalate_after: 2m
    - matchers: ['severity="warning"']
      channels: [im, mail]
  default_route: {channels: [mail]}
  retry: {escalate_after_failures: 4, expire_after: 30m}
`), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func data(common template.KV, sevs ...string) *template.Data {
	d := &template.Data{Status: "firing", CommonLabels: common}
	for _, s := range sevs {
		d.Alerts = append(d.Alerts, template.Alert{Labels: template.KV{"severity": s}})
	}
	return d
}

func TestMatchOrderContinueDefault(t *testing.T) {
	r := router(t)
	for _, tc := range []struct {
		name   string
		labels template.KV
		want   string
	}{
		{"critical on llm route", template.KV{"severity": "critical", "route": "/v1/chat/completions"}, "everything-llm,pager"},
		{"critical elsewhere", template.KV{"severity": "critical"}, "pager"},
		{"warning", template.KV{"severity": "warning", "route": "/healthz"}, "routes[2]"},
		{"info goes to default", template.KV{"severity": "info"}, "default"},
		{"a matching continue route counts as a match (as in Alertmanager)", template.KV{"route": "/v1/x"}, "everything-llm"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var names []string
			for _, rt := range r.Match(data(tc.labels)) {
				names = append(names, rt.Name)
			}
			if got := strings.Join(names, ","); got != tc.want {
				t.Errorf("routes = %s, want %s", got, tc.want)
			}
		})
	}
	rs := r.Match(data(template.KV{"severity": "critical"}))
	if rs[0].EscalateAfter != 2*time.Minute || rs[0].EscalateAfterFailures != 4 || rs[0].Fallback[0] != "mail" {
		t.Errorf("pager route = %+v", rs[0])
	}
}

func TestPriorityIsMostUrgent(t *testing.T) {
	r := router(t)
	for _, tc := range []struct {
		sevs []string
		want notify.Priority
	}{
		{[]string{"critical"}, notify.P1}, {[]string{"warning"}, notify.P2}, {[]string{"info"}, notify.P3},
		{[]string{"info", "critical", "warning"}, notify.P1}, {[]string{""}, notify.P3}, {[]string{"warning", "info"}, notify.P2},
	} {
		if got := r.Priority(data(nil, tc.sevs...)); got != tc.want {
			t.Errorf("Priority(%v) = %s, want %s", tc.sevs, got, tc.want)
		}
	}
}

func TestBaseKeyIdentity(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	mk := func(status string, end time.Time, fps ...string) *template.Data {
		d := &template.Data{Status: status}
		for _, fp := range fps {
			d.Alerts = append(d.Alerts, template.Alert{Fingerprint: fp, StartsAt: t0, EndsAt: end})
		}
		return d
	}
	a := BaseKey("g", mk("firing", time.Time{}, "1", "2"))
	if a != BaseKey("g", mk("firing", time.Time{}, "2", "1")) {
		t.Error("alert order must not matter")
	}
	for name, other := range map[string]string{
		"group":  BaseKey("h", mk("firing", time.Time{}, "1", "2")),
		"status": BaseKey("g", mk("resolved", time.Time{}, "1", "2")),
		"alerts": BaseKey("g", mk("firing", time.Time{}, "1")),
		"end":    BaseKey("g", mk("firing", t0.Add(time.Hour), "1", "2")),
	} {
		if other == a {
			t.Errorf("different %s gives the same key", name)
		}
	}
	if ChannelKey(a, "x") == ChannelKey(a, "y") {
		t.Error("channel must be part of the key")
	}
}

// Plan is a pure function: the same message and time always give the same
// deliveries, and everything a delivery needs comes from the message and the routes.
func TestPlan(t *testing.T) {
	r := router(t)
	now := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	msg := func(status string, common template.KV, sevs ...string) *amwebhook.Message {
		d := data(common, sevs...)
		d.Status, d.Receiver = status, "autoglm"
		for i := range d.Alerts {
			d.Alerts[i].Status, d.Alerts[i].Fingerprint = status, fmt.Sprintf("fp%d", i)
			d.Alerts[i].Labels["alertname"] = "LLMHighErrorRate"
			d.Alerts[i].StartsAt = now.Add(-time.Minute)
		}
		return &amwebhook.Message{Data: d, Version: "4", GroupKey: "{}:{alertname=\"LLMHighErrorRate\"}", TruncatedAlerts: 2}
	}
	type want struct {
		routes   string
		outcome  string
		channels string // channel/escalate_at offset/fallback
		priority notify.Priority
	}
	for _, tc := range []struct {
		name string
		msg  *amwebhook.Message
		want want
	}{
		{"critical on an LLM route: continue route first, a channel once", msg("firing", template.KV{"severity": "critical", "route": "/v1/chat"}, "critical"),
			want{"everything-llm,pager", store.OutcomeReceived, "audit/0s/ sms/2m0s/mail im/2m0s/mail", notify.P1}},
		{"warning", msg("firing", template.KV{"severity": "warning"}, "warning", "info"),
			want{"routes[2]", store.OutcomeReceived, "im/0s/ mail/0s/", notify.P2}},
		{"nothing matches: default route", msg("resolved", template.KV{"severity": "info"}, "info"),
			want{"default", store.OutcomeReceived, "mail/0s/", notify.P3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := r.Plan(tc.msg, now)
			if got := strings.Join(p.Routes, ","); got != tc.want.routes {
				t.Errorf("routes %s, want %s", got, tc.want.routes)
			}
			if p.Priority != tc.want.priority || p.Record.Priority != string(tc.want.priority) {
				t.Errorf("priority %s (record %s), want %s", p.Priority, p.Record.Priority, tc.want.priority)
			}
			if p.Record.Outcome != tc.want.outcome || p.Record.Route != tc.want.routes || p.Record.GroupKey != tc.msg.GroupKey ||
				strings.Join(p.Record.Alertnames, ",") != "LLMHighErrorRate" || len(p.Record.Fingerprints) != len(tc.msg.Alerts) || !p.Record.Time.Equal(now) {
				t.Errorf("record %+v", p.Record)
			}
			var got []string
			base := BaseKey(tc.msg.GroupKey, tc.msg.Data)
			for _, d := range p.Deliveries {
				esc := time.Duration(0)
				if !d.EscalateAt.IsZero() {
					esc = d.EscalateAt.Sub(now)
				}
				got = append(got, fmt.Sprintf("%s/%s/%s", d.Channel, esc, strings.Join(d.Fallback, ",")))
				if d.ID != ChannelKey(base, d.Channel) || d.Base != base || d.GroupKey != tc.msg.GroupKey || d.Priority != tc.want.priority ||
					d.TruncatedAlerts != 2 || d.Data != tc.msg.Data || !d.Received.Equal(now) || d.ExpireAt.Sub(now) != 30*time.Minute {
					t.Errorf("delivery %+v", d)
				}
			}
			if strings.Join(got, " ") != tc.want.channels {
				t.Errorf("deliveries %s, want %s", strings.Join(got, " "), tc.want.channels)
			}
			if again := r.Plan(tc.msg, now); fmt.Sprint(again.Routes) != fmt.Sprint(p.Routes) || len(again.Deliveries) != len(p.Deliveries) || again.Deliveries[0].ID != p.Deliveries[0].ID {
				t.Error("Plan is not deterministic")
			}
		})
	}
}

func TestPlanUnrouted(t *testing.T) {
	c, err := config.Parse([]byte("receiver:\n  storage: {path: /tmp/r}\n  channels: {a: {type: file}}\n  routes: [{matchers: ['team=\"db\"'], channels: [a]}]\n"), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	d := data(template.KV{"team": "web"}, "critical")
	d.Alerts[0].Labels["alertname"] = "X"
	p := r.Plan(&amwebhook.Message{Data: d, GroupKey: "g"}, time.Unix(0, 0))
	if len(p.Routes) != 0 || len(p.Deliveries) != 0 || p.Record.Outcome != store.OutcomeUnrouted || p.Priority != notify.P1 {
		t.Errorf("unrouted plan = %+v %+v", p, p.Record)
	}
}
