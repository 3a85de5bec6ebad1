package forecast

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Series names rulegen exposes.
const (
	// Metric is the forecast of a route's SLI series at a horizon ahead.
	Metric = "autoglm_rulegen_forecast"
	// InstanceMetric is the forecast of an instance's request rate. It is a
	// family of its own: with honor_labels an empty instance label on the
	// route series would not be filled from the target, and routes would
	// lose their instance label.
	InstanceMetric = "autoglm_rulegen_instance_forecast"
	// CrossingMetric is when an instance's forecast first reaches
	// alert_rules.qps_threshold (only while that is within 24 hours).
	CrossingMetric = "autoglm_rulegen_forecast_threshold_crossing_timestamp_seconds"
	LabelHorizon   = "horizon"
	// SLIs forecast: per route and per instance request rate.
	SLIRoute    = "request_rate"
	SLIInstance = "instance_request_rate"
)

// File and group of the forecast alert.
const (
	File  = "autoglm-forecast.rules.yml"
	Group = "autoglm-rulegen-forecast"
)

// AlertName is the capacity alert.
const AlertName = "AutoGLMCapacityForecast"

// thousands writes 5000 as 5,000.
func thousands(v float64) string {
	s := strconv.FormatFloat(v, 'f', -1, 64)
	intPart, frac, _ := strings.Cut(s, ".")
	var b strings.Builder
	for i, r := range intPart {
		if i > 0 && (len(intPart)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString("." + frac)
	}
	return b.String()
}

// Rules is the capacity alert: an instance whose forecast reaches the
// per-instance limit within lead, while it is still below it (above it,
// AutoGLMHighQPS has the word). The value is the hours left, rounded up.
func Rules(threshold float64, lead, cooldown time.Duration, runbook string) rulefmt.RuleGroups {
	if threshold <= 0 {
		return rulefmt.RuleGroups{}
	}
	hours := strconv.FormatFloat(lead.Hours(), 'f', -1, 64)
	expr := fmt.Sprintf("ceil((%s - time()) / 3600) <= %s\nunless on (job, instance)\n%s > %s",
		CrossingMetric, hours, sli.InstanceRequestRate, strconv.FormatFloat(threshold, 'g', -1, 64))
	return rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{{Name: Group, Rules: []rulefmt.Rule{{
		Alert: AlertName,
		Expr:  expr,
		// The forecast is redone every refit; a crossing that stays
		// forecast across two refreshes of the gauges is worth a ticket.
		For:           model.Duration(10 * time.Minute),
		KeepFiringFor: model.Duration(cooldown),
		Labels:        map[string]string{"severity": "warning"},
		Annotations: map[string]string{
			"summary": "An instance is forecast to exceed alert_rules.qps_threshold.",
			"description": "{{ $labels.instance }} of {{ $labels.job }} is expected to reach " + thousands(threshold) +
				" req/s within about {{ $value }} h (autoglm-rulegen's forecast of its request rate).",
			"runbook_url": runbook,
		},
	}}}}}
}
