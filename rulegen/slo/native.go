package slo

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// AlertName is the name of the native SLOs' burn-rate alert.
const AlertName = "AutoGLMErrorBudgetBurn"

// RunbookURL is where the native alert's runbook_url points.
const RunbookURL = "https://github.com/open-autoglm/autoglm-monitor/blob/main/mixins/autoglm-mixin/runbook.md#autoglmerrorbudgetburn"

// FromConfig turns the slos: section into a Spec. The configuration was
// validated when it was loaded; minTraffic is rulegen.min_traffic.
func FromConfig(f *config.File, minTraffic float64) Spec {
	spec := Spec{Source: f.Path() + " (slos)"}
	for _, c := range f.SLOs {
		spec.SLOs = append(spec.SLOs, native(c, minTraffic))
	}
	return spec
}

// leMatcher matches a bucket bound as Prometheus 2 ("1") and 3 ("1.0",
// normalised at ingestion) store it.
func leMatcher(b float64) string {
	s := strconv.FormatFloat(b, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		return fmt.Sprintf(`le=~"%s(\\.0)?"`, s)
	}
	return fmt.Sprintf(`le="%s"`, s)
}

func selector(parts ...string) string {
	kept := parts[:0]
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return "{" + strings.Join(kept, ", ") + "}"
}

func sumRate(metric, sel string) string {
	return fmt.Sprintf("sum(rate(%s%s[{{.window}}]))", metric, sel)
}

func native(c config.SLO, minTraffic float64) SLO {
	s := SLO{
		ID: c.Service + "-" + c.Name, Service: c.Service, Name: c.Name, Description: c.Description,
		Objective: c.Objective, Window: c.Window.D(), Labels: c.Labels, MinTraffic: minTraffic,
	}
	base := []string{fmt.Sprintf("%s=%q", sli.LabelRoute, c.Route)}
	if c.Model != "" {
		base = append(base, fmt.Sprintf("%s=%q", sli.LabelModel, c.Model))
	}
	base = append(base, c.Matchers...)
	// Requests without a model label are counted by the HTTP histogram;
	// per-model SLOs read the GenAI one, which has the label.
	hist := sli.HTTPDuration
	if c.Model != "" {
		hist = sli.GenAIDuration
	}
	what := ""
	switch c.SLI {
	case config.SLOAvailability:
		total := sumRate(hist+"_count", selector(base...))
		errs := sumRate(hist+"_count", selector(append(append([]string{}, base...), sli.ErrorSelector)...))
		// No failing series at all is an error ratio of 0, not no ratio.
		s.ErrorQuery = fmt.Sprintf("%s or 0 * %s", errs, total)
		s.TotalQuery = total
		what = "requests answered without a 5xx or transport error"
	case config.SLOLatency, config.SLOTTFT:
		le, _ := c.Le()
		if c.SLI == config.SLOTTFT {
			hist = sli.GenAITTFT
			what = "streams whose first token came within " + c.Threshold.String()
		} else {
			// Latency is judged on the requests that succeeded: a fast 500
			// is availability's concern, not a good latency event.
			base = append(base, sli.LabelErrorType+`=""`)
			what = "successful requests served within " + c.Threshold.String()
		}
		total := sumRate(hist+"_count", selector(base...))
		good := sumRate(hist+"_bucket", selector(append(append([]string{}, base...), leMatcher(le))...))
		s.ErrorQuery = total + " - " + good
		s.TotalQuery = total
	}
	if s.Description == "" {
		on := c.Route
		if c.Model != "" {
			on += " (model " + c.Model + ")"
		}
		s.Description = fmt.Sprintf("%s %% of %s on %s over %s", strconv.FormatFloat(c.Objective, 'f', -1, 64), what, on, c.Window)
	}
	s.Alerting = Alerting{
		Name: AlertName,
		Annotations: map[string]string{
			"summary": "An SLO is burning its error budget too fast.",
			"description": "{{ $labels.sloth_service }}/{{ $labels.sloth_slo }} (" + s.Description + "): the error ratio is {{ $value | humanizePercentage }}, " +
				"a burn rate that spends the whole budget long before the end of the period ({{ $labels.sloth_severity }} windows).",
			"runbook_url": RunbookURL,
		},
		Page:   AlertKind{Disable: !c.PageEnabled(), Labels: map[string]string{"severity": "critical"}},
		Ticket: AlertKind{Disable: !c.TicketEnabled(), Labels: map[string]string{"severity": "warning"}},
	}
	return s
}
