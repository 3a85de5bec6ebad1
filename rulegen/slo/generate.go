package slo

import (
	"bytes"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
)

// Series names. They are Sloth's, so dashboards and alert routes built for
// Sloth keep working after a switch.
const (
	RecordErrorRatio      = "slo:sli_error:ratio_rate" // + window
	RecordErrors          = "slo:sli_errors:rate5m"
	RecordRequests        = "slo:sli_requests:rate5m"
	RecordObjective       = "slo:objective:ratio"
	RecordBudget          = "slo:error_budget:ratio"
	RecordPeriodDays      = "slo:time_period:days"
	RecordCurrentBurn     = "slo:current_burn_rate:ratio"
	RecordPeriodBurn      = "slo:period_burn_rate:ratio"
	RecordBudgetRemaining = "slo:period_error_budget_remaining:ratio"
	RecordInfo            = "sloth_slo_info"

	LabelID       = "sloth_id"
	LabelService  = "sloth_service"
	LabelSLO      = "sloth_slo"
	LabelWindow   = "sloth_window"
	LabelSeverity = "sloth_severity"
)

// File is the rule file rulegen writes the SLO rules into.
const File = "autoglm-slo.rules.yml"

var promql = parser.NewParser(parser.Options{})

func promDuration(d time.Duration) string { return model.Duration(d).String() }

func sortedKeys(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

// render fills Sloth's {{.window}} placeholder.
func render(q string, window time.Duration) (string, error) {
	t, err := template.New("query").Option("missingkey=error").Parse(q)
	if err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, map[string]string{"window": promDuration(window)}); err != nil {
		return "", fmt.Errorf("template: %w", err)
	}
	return b.String(), nil
}

// budget is the error budget as a ratio (Sloth: (100 - objective) / 100).
func (s SLO) budget() float64 { return (100 - s.Objective) / 100 }

func (s SLO) ids() map[string]string {
	return map[string]string{LabelID: s.ID, LabelService: s.Service, LabelSLO: s.Name}
}

func (s SLO) sel() string {
	return fmt.Sprintf(`{%s=%q, %s=%q, %s=%q}`, LabelID, s.ID, LabelService, s.Service, LabelSLO, s.Name)
}

func (s SLO) labels(extra map[string]string) map[string]string {
	return merge(s.Labels, s.ids(), extra)
}

const onIDs = "on (" + LabelID + ", " + LabelSLO + ", " + LabelService + ")"

func (s SLO) ratioExpr(w time.Duration) (string, error) {
	if s.RawErrorRatio != "" {
		return render(s.RawErrorRatio, w)
	}
	e, err := render(s.ErrorQuery, w)
	if err != nil {
		return "", err
	}
	t, err := render(s.TotalQuery, w)
	if err != nil {
		return "", err
	}
	return "(" + e + ")\n/\n(" + t + ")", nil
}

// sliRules are the error ratios over every window plus the period's.
func (s SLO) sliRules() ([]rulefmt.Rule, error) {
	var out []rulefmt.Rule
	for _, w := range RatioWindows() {
		expr, err := s.ratioExpr(w)
		if err != nil {
			return nil, err
		}
		out = append(out, rulefmt.Rule{Record: RecordErrorRatio + promDuration(w), Expr: expr,
			Labels: s.labels(map[string]string{LabelWindow: promDuration(w)})})
	}
	p := promDuration(s.Window)
	if s.RawErrorRatio != "" {
		// Without events the period can only average the 5-minute ratios (as Sloth does).
		r5 := RecordErrorRatio + "5m" + s.sel()
		out = append(out, rulefmt.Rule{Record: RecordErrorRatio + p,
			Expr:   fmt.Sprintf("sum_over_time(%s[%s])\n/ ignoring (%s)\ncount_over_time(%s[%s])", r5, p, LabelWindow, r5, p),
			Labels: s.labels(map[string]string{LabelWindow: p})})
		return out, nil
	}
	// With events the period's ratio weighs each moment by its traffic:
	// errors over requests, not an average of ratios that counts a quiet
	// night as much as the busiest hour (and is NaN for a month after one
	// idle five minutes).
	e, err := render(s.ErrorQuery, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	t, err := render(s.TotalQuery, 5*time.Minute)
	if err != nil {
		return nil, err
	}
	five := map[string]string{LabelWindow: "5m"}
	out = append(out,
		rulefmt.Rule{Record: RecordErrors, Expr: e, Labels: s.labels(five)},
		rulefmt.Rule{Record: RecordRequests, Expr: t, Labels: s.labels(five)},
		rulefmt.Rule{Record: RecordErrorRatio + p,
			Expr:   fmt.Sprintf("sum_over_time(%s%s[%s])\n/\nsum_over_time(%s%s[%s])", RecordErrors, s.sel(), p, RecordRequests, s.sel(), p),
			Labels: s.labels(map[string]string{LabelWindow: p})})
	return out, nil
}

func (s SLO) metaRules() []rulefmt.Rule {
	sel, p := s.sel(), promDuration(s.Window)
	return []rulefmt.Rule{
		{Record: RecordObjective, Expr: fmt.Sprintf("vector(%s)", fmtFloat(s.Objective/100)), Labels: s.labels(nil)},
		{Record: RecordBudget, Expr: fmt.Sprintf("vector(1 - %s)", fmtFloat(s.Objective/100)), Labels: s.labels(nil)},
		{Record: RecordPeriodDays, Expr: fmt.Sprintf("vector(%s)", fmtFloat(s.Window.Hours()/24)), Labels: s.labels(nil)},
		{Record: RecordCurrentBurn, Expr: fmt.Sprintf("%s5m%s\n/ %s group_left\n%s%s", RecordErrorRatio, sel, onIDs, RecordBudget, sel), Labels: s.labels(nil)},
		{Record: RecordPeriodBurn, Expr: fmt.Sprintf("%s%s%s\n/ %s group_left\n%s%s", RecordErrorRatio, p, sel, onIDs, RecordBudget, sel), Labels: s.labels(nil)},
		{Record: RecordBudgetRemaining, Expr: fmt.Sprintf("1 - %s%s", RecordPeriodBurn, sel), Labels: s.labels(nil)},
		{Record: RecordInfo, Expr: "vector(1)", Labels: s.labels(map[string]string{
			"sloth_mode": "autoglm-rulegen", "sloth_spec": SlothVersion, "sloth_objective": fmtFloat(s.Objective), "sloth_window": p})},
	}
}

// alertExpr is the multi-window multi-burn-rate condition of one severity:
// any pair of its windows whose short and long error ratios both exceed
// the pair's factor times the budget, each pair guarded by the traffic
// over its short window.
func (s SLO) alertExpr(sev string) (string, error) {
	var pairs []string
	for _, w := range Windows() {
		if w.Severity != sev {
			continue
		}
		th := fmt.Sprintf("(%s * %s)", fmtFloat(w.Factor(s.Window)), fmtFloat(s.budget()))
		cond := func(d time.Duration) string {
			return fmt.Sprintf("max(%s%s%s > %s) without (%s)", RecordErrorRatio, promDuration(d), s.sel(), th, LabelWindow)
		}
		pair := "    " + cond(w.Short) + "\n    and\n    " + cond(w.Long)
		if s.MinTraffic > 0 {
			t, err := render(s.TotalQuery, w.Short)
			if err != nil {
				return "", err
			}
			pair += fmt.Sprintf("\n    and on ()\n    (%s) >= %s", t, fmtFloat(s.MinTraffic))
		}
		pairs = append(pairs, "(\n"+pair+"\n)")
	}
	return strings.Join(pairs, "\nor\n"), nil
}

func (s SLO) alertRules() ([]rulefmt.Rule, error) {
	var out []rulefmt.Rule
	for _, k := range []struct {
		sev  string
		kind AlertKind
	}{{SeverityPage, s.Alerting.Page}, {SeverityTicket, s.Alerting.Ticket}} {
		if k.kind.Disable {
			continue
		}
		expr, err := s.alertExpr(k.sev)
		if err != nil {
			return nil, err
		}
		ann := map[string]string{
			"summary": "{{ $labels.sloth_service }} {{ $labels.sloth_slo }}: the SLO's error budget burns faster than its objective allows.",
			"title":   "(" + k.sev + ") {{ $labels.sloth_service }} {{ $labels.sloth_slo }} error budget burn rate is too fast.",
		}
		out = append(out, rulefmt.Rule{Alert: s.Alerting.Name, Expr: expr,
			Labels:      merge(s.Alerting.Labels, k.kind.Labels, map[string]string{LabelSeverity: k.sev}),
			Annotations: merge(ann, s.Alerting.Annotations, k.kind.Annotations)})
	}
	return out, nil
}

// Groups returns one rule group per SLO of the specs: its SLI recordings,
// its budget series and its alerts. SLO ids must be unique across specs.
func Groups(specs ...Spec) ([]rulefmt.RuleGroup, error) {
	var out []rulefmt.RuleGroup
	seen := map[string]string{}
	for _, spec := range specs {
		for _, s := range spec.SLOs {
			if src, dup := seen[s.ID]; dup {
				return nil, fmt.Errorf("%s: SLO %q of service %q is also defined in %s", spec.Source, s.Name, s.Service, src)
			}
			seen[s.ID] = spec.Source
			sliRules, err := s.sliRules()
			if err != nil {
				return nil, fmt.Errorf("%s: SLO %s: %w", spec.Source, s.ID, err)
			}
			alerts, err := s.alertRules()
			if err != nil {
				return nil, fmt.Errorf("%s: SLO %s: %w", spec.Source, s.ID, err)
			}
			// One group per SLO, alerts last: rules of a group run in order at
			// the same timestamp, so the alerts read this evaluation's ratios.
			// (Separate groups run on offsets of their own, and an alert could
			// lag its ratios by up to an interval.)
			rs := append(append(sliRules, s.metaRules()...), alerts...)
			out = append(out, rulefmt.RuleGroup{Name: "autoglm-slo-" + s.ID, Rules: rs})
		}
	}
	return out, nil
}
