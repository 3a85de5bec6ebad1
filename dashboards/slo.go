package dashboards

import (
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"

	"github.com/open-autoglm/autoglm-monitor/rulegen/slo"
)

// sloDashboard shows each SLO rulegen generated (from the slos: section or
// a Sloth spec): budget left over the period, burn rates over the alert
// windows, and the burn-rate alerts.
func sloDashboard() *dashboard.DashboardBuilder {
	b := newDashboard(UIDSLO, "AutoGLM / SLOs and error budgets",
		"Service level objectives: error budget remaining over each SLO's period, burn rates over the multi-window alert windows, and the burn-rate alerts.").
		WithVariable(variable{name: "slo_service", label: "Service", query: "label_values(" + slo.RecordInfo + ", " + slo.LabelService + ")", multi: true}.builder()).
		WithVariable(variable{name: "slo", label: "SLO", query: "label_values(" + slo.RecordInfo + `{` + slo.LabelService + `=~"$slo_service"}, ` + slo.LabelSLO + ")", multi: true}.builder())
	m := []string{slo.LabelService + `=~"$slo_service"`, slo.LabelSLO + `=~"$slo"`}
	legend := "{{" + slo.LabelService + "}}/{{" + slo.LabelSLO + "}}"
	on := " / on (" + slo.LabelID + ", " + slo.LabelSLO + ", " + slo.LabelService + ") group_left " + sel(slo.RecordBudget, m...)
	burn := func(w string) query {
		return q(sel(slo.RecordErrorRatio+w, m...)+on, legend+" "+w)
	}
	return b.
		WithRow(dashboard.NewRowBuilder("Budget")).
		WithPanel(bars(panel{title: "Error budget remaining", unit: "percentunit", width: 12,
			description: "Share of each SLO's error budget left over its period (1 − errors/requests over the period ÷ (1 − objective)); below 0 the objective is missed.",
			queries:     []query{q(sel(slo.RecordBudgetRemaining, m...), legend)}})).
		WithPanel(bars(panel{title: "Objective", unit: "percentunit", width: 12,
			description: "Target share of good events of each SLO.",
			queries:     []query{q(sel(slo.RecordObjective, m...), legend)}})).
		WithPanel(timeSeries(panel{title: "Error budget remaining over time", unit: "percentunit", width: 24,
			description: "How the budget left over the period evolved; a steep fall is a burn the alerts should have reported.",
			queries:     []query{q(sel(slo.RecordBudgetRemaining, m...), legend)}})).
		WithRow(dashboard.NewRowBuilder("Burn rates")).
		WithPanel(timeSeries(panel{title: "Burn rate, page windows (5m, 30m, 1h, 6h)", unit: "short",
			description: "Error ratio over each window divided by the error budget. The page alert fires when 5m and 1h both exceed 14.4, or 30m and 6h both exceed 6 (30-day SLOs; other periods scale).",
			queries:     []query{burn("5m"), burn("30m"), burn("1h"), burn("6h")}})).
		WithPanel(timeSeries(panel{title: "Burn rate, ticket windows (2h, 6h, 1d, 3d)", unit: "short",
			description: "The ticket alert fires when 2h and 1d both exceed 3, or 6h and 3d both exceed 1 (30-day SLOs; other periods scale).",
			queries:     []query{burn("2h"), burn("6h"), burn("1d"), burn("3d")}})).
		WithPanel(timeSeries(panel{title: "Error ratio (5m)", unit: "percentunit",
			description: "The SLI's error ratio over 5 minutes: share of bad events (5xx or transport errors, requests over the latency threshold, first tokens over the TTFT threshold).",
			queries:     []query{q(sel(slo.RecordErrorRatio+"5m", m...), legend)}})).
		WithPanel(timeSeries(panel{title: "Burn-rate alerts firing", unit: "short",
			description: "Burn-rate alerts firing per SLO and severity (page or ticket).",
			queries: []query{q("count by ("+slo.LabelService+", "+slo.LabelSLO+", "+slo.LabelSeverity+") ("+
				sel("ALERTS", append([]string{`alertstate="firing"`, slo.LabelSeverity + `!=""`}, m...)...)+")",
				legend+" {{"+slo.LabelSeverity+"}}")}}))
}
