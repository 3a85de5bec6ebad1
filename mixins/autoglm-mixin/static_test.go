package mixin

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	jsonnet "github.com/google/go-jsonnet"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// The alerts on the limits of alert_rules are defined once (rules.StaticAlerts)
// and rendered by rulegen and by the mixin; both renderings must be the same
// alert for the same parameters, with the defaults of the shared config and
// with everything overridden.
func TestStaticAlertsRenderAlikeInRulegenAndMixin(t *testing.T) {
	defaults, err := config.Load("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		job      string
		p        rules.StaticParams
		cooldown time.Duration
	}{
		{"shared config defaults", defaults.Rulegen.ExporterJob, rules.StaticParams{
			For: defaults.Rulegen.For.D(), QPS: defaults.AlertRules.QPSThreshold, ErrorRatio: defaults.AlertRules.ErrorRate,
			ErrorRatioCritical: rules.DefaultErrorRatioCritical, MinTraffic: defaults.Rulegen.MinTraffic,
		}, defaults.AlertRules.Cooldown.D()},
		{"overridden", "gw", rules.StaticParams{For: time.Minute, QPS: 1234.5, ErrorRatio: 0.02, ErrorRatioCritical: 0.3, MinTraffic: 0.5}, time.Minute},
		{"qps alert off", "gw", rules.StaticParams{For: 90 * time.Second, QPS: 0, ErrorRatio: 0.07, ErrorRatioCritical: 0.2, MinTraffic: 1}, 10 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.p.Selector = fmt.Sprintf("job=%q", tc.job)
			want, err := rules.StaticRules(tc.p, tc.cooldown)
			if err != nil {
				t.Fatal(err)
			}
			got := mixinStatic(t, tc.job, tc.p, tc.cooldown)
			if len(got) != len(want) {
				t.Fatalf("mixin renders %d static alerts, rulegen %d", len(got), len(want))
			}
			for i, w := range want {
				g := got[i]
				if g.Alert != w.Alert || g.Expr != w.Expr || g.For != w.For || g.KeepFiringFor != w.KeepFiringFor || !maps.Equal(g.Labels, w.Labels) {
					t.Errorf("%s differs:\nmixin:   %q for %s keep %s %v\nrulegen: %q for %s keep %s %v",
						w.Alert, g.Expr, g.For, g.KeepFiringFor, g.Labels, w.Expr, w.For, w.KeepFiringFor, w.Labels)
				}
				// The mixin adds a link into its Grafana, whose address rulegen does not know.
				ann := maps.Clone(g.Annotations)
				if ann["dashboard_url"] == "" {
					t.Errorf("%s: no dashboard_url in the mixin", w.Alert)
				}
				delete(ann, "dashboard_url")
				if !maps.Equal(ann, w.Annotations) {
					t.Errorf("%s annotations differ:\nmixin:   %v\nrulegen: %v", w.Alert, ann, w.Annotations)
				}
			}
		})
	}
	// rulegen's rule files carry exactly these rules.
	in := rules.Input{Mode: rules.ModeSeries, QPSThreshold: 1234.5, ErrorRate: 0.02, Cooldown: time.Minute, MinTraffic: 0.5,
		For: 5 * time.Minute, ConfirmWindow: time.Hour, MaxSeries: 10, ExporterJob: "gw", RefitInterval: time.Hour}
	set, err := rules.Build(in)
	if err != nil {
		t.Fatal(err)
	}
	want, err := rules.StaticRules(in.StaticParams(), in.Cooldown)
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range set.Files[rules.AlertsFile].Groups {
		if g.Name == rules.GroupStatic && !slices.EqualFunc(g.Rules, want, func(a, b rulefmt.Rule) bool { return a.Alert == b.Alert && a.Expr == b.Expr }) {
			t.Errorf("rulegen's static group %v is not StaticRules %v", g.Rules, want)
		}
	}
}

// mixinStatic evaluates the mixin with _config overrides that mean p and
// returns its alerts named like the static ones, in order.
func mixinStatic(t *testing.T, job string, p rules.StaticParams, cooldown time.Duration) []rulefmt.Rule {
	t.Helper()
	vm := jsonnet.MakeVM()
	vm.Importer(&jsonnet.FileImporter{JPaths: []string{"."}})
	out, err := vm.EvaluateAnonymousSnippet("static.jsonnet", fmt.Sprintf(`
local mixin = (import 'mixin.libsonnet') + { _config+:: {
  exporterSelector: 'job="%s"', qpsThreshold: %s, errorRatioThreshold: %s,
  errorRatioCriticalThreshold: %s, minRequestRate: %s, cooldownSeconds: %d, staticAlertFor: '%s',
} };
local names = std.set([a.alert for a in (import 'lib/sli.libsonnet').static.alerts]);
[r for g in mixin.prometheusAlerts.groups for r in g.rules if std.setMember(r.alert, names)]`,
		job, rules.FormatNumber(p.QPS), rules.FormatNumber(p.ErrorRatio), rules.FormatNumber(p.ErrorRatioCritical),
		rules.FormatNumber(p.MinTraffic), int(cooldown/time.Second), model.Duration(p.For)))
	if err != nil {
		t.Fatal(err)
	}
	var raw []struct {
		Alert         string            `json:"alert"`
		Expr          string            `json:"expr"`
		For           string            `json:"for"`
		KeepFiringFor string            `json:"keep_firing_for"`
		Labels        map[string]string `json:"labels"`
		Annotations   map[string]string `json:"annotations"`
	}
	if err := json.Unmarshal([]byte(out), &raw); err != nil {
		t.Fatal(err)
	}
	rs := make([]rulefmt.Rule, len(raw))
	for i, r := range raw {
		f, err := model.ParseDuration(r.For)
		if err != nil {
			t.Fatal(err)
		}
		k, err := model.ParseDuration(r.KeepFiringFor)
		if err != nil {
			t.Fatal(err)
		}
		rs[i] = rulefmt.Rule{Alert: r.Alert, Expr: r.Expr, For: f, KeepFiringFor: k, Labels: r.Labels, Annotations: r.Annotations}
	}
	return rs
}
