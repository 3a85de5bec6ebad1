// Package rules turns SLI definitions, the shared alert_rules section and
// fitted baselines into Prometheus rule groups, and validates them with the
// same parsers Prometheus uses before anything leaves the process.
package rules

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Modes of delivering thresholds.
const (
	// ModeSeries compares against autoglm_rulegen_baseline gauges scraped from rulegen.
	ModeSeries = "series"
	// ModeLiteral bakes the thresholds into the expressions.
	ModeLiteral = "literal"
)

// Bounds, as in the bound label of autoglm_rulegen_baseline.
const (
	BoundUpper    = "upper"
	BoundLower    = "lower"
	BoundExpected = "expected"
	// The spike band: a value beyond it fires at once (for: 0).
	BoundSpikeUpper = "spike_upper"
	BoundSpikeLower = "spike_lower"
)

// LabelTrigger marks the spike twin of a baseline alert (TriggerSpike). The
// twin needs a label of its own: two rules yielding the same alert labels
// would write clashing ALERTS_FOR_STATE samples.
const (
	LabelTrigger = "trigger"
	TriggerSpike = "spike"
)

// RunbookBase is where every alert's runbook_url points (plus an anchor).
const RunbookBase = "https://github.com/open-autoglm/autoglm-monitor/blob/main/mixins/autoglm-mixin/runbook.md"

// File names written into a rule directory.
const (
	RecordingFile = "autoglm-recording.rules.yml"
	AlertsFile    = "autoglm-alerts.rules.yml"
	InhibitFile   = "alertmanager-inhibit-rules.yml"
)

// Group names.
const (
	GroupRecording = "autoglm-rulegen-recording"
	GroupStatic    = "autoglm-rulegen-static"
	GroupBaseline  = "autoglm-rulegen-baseline"
	GroupMeta      = "autoglm-rulegen-meta"
)

// Policy is the noise control of one baseline alert.
type Policy struct {
	For           time.Duration
	KeepFiringFor time.Duration
}

// Series is one fitted series of an SLI. Literal mode bakes its thresholds;
// series mode only needs the SLI to be listed.
type Series struct {
	// Labels are the values of the SLI's By labels.
	Labels map[string]string
	// Lower, Expected, Upper over the coming refit interval; NaN means none.
	Lower, Expected, Upper float64
	// SpikeLower, SpikeUpper bound the spike band over the same interval; NaN means no spike rule.
	SpikeLower, SpikeUpper float64
	// Fitted is false when the series had no usable history (static limits apply).
	Fitted bool
	Policy Policy
}

// SLI is one SLI with its state after a fit.
type SLI struct {
	sli.SLI
	// Series are the known series, sorted; literal mode writes one rule per series.
	Series []Series
	// Policy is used by series mode (one rule for all series); zero values take the defaults.
	Policy Policy
	// StaticUpper and StaticLower are the fallbacks when no baseline applies.
	StaticUpper, StaticLower *float64
}

// Input is everything a rule build depends on. The same Input always yields
// the same bytes, so unchanged output can be detected by comparison.
type Input struct {
	Mode string
	// QPSThreshold (per instance), ErrorRate and Cooldown come from alert_rules; 0 disables a static alert.
	QPSThreshold float64
	ErrorRate    float64
	Cooldown     time.Duration
	// MinTraffic guards every baseline and error alert (req/s).
	MinTraffic float64
	// For is the default pending duration; ConfirmWindow the long window of multi-window confirmation.
	For           time.Duration
	ConfirmWindow time.Duration
	// MaxSeries bounds the series any generated rule can produce (the rule group limit).
	MaxSeries int
	// ExporterJob is autoglm-exporter's scrape job.
	ExporterJob string
	// RefitInterval sets how old the last successful fit may get before an alert says so.
	RefitInterval time.Duration
	// SkipRecording leaves the recording rules to another source (the mixin).
	SkipRecording bool
	SLIs          []SLI
	// Extra are further rule files (SLOs, forecasts) built elsewhere,
	// keyed by file name; they are rendered and validated with the rest.
	Extra map[string]rulefmt.RuleGroups
}

// Set is the rendered, validated output of one build.
type Set struct {
	// Groups by file name (RecordingFile, AlertsFile).
	Files map[string]rulefmt.RuleGroups
	// Rendered holds the YAML of each file in Files.
	Rendered map[string][]byte
	// Inhibit is an Alertmanager inhibit_rules snippet.
	Inhibit []byte
	// Series counts the series-specific rules generated (literal mode) or the series covered (series mode).
	Series int
}

// FileNames returns the rule file names in a stable order.
func (s *Set) FileNames() []string {
	names := make([]string, 0, len(s.Rendered))
	for n := range s.Rendered {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Groups returns every group of every file, in file order.
func (s *Set) Groups() []rulefmt.RuleGroup {
	var out []rulefmt.RuleGroup
	for _, n := range s.FileNames() {
		out = append(out, s.Files[n].Groups...)
	}
	return out
}

type alertDef struct {
	name, severity, bound, summary, description, anchor string
}

func humanizer(k sli.Kind) string {
	switch k {
	case sli.KindRatio:
		return "humanizePercentage"
	case sli.KindLatency:
		return "humanizeDuration"
	default:
		return "humanize"
	}
}

func camel(s string) string {
	var b strings.Builder
	for _, p := range strings.Split(s, "_") {
		if p == "" {
			continue
		}
		b.WriteString(strings.ToUpper(p[:1]) + p[1:])
	}
	return b.String()
}

// alertsFor names the alerts of an SLI. Names depend on the SLI only, never on
// thresholds, so alert identity survives refits.
func alertsFor(s sli.SLI) []alertDef {
	where := "{{ $labels.http_route }}" + sli.WorkloadTemplate + " on {{ $labels.job }}"
	for _, l := range s.By {
		if l == sli.LabelModel {
			where = "{{ $labels.http_route }} (model {{ $labels.gen_ai_request_model }})" + sli.WorkloadTemplate + " on {{ $labels.job }}"
		}
	}
	value := "{{ $value | " + humanizer(s.Kind) + " }}"
	switch {
	case s.Kind == sli.KindRate:
		return []alertDef{
			{"AutoGLMTrafficDrop", "critical", BoundLower, "Request rate dropped far below its baseline.",
				"Request rate of " + where + " is " + value + " req/s, below the band learned from history (" + s.Name + ").", "autoglmtrafficdrop"},
			{"AutoGLMTrafficSurge", "info", BoundUpper, "Request rate is far above its baseline.",
				"Request rate of " + where + " is " + value + " req/s, above the band learned from history (" + s.Name + ").", "autoglmtrafficsurge"},
		}
	case s.Kind == sli.KindRatio:
		return []alertDef{{"AutoGLMErrorRatioAboveBaseline", "warning", BoundUpper, "Error ratio is above its baseline.",
			"Error ratio of " + where + " is " + value + ", above the band learned from history (" + s.Name + ").", "autoglmerrorratioabovebaseline"}}
	case strings.HasPrefix(s.Name, "ttft"):
		return []alertDef{{"AutoGLMTTFTAboveBaseline", "warning", BoundUpper, "Time to first token is above its baseline.",
			"Time to first token (" + s.Name + ") of " + where + " is " + value + ", above the band learned from history." + sli.SaturationNote(), "autoglmttftabovebaseline"}}
	case s.Kind == sli.KindLatency:
		return []alertDef{{"AutoGLMLatencyAboveBaseline", "warning", BoundUpper, "Latency is above its baseline.",
			"Latency (" + s.Name + ") of " + where + " is " + value + ", above the band learned from history.", "autoglmlatencyabovebaseline"}}
	default:
		n := "AutoGLM" + camel(s.Name) + "AboveBaseline"
		return []alertDef{{n, "warning", BoundUpper, "An SLI is above its baseline.",
			s.Name + " of " + where + " is " + value + ", above the band learned from history.", strings.ToLower(n)}}
	}
}

func fmtFloat(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }

func onClause(by []string) string { return "on (" + strings.Join(by, ", ") + ")" }

// routeLevel are the labels of the per-route recording rules: job, the workload, the route.
func routeLevel() []string {
	return append(append([]string{"job"}, sli.WorkloadLabels()...), sli.LabelRoute)
}

func baselineSel(name, bound string) string {
	return fmt.Sprintf(`%s{%s=%q, %s=%q}`, sli.RulegenBaseline, sli.LabelSLI, name, sli.LabelBound, bound)
}

func selector(metric string, by []string, values map[string]string) string {
	parts := make([]string, 0, len(by))
	for _, l := range by {
		parts = append(parts, fmt.Sprintf("%s=%q", l, values[l]))
	}
	return metric + "{" + strings.Join(parts, ", ") + "}"
}

func op(bound string) string {
	if bound == BoundLower {
		return "<"
	}
	return ">"
}

func finite(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }

func (in Input) policy(p Policy) Policy {
	if p.For <= 0 {
		p.For = in.For
	}
	if p.KeepFiringFor <= 0 {
		p.KeepFiringFor = in.Cooldown
	}
	return p
}

func (in Input) confirm() string { return model.Duration(in.ConfirmWindow).String() }

func static(s SLI, bound string) *float64 {
	if bound == BoundLower {
		return s.StaticLower
	}
	return s.StaticUpper
}

// seriesExpr is one rule for every series of an SLI, comparing against the
// gauges rulegen exposes. When a series has no gauge (rulegen down, stale, or
// no history) the static limit takes over through "or"; without a static limit
// that series simply cannot fire.
func (in Input) seriesExpr(s SLI, d alertDef) string {
	on := onClause(s.By)
	by := "max by (" + strings.Join(s.By, ", ") + ") "
	threshold := by + "(" + baselineSel(s.Name, d.bound) + ")"
	if st := static(s, d.bound); st != nil {
		threshold = fmt.Sprintf("(%s or %s (%s * 0 + %s))", threshold, on, s.Record, fmtFloat(*st))
	}
	expected := baselineSel(s.Name, BoundExpected)
	var b strings.Builder
	fmt.Fprintf(&b, "(%s %s %s %s)", s.Record, op(d.bound), on, threshold)
	// Multi-window: the long window must sit on the same side of the expected
	// value, so a single 5m blip inside a quiet hour does not page.
	fmt.Fprintf(&b, "\nand %s\n(avg_over_time(%s[%s]) %s %s %s(%s) or %s (%s unless %s %s))",
		on, s.Record, in.confirm(), op(d.bound), on, by, expected, on, s.Record, on, expected)
	b.WriteString(in.seriesTrafficGuard(s, d, on, by))
	return b.String()
}

// seriesTrafficGuard is the minimum-traffic condition of a series-mode
// rule ("" without min_traffic). A drop is judged by the traffic the series
// should have had; a series without an expected gauge passes (the static
// fallback decides).
func (in Input) seriesTrafficGuard(s SLI, d alertDef, on, by string) string {
	if in.MinTraffic <= 0 {
		return ""
	}
	if d.bound == BoundLower {
		expected := baselineSel(s.Name, BoundExpected)
		return fmt.Sprintf("\nand %s\n(%s(%s) >= %s or %s (%s unless %s %s))",
			on, by, expected, fmtFloat(in.MinTraffic), on, s.Record, on, expected)
	}
	return fmt.Sprintf("\nand %s\n%s >= %s", on, s.Traffic, fmtFloat(in.MinTraffic))
}

// literalExpr is one rule for one series with its thresholds baked in.
func (in Input) literalExpr(s SLI, d alertDef, ser Series) (string, bool) {
	limit := ser.Upper
	if d.bound == BoundLower {
		limit = ser.Lower
	}
	expected := ser.Expected
	if !ser.Fitted || !finite(limit) {
		st := static(s, d.bound)
		if st == nil {
			return "", false
		}
		limit, expected = *st, math.NaN()
	}
	if d.bound == BoundLower && ser.Fitted && finite(expected) && expected < in.MinTraffic {
		// Expected traffic too small for a drop to mean anything.
		return "", false
	}
	on := onClause(s.By)
	rec := selector(s.Record, s.By, ser.Labels)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", rec, op(d.bound), fmtFloat(limit))
	if finite(expected) {
		fmt.Fprintf(&b, "\nand %s\navg_over_time(%s[%s]) %s %s", on, rec, in.confirm(), op(d.bound), fmtFloat(expected))
	}
	if in.MinTraffic > 0 && d.bound == BoundUpper {
		fmt.Fprintf(&b, "\nand %s\n%s >= %s", on, selector(s.Traffic, s.By, ser.Labels), fmtFloat(in.MinTraffic))
	}
	return b.String(), true
}

// seriesSpikeExpr compares against the spike band gauges: no confirmation
// window and no static fallback, only the minimum-traffic guard. A series
// without a spike gauge (short history, the first bucket of a day) cannot
// match.
func (in Input) seriesSpikeExpr(s SLI, d alertDef) string {
	on := onClause(s.By)
	by := "max by (" + strings.Join(s.By, ", ") + ") "
	bound := BoundSpikeUpper
	if d.bound == BoundLower {
		bound = BoundSpikeLower
	}
	return fmt.Sprintf("%s %s %s %s(%s)", s.Record, op(d.bound), on, by, baselineSel(s.Name, bound)) +
		in.seriesTrafficGuard(s, d, on, by)
}

// literalSpikeExpr is seriesSpikeExpr with the series' spike limit baked in.
func (in Input) literalSpikeExpr(s SLI, d alertDef, ser Series) (string, bool) {
	limit := ser.SpikeUpper
	if d.bound == BoundLower {
		limit = ser.SpikeLower
	}
	// A spike limit inside the main band would turn the main rule's
	// confirmation off; such a series gets no spike rule.
	main := ser.Upper
	beyond := limit > main
	if d.bound == BoundLower {
		main = ser.Lower
		beyond = limit < main
	}
	if !ser.Fitted || !finite(limit) || (finite(main) && !beyond) {
		return "", false
	}
	if d.bound == BoundLower && (!finite(ser.Expected) || ser.Expected < in.MinTraffic) {
		return "", false
	}
	on := onClause(s.By)
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s %s", selector(s.Record, s.By, ser.Labels), op(d.bound), fmtFloat(limit))
	if in.MinTraffic > 0 && d.bound == BoundUpper {
		fmt.Fprintf(&b, "\nand %s\n%s >= %s", on, selector(s.Traffic, s.By, ser.Labels), fmtFloat(in.MinTraffic))
	}
	return b.String(), true
}

// spikeRule is the twin of a baseline alert for values beyond the spike
// band: it fires at the first evaluation, because a single-interval
// anomaly (a drop to near zero, a burst of errors) is over before any
// `for` would let the main rule fire.
func spikeRule(d alertDef, sliName, expr string, p Policy) rulefmt.Rule {
	r := alertRule(d, sliName, expr, Policy{KeepFiringFor: p.KeepFiringFor})
	r.Labels[LabelTrigger] = TriggerSpike
	r.Annotations["summary"] = d.summary + " The value is far beyond anything in its history."
	return r
}

func alertRule(d alertDef, sliName, expr string, p Policy) rulefmt.Rule {
	return rulefmt.Rule{
		Alert:         d.name,
		Expr:          expr,
		For:           model.Duration(p.For),
		KeepFiringFor: model.Duration(p.KeepFiringFor),
		Labels:        map[string]string{"severity": d.severity, sli.LabelSLI: sliName},
		Annotations: map[string]string{
			"summary":     d.summary,
			"description": d.description,
			"runbook_url": RunbookBase + "#" + d.anchor,
		},
	}
}

func (in Input) baselineRules() ([]rulefmt.Rule, int) {
	var out []rulefmt.Rule
	n := 0
	for _, s := range in.SLIs {
		for _, d := range alertsFor(s.SLI) {
			if in.Mode == ModeSeries {
				out = append(out, alertRule(d, s.Name, in.seriesExpr(s, d), in.policy(s.Policy)),
					spikeRule(d, s.Name, in.seriesSpikeExpr(s, d), in.policy(s.Policy)))
				continue
			}
			for _, ser := range s.Series {
				expr, ok := in.literalExpr(s, d, ser)
				if !ok {
					continue
				}
				rs := []rulefmt.Rule{alertRule(d, s.Name, expr, in.policy(ser.Policy))}
				if expr, ok := in.literalSpikeExpr(s, d, ser); ok {
					rs = append(rs, spikeRule(d, s.Name, expr, in.policy(ser.Policy)))
				}
				for _, r := range rs {
					// The series' own labels make each rule distinct (promtool's
					// duplicate-rule lint) without changing the alert's identity:
					// the expression yields the same values.
					for _, l := range s.By {
						r.Labels[l] = ser.Labels[l]
					}
					out = append(out, r)
					n++
				}
			}
		}
		if in.Mode == ModeSeries {
			n += len(s.Series)
		}
	}
	return out, n
}

// StaticParams are the values the shared static alerts are rendered with:
// the exporter's job, the limits of alert_rules and rulegen.min_traffic.
func (in Input) StaticParams() StaticParams {
	return StaticParams{
		Selector:           fmt.Sprintf("job=%q", in.ExporterJob),
		For:                in.For,
		QPS:                in.QPSThreshold,
		ErrorRatio:         in.ErrorRate,
		ErrorRatioCritical: DefaultErrorRatioCritical,
		MinTraffic:         in.MinTraffic,
	}
}

func (in Input) metaRules() []rulefmt.Rule {
	out := []rulefmt.Rule{{
		Alert:  "AutoGLMExporterDown",
		Expr:   fmt.Sprintf("up{job=%q} == 0", in.ExporterJob),
		For:    model.Duration(5 * time.Minute),
		Labels: map[string]string{"severity": "critical"},
		Annotations: map[string]string{
			"summary":     "autoglm-exporter cannot be scraped; traffic alerts are blind.",
			"description": "{{ $labels.instance }} of job {{ $labels.job }} has been down for 5 minutes.",
			"runbook_url": RunbookBase + "#autoglmexporterdown",
		},
	}, {
		Alert: "AutoGLMRulegenFitStale",
		Expr: fmt.Sprintf("time() - %s > %s", "autoglm_rulegen_last_success_timestamp_seconds",
			fmtFloat((3 * in.RefitInterval).Seconds())),
		For:    model.Duration(10 * time.Minute),
		Labels: map[string]string{"severity": "warning"},
		Annotations: map[string]string{
			"summary":     "Baselines have not been refitted for three refit intervals.",
			"description": "The last successful fit of {{ $labels.instance }} was {{ $value | humanizeDuration }} ago; rules keep their last good thresholds.",
			"runbook_url": RunbookBase + "#autoglmrulegenfitstale",
		},
	}}
	if in.Mode == ModeSeries {
		out = append(out, rulefmt.Rule{
			Alert:  "AutoGLMRulegenBaselinesAbsent",
			Expr:   "absent(autoglm_rulegen_build_info)",
			For:    model.Duration(10 * time.Minute),
			Labels: map[string]string{"severity": "warning"},
			Annotations: map[string]string{
				"summary":     "autoglm-rulegen is not scraped; baseline alerts fall back to static limits.",
				"description": "No autoglm_rulegen_build_info series for 10 minutes: add rulegen as a scrape target with honor_labels: true.",
				"runbook_url": RunbookBase + "#autoglmrulegenbaselinesabsent",
			},
		})
	}
	return out
}

// Build generates, renders and validates every rule file. Nothing is
// returned unless every file passes the checks Prometheus itself applies.
func Build(in Input) (*Set, error) {
	if in.Mode != ModeSeries && in.Mode != ModeLiteral {
		return nil, fmt.Errorf("unknown mode %q", in.Mode)
	}
	if in.MaxSeries <= 0 {
		return nil, fmt.Errorf("max series must be positive, got %d", in.MaxSeries)
	}
	for _, s := range in.SLIs {
		if len(s.Series) > in.MaxSeries {
			return nil, fmt.Errorf("sli %s has %d series, more than the limit of %d", s.Name, len(s.Series), in.MaxSeries)
		}
	}
	set := &Set{Files: map[string]rulefmt.RuleGroups{}, Rendered: map[string][]byte{}}
	if !in.SkipRecording {
		rec := rulefmt.RuleGroup{Name: GroupRecording, Limit: in.MaxSeries}
		for _, r := range sli.RecordingRules() {
			rec.Rules = append(rec.Rules, rulefmt.Rule{Record: r.Record, Expr: r.Expr})
		}
		set.Files[RecordingFile] = rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{rec}}
	}
	base, n := in.baselineRules()
	set.Series = n
	static, err := StaticRules(in.StaticParams(), in.Cooldown)
	if err != nil {
		return nil, err
	}
	alerts := rulefmt.RuleGroups{Groups: []rulefmt.RuleGroup{
		{Name: GroupStatic, Limit: in.MaxSeries, Rules: static},
		{Name: GroupBaseline, Limit: in.MaxSeries, Rules: base},
		{Name: GroupMeta, Limit: in.MaxSeries, Rules: in.metaRules()},
	}}
	// An empty group is legal but noisy; drop it.
	kept := alerts.Groups[:0]
	for _, g := range alerts.Groups {
		if len(g.Rules) > 0 {
			kept = append(kept, g)
		}
	}
	alerts.Groups = kept
	set.Files[AlertsFile] = alerts
	for name, g := range in.Extra {
		if _, taken := set.Files[name]; taken || len(g.Groups) == 0 {
			continue
		}
		set.Files[name] = g
	}
	for name, groups := range set.Files {
		b, err := Render(groups)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		if err := Validate(b); err != nil {
			return nil, fmt.Errorf("generated %s is invalid: %w", name, err)
		}
		set.Rendered[name] = b
	}
	inh, err := InhibitRules()
	if err != nil {
		return nil, err
	}
	set.Inhibit = inh
	return set, nil
}
