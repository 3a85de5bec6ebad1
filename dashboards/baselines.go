package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Names of rulegen's self metrics.
const (
	rulegenLastFit          = "autoglm_rulegen_last_fit_timestamp_seconds"
	rulegenLastSuccess      = "autoglm_rulegen_last_success_timestamp_seconds"
	rulegenFitFailures      = "autoglm_rulegen_fit_failures_total"
	rulegenReloads          = "autoglm_rulegen_reloads_total"
	rulegenSeries           = "autoglm_rulegen_series"
	rulegenHistory          = "autoglm_rulegen_history_seconds"
	rulegenModelInfo        = "autoglm_rulegen_model_info"
	rulegenBuildInfo        = "autoglm_rulegen_build_info"
	rulegenForecast         = "autoglm_rulegen_forecast"
	rulegenInstanceForecast = "autoglm_rulegen_instance_forecast"
)

func unitOf(k sli.Kind) string {
	switch k {
	case sli.KindRate:
		return "reqps"
	case sli.KindRatio:
		return "percentunit"
	default:
		return "s"
	}
}

func hasModel(s sli.SLI) bool {
	for _, l := range s.By {
		if l == sli.LabelModel {
			return true
		}
	}
	return false
}

// bandPanel draws an SLI with the band rulegen fitted to it; bounds are dashed so the actual value stands out.
func bandPanel(s sli.SLI) *timeseries.PanelBuilder {
	legend := "{{" + sli.LabelRoute + "}}"
	record := rec(s.Record)
	extra := []string{}
	if hasModel(s) {
		legend = "{{" + sli.LabelModel + "}} " + legend
		record = recModel(s.Record)
		extra = append(extra, mModel)
	}
	bound := func(b string) string {
		return sel(sli.RulegenBaseline, append([]string{mJob, `instance=~"$instance"`, mRoute,
			sli.LabelSLI + `="` + s.Name + `"`, sli.LabelBound + `="` + b + `"`}, extra...)...)
	}
	queries := []query{
		q(record, legend+" actual"),
		q(bound("expected"), legend+" expected"),
		q(bound("upper"), legend+" upper"),
		q(bound("lower"), legend+" lower"),
		q(bound("spike_upper"), legend+" spike upper"),
	}
	if s.Kind == sli.KindRate {
		// Only traffic alerts below its band; the other SLIs have no lower spike bound.
		queries = append(queries, q(bound("spike_lower"), legend+" spike lower"))
	}
	title := strings.ReplaceAll(s.Name, "_", " ")
	return timeSeries(panel{title: "SLI " + title + " and its baseline", unit: unitOf(s.Kind),
		description: fmt.Sprintf("The %s SLI (recording rule %s) with the lower, expected and upper bounds rulegen fitted to its history. "+
			"Values outside the dashed bounds for long enough raise the baseline alerts; a value beyond the dotted spike bounds (beyond anything in the training history) raises them at once.", s.Name, s.Record),
		queries: queries}).
		FillOpacity(0).
		OverrideByRegexp(".* (upper|lower)$", []dashboard.DynamicConfigValue{
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{10, 10}}},
		}).
		OverrideByRegexp(".* spike (upper|lower)$", []dashboard.DynamicConfigValue{
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dash", "dash": []int{2, 6}}},
		}).
		OverrideByRegexp(".* expected$", []dashboard.DynamicConfigValue{
			{Id: "custom.lineStyle", Value: map[string]any{"fill": "dot"}},
		})
}

func baselines() *dashboard.DashboardBuilder {
	b := newDashboard(UIDBaselines, "AutoGLM / Baselines and anomalies",
		"Every SLI with the dynamic baseline band autoglm-rulegen fitted to it, the anomaly alerts raised against the bands, and the health of rulegen itself.").
		WithVariable(variable{name: "job", label: "Traffic job", query: "label_values(" + sli.RulegenBaseline + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "namespace", label: "Namespace", query: "label_values(" + sli.RulegenBaseline + `{job=~"$job"}, ` + sli.LabelK8sNamespace + ")", multi: true}.builder()).
		WithVariable(variable{name: "service", label: "Workload", query: "label_values(" + sli.RulegenBaseline + `{job=~"$job", ` + mNamespace + `}, ` + sli.LabelServiceName + ")", multi: true}.builder()).
		WithVariable(variable{name: "route", label: "Route", query: "label_values(" + sli.RulegenBaseline + `{job=~"$job"}, ` + sli.LabelRoute + ")", multi: true}.builder()).
		WithVariable(variable{name: "model", label: "Model", query: "label_values(" + sli.RulegenBaseline + `{job=~"$job"}, ` + sli.LabelModel + ")", multi: true}.builder()).
		WithVariable(variable{name: "traffic_instance", label: "Traffic instance", query: "label_values(" + sli.InstanceRequestRate + `{job=~"$job"}, instance)`, multi: true}.builder()).
		WithVariable(variable{name: "rulegen_job", label: "Rulegen job", query: "label_values(" + rulegenBuildInfo + ", job)", multi: true}.builder()).
		WithVariable(variable{name: "instance", label: "Rulegen instance", query: "label_values(" + rulegenBuildInfo + `{job=~"$rulegen_job"}, instance)`, multi: true}.builder())
	b = b.WithRow(dashboard.NewRowBuilder("SLIs and their bands"))
	for _, s := range sli.SLIs() {
		b = b.WithPanel(bandPanel(s))
	}
	rg := func(metric string, extra ...string) string {
		return sel(metric, append([]string{`job=~"$rulegen_job"`, `instance=~"$instance"`}, extra...)...)
	}
	series := func(metric string) string {
		return sel(metric, mJob, `instance=~"$instance"`, mRoute)
	}
	forecast := func(sliName string, extra ...string) string {
		return sel(rulegenForecast, append([]string{sli.LabelSLI + `="` + sliName + `"`, mJob}, extra...)...)
	}
	return b.
		WithRow(dashboard.NewRowBuilder("Capacity forecast")).
		WithPanel(timeSeries(panel{title: "Request rate per route and its forecast", unit: "reqps",
			description: "Each route's request rate with the rate rulegen forecasts 1, 6 and 24 hours ahead of each moment (its seasonal model blended with the recent profile, see rulegen/forecast).",
			queries: []query{
				q(rec(sli.RouteRequestRate), "{{"+sli.LabelRoute+"}} actual"),
				q(forecast("request_rate", `instance=~"$instance"`, mRoute), "{{"+sli.LabelRoute+"}} in {{horizon}}"),
			}})).
		WithPanel(timeSeries(panel{title: "Request rate per instance and its forecast", unit: "reqps",
			description: "Each instance's request rate with its forecast 1, 6 and 24 hours ahead; AutoGLMCapacityForecast fires when the forecast reaches alert_rules.qps_threshold within rulegen.forecast.lead.",
			queries: []query{
				q(sel(sli.InstanceRequestRate, mJob, `instance=~"$traffic_instance"`), "{{instance}} actual"),
				q(sel(rulegenInstanceForecast, mJob, `instance=~"$traffic_instance"`), "{{instance}} in {{horizon}}"),
			}})).
		WithRow(dashboard.NewRowBuilder("Anomalies")).
		WithPanel(stacked(panel{title: "Baseline alerts firing", unit: "short", width: 24,
			description: "Alerts that carry an sli label (the baseline alerts of the mixin and of rulegen's generated rules) firing over time, by alert and SLI.",
			queries: []query{q(`count by (alertname, `+sli.LabelSLI+`) (`+sel("ALERTS", `alertstate="firing"`, sli.LabelSLI+`!=""`, mJob)+`)`,
				"{{alertname}} {{"+sli.LabelSLI+"}}")}})).
		WithPanel(bars(panel{title: "History behind each baseline", unit: "s",
			description: "How much history each fitted series had. Short history means a daily season only or static thresholds from the config.",
			queries:     []query{q("max by ("+sli.LabelSLI+", "+sli.LabelRoute+") ("+series(rulegenHistory)+")", "{{"+sli.LabelSLI+"}} {{"+sli.LabelRoute+"}}")}})).
		WithPanel(bars(panel{title: "Model chosen per series", unit: "short",
			description: "The baseline method rulegen picked for each series by backtest (seasonal robust, Holt-Winters, static fallback, ...); the value counts series.",
			queries:     []query{q("count by (model) ("+series(rulegenModelInfo)+")", "{{model}}")}})).
		WithRow(dashboard.NewRowBuilder("Rulegen health")).
		WithPanel(statPanel(panel{title: "Since last successful fit", unit: "s",
			description: "Time since rulegen last fitted and wrote rules successfully; bands older than a few refit intervals are stale.",
			queries:     []query{q("time() - max("+rg(rulegenLastSuccess)+")", "age")}})).
		WithPanel(statPanel(panel{title: "Since last fit attempt", unit: "s",
			description: "Time since rulegen last tried to fit, successful or not.",
			queries:     []query{q("time() - max("+rg(rulegenLastFit)+")", "age")}})).
		WithPanel(statPanel(panel{title: "Series fitted", unit: "short",
			description: "Number of series rulegen currently holds a baseline for, over all SLIs.",
			queries:     []query{q("sum("+rg(rulegenSeries)+")", "series")}})).
		WithPanel(statPanel(panel{title: "Fit failures in range", unit: "short",
			description: "Failed fits over the dashboard's time range; a failure keeps the last good rules.",
			queries:     []query{q("sum(increase("+rg(rulegenFitFailures)+"[$__range]))", "failures")}})).
		WithPanel(stacked(panel{title: "Fit failures by reason", unit: "short",
			description: "Failed fits per rate interval by reason (no history, query error, validation, ...).",
			queries:     []query{q("sum by (reason) (increase("+rg(rulegenFitFailures)+"[$__rate_interval]))", "{{reason}}")}})).
		WithPanel(stacked(panel{title: "Rule reloads by result", unit: "short",
			description: "Prometheus rule reloads triggered by rulegen per rate interval, by result.",
			queries:     []query{q("sum by (result) (increase("+rg(rulegenReloads)+"[$__rate_interval]))", "{{result}}")}})).
		WithPanel(timeSeries(panel{title: "Series per SLI", unit: "short", width: 24,
			description: "Number of fitted series per SLI; bounded by design, a jump means new routes or models appeared.",
			queries:     []query{q("sum by ("+sli.LabelSLI+") ("+rg(rulegenSeries)+")", "{{"+sli.LabelSLI+"}}")}}))
}
