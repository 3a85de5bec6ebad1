package slo

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

func TestFactorsScaleWithThePeriod(t *testing.T) {
	for _, tc := range []struct {
		period time.Duration
		want   []float64
	}{
		{30 * 24 * time.Hour, []float64{14.4, 6, 3, 1}},
		{28 * 24 * time.Hour, []float64{13.44, 5.6, 2.8, 28.0 / 30}},
	} {
		for i, w := range Windows() {
			if got := w.Factor(tc.period); math.Abs(got-tc.want[i]) > 1e-9 {
				t.Errorf("period %s, %s %s/%s: factor %g, want %g", tc.period, w.Severity, w.Long, w.Short, got, tc.want[i])
			}
		}
	}
	native, _ := loadTestSpecs(t)
	g, err := Build(native)
	if err != nil {
		t.Fatal(err)
	}
	// chat-latency is a 28-day SLO: its page alert uses 13.44.
	found := false
	for _, grp := range g.Groups {
		for _, r := range grp.Rules {
			if strings.Contains(r.Expr, `sloth_slo="chat-latency"} > (13.44 * 0.005`) {
				found = true
			}
		}
	}
	if !found {
		t.Error("the 28-day SLO's page alert does not use 13.44 × its budget")
	}
}

func TestSlothSpecErrorsNameFileLineAndKey(t *testing.T) {
	for _, tc := range []struct {
		name, spec string
		want       []string
	}{
		{"unknown key", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objectiv: 99\n", []string{"spec.yml:5:", "objectiv"}},
		{"wrong version", "version: prometheus/v2\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli: {raw: {error_ratio_query: 'vector(0)'}}\n    alerting: {name: A}\n",
			[]string{`spec.yml:1: version: must be "prometheus/v1"`}},
		{"objective", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 120\n    sli: {raw: {error_ratio_query: 'vector(0)'}}\n    alerting: {name: A}\n",
			[]string{"spec.yml:5: slos[0].objective: must be a percentage"}},
		{"bad PromQL", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      events:\n        error_query: sum(rate(x[{{.window}}])\n        total_query: sum(rate(x[{{.window}}]))\n    alerting: {name: A}\n",
			[]string{"spec.yml:8: slos[0].sli.events.error_query: is not valid PromQL"}},
		{"plugin", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli:\n      plugin: {id: sloth-common/kubernetes/apiserver/availability}\n    alerting: {name: A}\n",
			[]string{"spec.yml:7: slos[0].sli.plugin: SLI plugins are not supported"}},
		{"no alert name", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli: {raw: {error_ratio_query: 'vector(0)'}}\n",
			[]string{"slos[0].alerting.name: must be set"}},
		{"duplicate", "version: prometheus/v1\nservice: a\nslos:\n  - name: x\n    objective: 99\n    sli: {raw: {error_ratio_query: 'vector(0)'}}\n    alerting: {name: A}\n  - name: x\n    objective: 99\n    sli: {raw: {error_ratio_query: 'vector(0)'}}\n    alerting: {name: A}\n",
			[]string{"spec.yml:8: slos[1].name: \"x\" is already used by slos[0]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseSloth([]byte(tc.spec), "spec.yml", 30*24*time.Hour)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRawSLIAveragesRatiosOverThePeriod(t *testing.T) {
	spec, err := ParseSloth([]byte(`version: prometheus/v1
service: svc
slos:
  - name: raw
    objective: 99.9
    sli:
      raw:
        error_ratio_query: |
          sum(rate(errors_total[{{.window}}])) / sum(rate(requests_total[{{.window}}]))
    alerting:
      name: SvcRawBurn
      page_alert: {disable: true}
`), "raw.yml", 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(spec)
	if err != nil {
		t.Fatal(err)
	}
	var alerts, period int
	for _, r := range g.Groups[0].Rules {
		if r.Alert != "" {
			alerts++
			if r.Labels[LabelSeverity] != SeverityTicket {
				t.Errorf("disabled page alert generated: %v", r.Labels)
			}
		}
		if r.Record == RecordErrorRatio+"30d" {
			period++
			if !strings.Contains(r.Expr, "count_over_time") {
				t.Errorf("raw SLI period ratio is not an average of 5m ratios: %s", r.Expr)
			}
		}
	}
	if alerts != 1 || period != 1 {
		t.Errorf("got %d alerts and %d period rules, want 1 and 1", alerts, period)
	}
}

func TestDuplicateSLOAcrossSpecs(t *testing.T) {
	native, sloth := loadTestSpecs(t)
	sloth.SLOs[0].ID = native.SLOs[0].ID
	if _, err := Build(native, sloth); err == nil || !strings.Contains(err.Error(), "also defined in") {
		t.Fatalf("duplicate SLO id across specs: err %v", err)
	}
}

func TestConfigRejectsBadSLOs(t *testing.T) {
	base := "metrics:\n  endpoints: [/v1/chat/completions]\nslos:\n"
	for _, tc := range []struct{ slo, want string }{
		{"  - {name: a, sli: latency, route: /v1/chat/completions, threshold: 3s, objective: 99}",
			"c.yml:4: slos[0].threshold: 3s is not a bucket bound of the latency histogram"},
		{"  - {name: a, sli: ttft, route: /v1/chat/completions, threshold: 400ms, objective: 99}",
			"use one of 10ms, 25ms, 50ms, 100ms, 200ms, 350ms, 500ms, 750ms, 1s"},
		{"  - {name: a, sli: availability, route: /v1/chat/completions, objective: 0.995}",
			"slos[0].objective: is a percentage: 0.995 means 0.995 %; write 99.5 for 99.5 %"},
		{"  - {name: a, sli: availability, route: /v1/embeddings, objective: 99}",
			`slos[0].route: "/v1/embeddings" is not in metrics.endpoints`},
		{"  - {name: a, sli: availability, route: /v1/chat/completions, objective: 99, window: 1d}",
			"slos[0].window: must be within [7d, 90d]"},
		{"  - {name: a, sli: availability, route: /v1/chat/completions, objective: 99, matchers: ['job=']}",
			"slos[0].matchers[0]: is not a label matcher"},
		{"  - {name: a, sli: uptime, route: /v1/chat/completions, objective: 99}",
			`slos[0].sli: must be availability, latency or ttft, got "uptime"`},
		{"  - {name: a, sli: availability, route: /v1/chat/completions, objective: 99, treshold: 1s}",
			"field treshold not found"},
	} {
		_, err := config.Parse([]byte(base+tc.slo+"\n"), "c.yml")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.slo, err, tc.want)
		}
	}
}
