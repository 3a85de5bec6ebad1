package route

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
)

func router(t *testing.T) *Router {
	t.Helper()
	f, err := config.Parse([]byte(`receiver:
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
  retry: {escalate_after_failures: 4}
`), "r.yml")
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(f.Receiver)
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
