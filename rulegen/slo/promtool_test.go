package slo

import (
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// scenario is a route serving rate requests/s, of which ratio fail from
// onset on (and, when blip > 0, only for blip).
type scenario struct {
	name     string
	interval time.Duration
	span     time.Duration
	rate     float64
	ratio    float64
	onset    time.Duration
	blip     time.Duration
}

// series writes the counters of the availability SLO in promtool's notation.
func (sc scenario) series() string {
	n := int(sc.span / sc.interval)
	per := sc.rate * sc.interval.Seconds()
	var good, errs strings.Builder
	var tot, bad float64
	for i := 0; i <= n; i++ {
		t := time.Duration(i) * sc.interval
		fmt.Fprintf(&good, "%g ", tot-bad)
		fmt.Fprintf(&errs, "%g ", bad)
		tot += per
		if t >= sc.onset && (sc.blip == 0 || t < sc.onset+sc.blip) {
			bad += per * sc.ratio
		}
	}
	const m = `http_server_request_duration_seconds_count{job="llm",http_route="/v1/chat/completions",http_response_status_code="%s",error_type="%s"}`
	return fmt.Sprintf("      - series: '%s'\n        values: '%s'\n      - series: '%s'\n        values: '%s'\n",
		fmt.Sprintf(m, "200", ""), strings.TrimSpace(good.String()), fmt.Sprintf(m, "500", "500"), strings.TrimSpace(errs.String()))
}

// expected renders the AutoGLMErrorBudgetBurn alerts of both rule
// sets (native service llm-api, Sloth service sloth-llm-api) for severities.
func expected(sevs ...string) string {
	if len(sevs) == 0 {
		return "        exp_alerts: []\n"
	}
	var b strings.Builder
	b.WriteString("        exp_alerts:\n")
	for _, sev := range sevs {
		level := map[string]string{SeverityPage: "critical", SeverityTicket: "warning"}[sev]
		for _, svc := range []string{"llm-api", "sloth-llm-api"} {
			fmt.Fprintf(&b, "          - exp_labels: {alertname: %s, severity: %s, sloth_severity: %s, sloth_id: %s-chat-availability, sloth_service: %s, sloth_slo: chat-availability",
				AlertName, level, sev, svc, svc)
			if svc == "sloth-llm-api" {
				b.WriteString(", team: inference, category: availability")
			}
			b.WriteString("}\n")
		}
	}
	return b.String()
}

// workbookTime is when the SRE workbook's arithmetic says a pair of windows
// detects a constant error ratio that starts at once: the long window's
// ratio reaches factor × budget after long × factor × budget / ratio.
func workbookTime(w BurnWindow, period time.Duration, budget, ratio float64) time.Duration {
	return time.Duration(float64(w.Long) * w.Factor(period) * budget / ratio)
}

// TestBurnRateAlertsFireWhenTheWorkbookSays runs promtool on the native and
// the Sloth rules of the same SLO (99 % over 30 days, budget 1 %): for each
// pair of windows an error ratio that only that pair (and the slower pairs
// of its severity) detects, checked one step before and one step after the
// workbook's detection time; both rule sets must agree at each check and
// at every minute of every scenario; and a short error blip on a route
// below min_traffic pages only the Sloth rules, which have no such guard.
func TestBurnRateAlertsFireWhenTheWorkbookSays(t *testing.T) {
	promtool := testenv.Promtool(t)
	native, sloth := loadTestSpecs(t)
	native.SLOs, sloth.SLOs = native.SLOs[:1], sloth.SLOs[:1]
	dir := t.TempDir()
	for name, spec := range map[string]Spec{"native.yml": native, "sloth.yml": sloth} {
		g, err := Build(spec)
		if err != nil {
			t.Fatal(err)
		}
		// Annotations carry $value, which differs at every evaluation; the
		// test is about when alerts fire and with which labels.
		for i := range g.Groups {
			for j := range g.Groups[i].Rules {
				g.Groups[i].Rules[j].Annotations = nil
			}
		}
		b, err := rules.Render(g)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const period, budget = 30 * 24 * time.Hour, 0.01
	ws := Windows()
	type check struct {
		sc         scenario
		at         []time.Duration
		sevs       [][]string
		pair       BurnWindow
		identicalH time.Duration
	}
	var checks []check
	// One scenario per pair: the ratio lies between this pair's factor and
	// the next faster pair's, so this pair is the first to detect it.
	cases := []struct {
		w     BurnWindow
		ratio float64
		step  time.Duration
	}{
		{ws[0], 0.5, time.Minute},      // page 1h/5m at 14.4×: 17.3 min
		{ws[1], 0.1, time.Minute},      // page 6h/30m at 6×: 3.6 h
		{ws[2], 0.04, 5 * time.Minute}, // ticket 1d/2h at 3×: 18 h
		{ws[3], 0.02, 5 * time.Minute}, // ticket 3d/6h at 1×: 36 h
	}
	for _, c := range cases {
		at := workbookTime(c.w, period, budget, c.ratio)
		// Three days of clean traffic first: the workbook's arithmetic
		// assumes every window is full.
		onset := 3 * 24 * time.Hour
		sc := scenario{name: fmt.Sprintf("%s %s/%s at %g", c.w.Severity, c.w.Long, c.w.Short, c.ratio), interval: c.step,
			span: onset + at + 2*time.Hour, rate: 10, ratio: c.ratio, onset: onset}
		before, after := onset+at-2*c.step, onset+at+2*c.step
		checks = append(checks, check{sc: sc, pair: c.w,
			at:   []time.Duration{onset, before, after},
			sevs: [][]string{nil, nil, {c.w.Severity}}})
	}
	files := map[time.Duration]*strings.Builder{}
	file := func(step time.Duration) *strings.Builder {
		if files[step] == nil {
			files[step] = &strings.Builder{}
			fmt.Fprintf(files[step], "rule_files: [%s, %s]\nevaluation_interval: %s\ntests:\n",
				filepath.Join(dir, "native.yml"), filepath.Join(dir, "sloth.yml"), promDur(step))
		}
		return files[step]
	}
	for _, c := range checks {
		b := file(c.sc.interval)
		fmt.Fprintf(b, "  # %s: the workbook says %s after the onset\n  - interval: %s\n    input_series:\n%s    alert_rule_test:\n",
			c.sc.name, workbookTime(c.pair, period, budget, c.sc.ratio), promDur(c.sc.interval), c.sc.series())
		for i, at := range c.at {
			fmt.Fprintf(b, "      - eval_time: %s\n        alertname: %s\n%s", promDur(at), AlertName, expected(c.sevs[i]...))
		}
		identical(b, c.sc.span)
	}
	b := file(time.Minute)
	// A blip: 10 minutes of 100 % errors on a route serving 0.05 req/s
	// (below min_traffic 0.1). The 1h and 5m ratios are far above 14.4 ×
	// the budget, so Sloth's rules page; the native rules do not.
	blip := scenario{name: "blip", interval: time.Minute, span: 3 * time.Hour, rate: 0.05, ratio: 1, onset: time.Hour, blip: 10 * time.Minute}
	fmt.Fprintf(b, "  # a short blip under min_traffic\n  - interval: 1m\n    input_series:\n%s    promql_expr_test:\n", blip.series())
	fmt.Fprintf(b, "      - expr: 'count_over_time(ALERTS{sloth_service=\"llm-api\"}[3h:1m])'\n        eval_time: 3h\n        exp_samples: []\n")
	fmt.Fprintf(b, "      - expr: 'clamp_max(count(count_over_time(ALERTS{alertstate=\"firing\", sloth_service=\"sloth-llm-api\", sloth_severity=\"page\"}[3h:1m])), 1)'\n        eval_time: 3h\n        exp_samples: [{labels: '{}', value: 1}]\n")
	start := time.Now()
	// One promtool per file, side by side: the files are independent and
	// each takes a core for a while (three days of one-minute samples).
	var wg sync.WaitGroup
	for step, fb := range files {
		p := filepath.Join(dir, fmt.Sprintf("burn-%s.test.yml", promDur(step)))
		if err := os.WriteFile(p, []byte(fb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := exec.Command(promtool, "test", "rules", p).CombinedOutput()
			if err != nil {
				t.Errorf("promtool test rules %s: %v\n%s", p, err, out)
				return
			}
			t.Logf("%s", out)
		}()
	}
	wg.Wait()
	t.Logf("promtool test rules took %s", time.Since(start).Round(time.Second))
	for _, c := range cases {
		t.Logf("%s %s/%s (%.4g×): ratio %g detected %s after onset", c.w.Severity, c.w.Long, c.w.Short, c.w.Factor(period), c.ratio,
			workbookTime(c.w, period, budget, c.ratio))
	}
}

// identical adds promql tests asserting that at every minute of the
// scenario the native and the Sloth rules fire the same alerts.
func identical(b *strings.Builder, span time.Duration) {
	const a = `ALERTS{alertstate="firing", sloth_service="llm-api"}`
	const s = `ALERTS{alertstate="firing", sloth_service="sloth-llm-api"}`
	r := promDur(span)
	fmt.Fprintf(b, "    promql_expr_test:\n")
	for _, q := range []string{
		fmt.Sprintf("count_over_time((%s unless on (alertname, sloth_slo, sloth_severity) %s)[%s:1m])", a, s, r),
		fmt.Sprintf("count_over_time((%s unless on (alertname, sloth_slo, sloth_severity) %s)[%s:1m])", s, a, r),
	} {
		fmt.Fprintf(b, "      - expr: '%s'\n        eval_time: %s\n        exp_samples: []\n", q, r)
	}
	// And that they fired at all, or the two checks above prove nothing.
	fmt.Fprintf(b, "      - expr: 'clamp_max(count(count_over_time(%s[%s:1m])), 1)'\n        eval_time: %s\n        exp_samples: [{labels: '{}', value: 1}]\n", a, r, r)
}

func promDur(d time.Duration) string {
	if d%time.Hour == 0 {
		return fmt.Sprintf("%dh", d/time.Hour)
	}
	return fmt.Sprintf("%dm", int(math.Round(d.Minutes())))
}
