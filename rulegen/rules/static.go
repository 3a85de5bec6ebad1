package rules

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// StaticAlert is an alert on a fixed limit of the shared alert_rules
// section. It is defined once, here, and rendered twice: by rulegen into
// its rule files (StaticRules) and by the monitoring mixin, which receives
// the definitions through the generated lib/sli.libsonnet and fills the
// same templates with its _config. A test renders both and compares them.
type StaticAlert struct {
	Alert    string `json:"alert"`
	Severity string `json:"severity"`
	// Expr, Summary and Description are templates in the one syntax both
	// Go and jsonnet's % operator read: %(name)s is replaced by the
	// parameter name (StaticParams.values), %% is a percent sign.
	Expr        string `json:"expr"`
	Summary     string `json:"summary"`
	Description string `json:"description"`
	// For is the pending time, a template like the others: "%(for)s" is
	// rulegen.for (the mixin's staticAlertFor), a fixed duration ("2m") is
	// for alerts that must page fast whatever the configuration.
	For string `json:"for"`
	// Limit names the parameter whose value 0 turns the alert off.
	Limit string `json:"limit"`
	// Dashboard and Query are where the mixin's dashboard_url points (a
	// dashboard of dashboards/ and its variables); rulegen does not know
	// Grafana's address and leaves the link out.
	Dashboard string `json:"dashboard"`
	Query     string `json:"query"`
}

// Anchor is the alert's section in the runbook.
func (a StaticAlert) Anchor() string { return strings.ToLower(a.Alert) }

// StaticAlerts are the alerts on the limits of alert_rules. Every one keeps
// firing for alert_rules.cooldown after its condition clears, the ones on
// ratios need the route to carry at least the minimum traffic, and all fire
// per workload (%(on)s joins on job, the workload labels and the route;
// %(workload)s names the workload in the description).
func StaticAlerts() []StaticAlert {
	const busy = "\nand %(on)s\n(%(rate)s{%(sel)s} >= %(minTraffic)s)"
	return []StaticAlert{
		{
			Alert:       "AutoGLMHighErrorRate",
			Severity:    "warning",
			Expr:        "(%(ratio)s{%(sel)s} > %(errorRatio)s)" + busy,
			Summary:     "LLM API error ratio is above the configured limit",
			Description: "Route {{ $labels.http_route }}%(workload)s of {{ $labels.job }} fails {{ $value | humanizePercentage }} of its requests over 5 minutes (limit %(errorRatioPercent)s%%).",
			For:         "%(for)s",
			Limit:       "errorRatio",
			Dashboard:   "overview",
			Query:       "route",
		},
		{
			Alert:    "AutoGLMHighErrorRate",
			Severity: "critical",
			// The last hour above the warning limit too: a burst of a few
			// minutes is the warning's business, a failing service pages.
			Expr:        "(%(ratio)s{%(sel)s} > %(errorRatioCritical)s)\nand %(on)s\n(%(ratio1h)s{%(sel)s} > %(errorRatio)s)" + busy,
			Summary:     "LLM API error ratio is far above the configured limit",
			Description: "Route {{ $labels.http_route }}%(workload)s of {{ $labels.job }} fails {{ $value | humanizePercentage }} of its requests over 5 minutes, and more than %(errorRatioPercent)s%% over the last hour.",
			For:         "2m",
			Limit:       "errorRatio",
			Dashboard:   "overview",
			Query:       "route",
		},
		{
			Alert:       "AutoGLMHighQPS",
			Severity:    "critical",
			Expr:        "%(instanceRate)s{%(sel)s} > %(qps)s",
			Summary:     "LLM API instance is above its QPS limit",
			Description: "Instance {{ $labels.instance }}%(workload)s of {{ $labels.job }} serves {{ $value | humanize }} requests/s, above the configured limit of %(qps)s.",
			For:         "2m",
			Limit:       "qps",
			Dashboard:   "overview",
			Query:       "instance",
		},
	}
}

// DefaultErrorRatioCritical is the error ratio that pages (with the last
// hour above alert_rules.error_rate too).
const DefaultErrorRatioCritical = 0.25

// StaticParams are the values the templates of StaticAlerts are filled with.
type StaticParams struct {
	// Selector narrows the SLI records to the exporter's scrape job (`job="autoglm-exporter"`).
	Selector string
	// For is the pending time of the warning (rulegen.for).
	For time.Duration
	// QPS, ErrorRatio and ErrorRatioCritical are the limits; MinTraffic the
	// request rate a route needs before its ratio alerts may fire.
	QPS, ErrorRatio, ErrorRatioCritical, MinTraffic float64
}

// FormatNumber writes a limit into an expression or text: 15 significant
// digits, the same as jsonnet's '%.15g' on the mixin's side.
func FormatNumber(v float64) string { return strconv.FormatFloat(v, 'g', 15, 64) }

func (p StaticParams) values() map[string]string {
	return map[string]string{
		"sel":                p.Selector,
		"for":                model.Duration(p.For).String(),
		"on":                 onClause(routeLevel()),
		"workload":           sli.WorkloadTemplate,
		"qps":                FormatNumber(p.QPS),
		"errorRatio":         FormatNumber(p.ErrorRatio),
		"errorRatioPercent":  FormatNumber(100 * p.ErrorRatio),
		"errorRatioCritical": FormatNumber(p.ErrorRatioCritical),
		"minTraffic":         FormatNumber(p.MinTraffic),
		"rate":               sli.RouteRequestRate,
		"ratio":              sli.RouteErrorRatio,
		"ratio1h":            sli.RouteErrorRatio1h,
		"instanceRate":       sli.InstanceRequestRate,
	}
}

func (p StaticParams) limit(name string) float64 {
	switch name {
	case "qps":
		return p.QPS
	case "errorRatio":
		return p.ErrorRatio
	}
	return 1
}

var placeholder = regexp.MustCompile(`%\(([A-Za-z0-9]+)\)s|%%`)

// fill replaces %(name)s by vals[name] and %% by %, as jsonnet's % does.
func fill(tmpl string, vals map[string]string) (string, error) {
	var missing error
	out := placeholder.ReplaceAllStringFunc(tmpl, func(m string) string {
		if m == "%%" {
			return "%"
		}
		name := m[2 : len(m)-2]
		v, ok := vals[name]
		if !ok && missing == nil {
			missing = fmt.Errorf("template %q: no parameter %q", tmpl, name)
		}
		return v
	})
	return out, missing
}

// StaticRules renders StaticAlerts with p; keepFiringFor is alert_rules.cooldown.
func StaticRules(p StaticParams, keepFiringFor time.Duration) ([]rulefmt.Rule, error) {
	vals := p.values()
	var out []rulefmt.Rule
	for _, a := range StaticAlerts() {
		if p.limit(a.Limit) <= 0 {
			continue
		}
		expr, err := fill(a.Expr, vals)
		if err != nil {
			return nil, err
		}
		summary, err := fill(a.Summary, vals)
		if err != nil {
			return nil, err
		}
		desc, err := fill(a.Description, vals)
		if err != nil {
			return nil, err
		}
		f, err := fill(a.For, vals)
		if err != nil {
			return nil, err
		}
		pending, err := model.ParseDuration(f)
		if err != nil {
			return nil, fmt.Errorf("%s: for %q: %w", a.Alert, f, err)
		}
		out = append(out, rulefmt.Rule{
			Alert:         a.Alert,
			Expr:          expr,
			For:           pending,
			KeepFiringFor: model.Duration(keepFiringFor),
			Labels:        map[string]string{"severity": a.Severity},
			Annotations: map[string]string{
				"summary":     summary,
				"description": desc,
				"runbook_url": RunbookBase + "#" + a.Anchor(),
			},
		})
	}
	return out, nil
}
