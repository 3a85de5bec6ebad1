package dashboards

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/open-autoglm/autoglm-monitor/dashboards/lint"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/slo"
)

const (
	capturesDir = "testdata/metrics"
	mixinDir    = "../mixins/autoglm-mixin"
)

// Series Prometheus itself produces rather than one of our binaries.
var prometheusSeries = map[string]bool{"up": true, "ALERTS": true, "ALERTS_FOR_STATE": true}

// usedMetrics returns every metric read by a dashboard or a rule, with where it is used.
func usedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	used := map[string][]string{}
	forEachExpr(t, func(where string, e parser.Expr) {
		for _, m := range lint.Metrics(e) {
			used[m] = append(used[m], where)
		}
	})
	return used
}

// forEachExpr parses every PromQL expression of the dashboards and the mixin's rules.
func forEachExpr(t *testing.T, fn func(where string, e parser.Expr)) {
	t.Helper()
	add := func(where, expr string) {
		e, err := lint.Parse(expr)
		if err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		fn(where, e)
	}
	paths, err := filepath.Glob("json/*.json")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no dashboards: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		d, err := lint.ParseDashboard(b)
		if err != nil {
			t.Fatal(err)
		}
		for where, expr := range d.Exprs() {
			add(filepath.Base(p)+": "+where, expr)
		}
	}
	for _, f := range []string{"prometheus_rules.yaml", "prometheus_alerts.yaml"} {
		b, err := os.ReadFile(filepath.Join(mixinDir, f))
		if err != nil {
			t.Fatal(err)
		}
		groups, err := lint.ParseRules(b, f)
		if err != nil {
			t.Fatal(err)
		}
		for _, g := range groups.Groups {
			for _, r := range g.Rules {
				add(f+": "+r.Alert+r.Record, r.Expr)
			}
		}
	}
}

// exposedMetrics reads captured /metrics outputs and returns the series names they define.
func exposedMetrics(t *testing.T, files ...string) map[string]bool {
	t.Helper()
	out := map[string]bool{}
	for _, f := range files {
		for name, mf := range parseCapture(t, f) {
			for _, n := range seriesNames(name, mf.GetType()) {
				out[n] = true
			}
		}
	}
	return out
}

func parseCapture(t *testing.T, path string) map[string]*dto.MetricFamily {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (regenerate with: go test ./dashboards -run TestCaptures -update-captures)", err)
	}
	defer f.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return mfs
}

// seriesNames are the names a family's samples carry in PromQL.
func seriesNames(name string, typ dto.MetricType) []string {
	switch typ {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		return []string{name, name + "_bucket", name + "_sum", name + "_count"}
	case dto.MetricType_SUMMARY:
		return []string{name, name + "_sum", name + "_count"}
	}
	return []string{name}
}

func captureFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(capturesDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range files {
		have[filepath.Base(f)] = true
	}
	for _, want := range []string{"exporter.txt", "exporter-ebpf.txt", "exporter-kafka.txt", "rulegen.txt", "receiver.txt"} {
		if !have[want] {
			t.Errorf("capture %s/%s is missing", capturesDir, want)
		}
	}
	return files
}

// A renamed or dropped metric must break the build, not a user's dashboard.
func TestEveryUsedMetricIsExposed(t *testing.T) {
	used := usedMetrics(t)
	exposed := exposedMetrics(t, captureFiles(t)...)
	records := map[string]bool{}
	for _, r := range append(sli.RecordingRules(), sli.EngineRecordingRules()...) {
		records[r.Record] = true
	}
	// Written by rulegen's SLO rules (rulegen/slo), not scraped.
	for _, r := range []string{slo.RecordBudget, slo.RecordBudgetRemaining, slo.RecordObjective, slo.RecordInfo,
		slo.RecordErrorRatio + "5m", slo.RecordErrorRatio + "30m", slo.RecordErrorRatio + "1h", slo.RecordErrorRatio + "2h",
		slo.RecordErrorRatio + "6h", slo.RecordErrorRatio + "1d", slo.RecordErrorRatio + "3d"} {
		records[r] = true
	}
	// Exposed by the serving engines and NVIDIA's DCGM exporter; the
	// simulator's vLLM names are checked in internal/llmsim.
	for _, m := range []string{sli.VLLMWaiting, sli.VLLMRunning, sli.VLLMKVCache, sli.VLLMGPUCache, sli.VLLMPreemptions,
		sli.VLLMTTFT + "_bucket", sli.SGLangWaiting, sli.SGLangRunning, sli.SGLangTokenUsage, sli.SGLangTTFT + "_bucket",
		sli.TGIQueue, sli.TGIBatch, sli.TGIQueueDuration + "_bucket", sli.DCGMGPUUtil, sli.DCGMFBUsed, sli.DCGMFBFree} {
		records[m] = true
	}
	for _, must := range []string{sli.HTTPDuration + "_bucket", sli.RulegenBaseline, "autoglm_receiver_queue_depth", sli.RouteRequestRate} {
		if len(used[must]) == 0 {
			t.Errorf("extractor did not find %s, which the dashboards use", must)
		}
	}
	names := make([]string, 0, len(used))
	for n := range used {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if records[n] || prometheusSeries[n] || exposed[n] {
			continue
		}
		where := used[n]
		sort.Strings(where)
		t.Errorf("%s is used but no binary exposes it; used in:\n  %s", n, strings.Join(where, "\n  "))
	}
}

// exposedLabels maps each series name of the captures to the label names its samples carry.
func exposedLabels(t *testing.T, files ...string) map[string]map[string]bool {
	t.Helper()
	out := map[string]map[string]bool{}
	for _, f := range files {
		for name, mf := range parseCapture(t, f) {
			for _, n := range seriesNames(name, mf.GetType()) {
				if out[n] == nil {
					out[n] = map[string]bool{}
				}
				for _, m := range mf.GetMetric() {
					for _, l := range m.GetLabel() {
						out[n][l.GetName()] = true
					}
				}
			}
		}
	}
	return out
}

// A renamed label empties a panel as surely as a renamed metric: every label
// a selector filters on must exist on that metric in the captures.
func TestEveryFilteredLabelIsExposed(t *testing.T) {
	exposed := exposedLabels(t, captureFiles(t)...)
	// Added by Prometheus from the scrape target, not exposed by the binaries.
	targetLabels := map[string]bool{model.MetricNameLabel: true, "job": true, "instance": true}
	checked := 0
	forEachExpr(t, func(where string, e parser.Expr) {
		for _, vs := range lint.Selectors(e) {
			name := lint.MetricName(vs)
			labels, ok := exposed[name]
			if !ok {
				continue // recording rules and Prometheus' own series; metric existence is checked elsewhere
			}
			for _, m := range vs.LabelMatchers {
				if targetLabels[m.Name] {
					continue
				}
				checked++
				if !labels[m.Name] {
					t.Errorf("%s: %s filters on label %q, which %s does not carry", where, vs, m.Name, name)
				}
			}
		}
	})
	if checked < 20 {
		t.Fatalf("only %d label matchers checked; extraction is broken", checked)
	}
}
