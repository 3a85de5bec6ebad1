package service

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/promapi"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
	"github.com/open-autoglm/autoglm-monitor/rulegen/target"
)

var now = time.Date(2026, 11, 20, 12, 0, 0, 0, time.UTC)

// fakeHistory returns one series per SLI; err fails every read.
type fakeHistory struct {
	err    error
	points func(q string) []baseline.Point
}

func (f *fakeHistory) History(_ context.Context, q string, start, end time.Time) ([]promapi.Series, error) {
	if f.err != nil {
		return nil, f.err
	}
	lbls := model.Metric{"job": "autoglm-exporter", "http_route": "/v1/chat/completions"}
	if q == sli.ModelTTFTP95 {
		lbls["gen_ai_request_model"] = "glm-4"
	}
	return []promapi.Series{{Labels: lbls, Points: f.points(q)}}, nil
}

func hours(n int, v float64) []baseline.Point {
	out := make([]baseline.Point, 0, n*60)
	for i := 0; i < n*60; i++ {
		out = append(out, baseline.Point{T: now.Add(-time.Duration(n*60-i) * time.Minute), V: v})
	}
	return out
}

// flat is a test model: expected ± v·k/8 (± 50% at the default k = 4).
type flat struct{ v, k float64 }

func (f flat) Name() string { return "test_flat" }
func (f flat) Band(time.Time) baseline.Band {
	w := f.v * f.k / 8
	return baseline.Band{Lower: f.v - w, Expected: f.v, Upper: f.v + w, SpikeLower: f.v - 1.5*w, SpikeUpper: f.v + 3*w}
}

// fakeFit fits the mean of finite points and refuses fewer than 10.
func fakeFit(h []baseline.Point, o baseline.Options) (baseline.Model, baseline.Policy, error) {
	if len(h) < 10 {
		return nil, baseline.Policy{}, baseline.ErrNoHistory
	}
	var s float64
	for _, p := range h {
		s += p.V
	}
	return flat{s / float64(len(h)), o.K}, baseline.Policy{For: 7 * time.Minute, KeepFiringFor: 11 * time.Minute}, nil
}

type env struct {
	svc  *Service
	reg  *prometheus.Registry
	dir  string
	logs *bytes.Buffer
	hist *fakeHistory
}

func newEnv(t *testing.T, mode string, reload string) *env {
	t.Helper()
	cfg, err := config.Parse([]byte("rulegen:\n  mode: "+mode+"\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	e := &env{reg: prometheus.NewRegistry(), dir: t.TempDir(), logs: &bytes.Buffer{},
		hist: &fakeHistory{points: func(string) []baseline.Point { return hours(48, 2) }}}
	svc, err := New(Options{
		Config: cfg, History: e.hist, Fit: fakeFit, Now: func() time.Time { return now },
		Targets:    []target.Target{&target.Dir{Path: e.dir, ReloadURL: reload}},
		Registerer: e.reg, Logger: slog.New(slog.NewTextHandler(e.logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = svc
	return e
}

func (e *env) read(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(e.dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestRefitSeriesModeExposesBands(t *testing.T) {
	e := newEnv(t, "series", "")
	if err := e.svc.Refit(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Ready(); err != nil {
		t.Fatalf("not ready after a good refit: %v", err)
	}
	if !strings.Contains(e.read(t, rules.AlertsFile), `autoglm_rulegen_baseline{sli="error_ratio", bound="upper"}`) {
		t.Fatal("series-mode alerts do not compare against the gauges")
	}
	want := `
# HELP autoglm_rulegen_baseline Current band of an SLI series (bound lower, expected, upper, or spike_lower/spike_upper beyond which an alert fires at once); alert rules compare against it.
# TYPE autoglm_rulegen_baseline gauge
autoglm_rulegen_baseline{bound="expected",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"} 2
autoglm_rulegen_baseline{bound="lower",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"} 1
autoglm_rulegen_baseline{bound="spike_lower",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"} 0.5
autoglm_rulegen_baseline{bound="spike_upper",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"} 5
autoglm_rulegen_baseline{bound="upper",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"} 3
`
	var buf strings.Builder
	mfs, err := e.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		buf.WriteString(mf.GetName() + "\n")
	}
	if err := testutil.GatherAndCompare(filteredGatherer{e.reg, "request_rate"}, strings.NewReader(want), "autoglm_rulegen_baseline"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"autoglm_rulegen_build_info", "autoglm_rulegen_model_info", "autoglm_rulegen_history_seconds", "autoglm_rulegen_series"} {
		if !strings.Contains(buf.String(), name+"\n") {
			t.Errorf("metric %s not exposed", name)
		}
	}
	if n, err := testutil.GatherAndCount(e.reg, "autoglm_rulegen_baseline"); err != nil || n != 5*5 {
		t.Errorf("baseline series = %d, %v; want 25 (5 SLIs × 5 bounds)", n, err)
	}
	if problems, err := testutil.GatherAndLint(e.reg); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
	if got := testutil.ToFloat64(e.svc.metrics.lastSuccess); got != float64(now.Unix()) {
		t.Errorf("last success = %g", got)
	}
}

// filteredGatherer keeps only the series of one SLI.
type filteredGatherer struct {
	g   prometheus.Gatherer
	sli string
}

func (f filteredGatherer) Gather() ([]*dto.MetricFamily, error) {
	mfs, err := f.g.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		kept := mf.Metric[:0]
		for _, m := range mf.Metric {
			for _, l := range m.Label {
				if l.GetName() == "sli" && l.GetValue() == f.sli {
					kept = append(kept, m)
				}
			}
		}
		mf.Metric = kept
	}
	return mfs, nil
}

func TestRefitLiteralModeBakesThresholds(t *testing.T) {
	e := newEnv(t, "literal", "")
	e.svc.cfg.Rulegen.K = 2
	if err := e.svc.Refit(context.Background()); err != nil {
		t.Fatal(err)
	}
	alerts := e.read(t, rules.AlertsFile)
	// The test model widens its band with k: expected 2, upper 2 + 0.25·k.
	for _, want := range []string{`job_route:http_server_requests:rate5m{job="autoglm-exporter", service_name="", netns="", k8s_namespace_name="", k8s_pod_name="", k8s_container_name="", http_route="/v1/chat/completions"} > 2.5`, "for: 7m", "keep_firing_for: 11m"} {
		if !strings.Contains(alerts, want) {
			t.Errorf("literal rules lack %q", want)
		}
	}
}

func TestRefitFailuresKeepLastGoodRules(t *testing.T) {
	reloadFails := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/-/reload" && reloadFails {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte("prometheus_config_last_reload_successful 1\nprometheus_config_last_reload_success_timestamp_seconds 9e9\n"))
	}))
	defer srv.Close()
	e := newEnv(t, "literal", srv.URL+"/-/reload")
	ctx := context.Background()
	if err := e.svc.Refit(ctx); err != nil {
		t.Fatal(err)
	}
	good := e.read(t, rules.AlertsFile)

	t.Run("prometheus down", func(t *testing.T) {
		e.hist.err = errors.New(`query job_route:x from 2026-11-18T12:00:00Z: connection refused`)
		defer func() { e.hist.err = nil }()
		err := e.svc.Refit(ctx)
		if err == nil || !strings.Contains(err.Error(), "read history of request_rate") {
			t.Fatalf("err = %v", err)
		}
		if got := testutil.ToFloat64(e.svc.metrics.failures.WithLabelValues("query")); got != 1 {
			t.Errorf("query failures = %g", got)
		}
		if e.read(t, rules.AlertsFile) != good {
			t.Error("rules changed after a failed query")
		}
	})
	t.Run("empty, NaN-only and gappy history", func(t *testing.T) {
		e.hist.points = func(q string) []baseline.Point {
			switch q {
			case sli.RouteRequestRate:
				return nil
			case sli.RouteErrorRatio:
				return hours(48, 0.01)[:3] // a few points only
			default:
				pts := hours(48, 1)
				return append(pts[:100:100], pts[2000:]...) // a day-long gap
			}
		}
		defer func() { e.hist.points = func(string) []baseline.Point { return hours(48, 2) } }()
		before := testutil.ToFloat64(e.svc.metrics.failures.WithLabelValues("no_history"))
		if err := e.svc.Refit(ctx); err != nil {
			t.Fatalf("thin history must fall back, not fail: %v", err)
		}
		if got := testutil.ToFloat64(e.svc.metrics.failures.WithLabelValues("no_history")) - before; got != 2 {
			t.Errorf("no_history = %g, want 2", got)
		}
		alerts := e.read(t, rules.AlertsFile)
		if err := rules.Validate([]byte(alerts)); err != nil {
			t.Fatal(err)
		}
		// error_ratio had no history: its static limit (alert_rules.error_rate) applies.
		if !strings.Contains(alerts, `job_route:http_server_request_errors:ratio_rate5m{job="autoglm-exporter", service_name="", netns="", k8s_namespace_name="", k8s_pod_name="", k8s_container_name="", http_route="/v1/chat/completions"} > 0.05`) {
			t.Error("static fallback missing")
		}
		if !strings.Contains(e.logs.String(), "too little history, static limits apply") {
			t.Error("no log line for the fallback")
		}
	})
	t.Run("reload endpoint fails", func(t *testing.T) {
		reloadFails = true
		e.svc.cfg.AlertRules.QPSThreshold = 1234 // force a change
		err := e.svc.Refit(ctx)
		if err == nil || !strings.Contains(err.Error(), "reload") {
			t.Fatalf("err = %v", err)
		}
		if got := testutil.ToFloat64(e.svc.metrics.reloads.WithLabelValues("failure")); got != 1 {
			t.Errorf("reload failures = %g", got)
		}
		if err := rules.Validate([]byte(e.read(t, rules.AlertsFile))); err != nil {
			t.Fatalf("rule file broken after a failed reload: %v", err)
		}
		reloadFails = false
		if err := e.svc.Refit(ctx); err != nil {
			t.Fatalf("recovery: %v", err)
		}
		if got := testutil.ToFloat64(e.svc.metrics.reloads.WithLabelValues("success")); got != 3 {
			t.Errorf("reload successes = %g, want 3", got)
		}
	})
}

func TestHorizonTakesTheWidestBand(t *testing.T) {
	b := horizon(ramp{}, now, time.Hour, time.Minute)
	if b.Lower != 0 || b.Upper != 62 || math.Abs(b.Expected-31) > 1e-9 {
		t.Fatalf("horizon = %+v", b)
	}
	// Instants without a spike band (NaN) do not count; the others widen it.
	if b.SpikeLower != -9 || b.SpikeUpper != 80 {
		t.Fatalf("spike band over the horizon = %g %g, want -9 80", b.SpikeLower, b.SpikeUpper)
	}
}

// ramp's band grows by 1 per minute after now.
type ramp struct{}

func (ramp) Name() string { return "ramp" }
func (ramp) Band(t time.Time) baseline.Band {
	m := t.Sub(now).Minutes()
	b := baseline.Band{Lower: m, Expected: m + 1, Upper: m + 2, SpikeLower: m - 10, SpikeUpper: m + 20}
	if m == 0 {
		b.SpikeLower, b.SpikeUpper = math.NaN(), math.NaN()
	}
	return b
}

func TestFirstStartWithPrometheusDownWritesStaticRulesOnly(t *testing.T) {
	e := newEnv(t, "literal", "")
	e.hist.err = errors.New("connection refused")
	if err := e.svc.Refit(context.Background()); err == nil {
		t.Fatal("refit without history succeeded")
	}
	alerts := e.read(t, rules.AlertsFile)
	if err := rules.Validate([]byte(alerts)); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(alerts, "AutoGLMHighErrorRate") || strings.Contains(alerts, "AutoGLMErrorRatioAboveBaseline") {
		t.Fatalf("bootstrap rules must be the static ones:\n%s", alerts)
	}
	if e.svc.Ready() == nil {
		t.Error("ready without a successful refit")
	}
	// A later success replaces them; a later failure leaves the good rules alone.
	e.hist.err = nil
	if err := e.svc.Refit(context.Background()); err != nil {
		t.Fatal(err)
	}
	good := e.read(t, rules.AlertsFile)
	if !strings.Contains(good, "AutoGLMErrorRatioAboveBaseline") {
		t.Fatal("fitted rules not written")
	}
	e.hist.err = errors.New("connection refused")
	_ = e.svc.Refit(context.Background())
	if e.read(t, rules.AlertsFile) != good {
		t.Fatal("a failure after a success replaced the good rules")
	}
}

func TestSecretsNeverLogged(t *testing.T) {
	cfg, err := config.Parse([]byte(`
rulegen:
  prometheus:
    url: http://127.0.0.1:1
    retries: 1
    basic_auth: {username: rulegen, password: pa55-never-logged}
  output: {rule_dir: `+t.TempDir()+`}
`), "s.yml")
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	reader, _, err := NewReader(cfg, nil, logger)
	if err != nil {
		t.Fatal(err)
	}
	targets, err := NewTargets(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Config: cfg, History: reader, Targets: targets, Logger: logger})
	if err != nil {
		t.Fatal(err)
	}
	err = svc.Refit(context.Background())
	if err == nil {
		t.Fatal("refit against a closed port succeeded")
	}
	out := logs.String() + err.Error()
	if !strings.Contains(logs.String(), "range query failed, retrying") {
		t.Fatalf("no retry log line:\n%s", logs.String())
	}
	if strings.Contains(out, "pa55-never-logged") {
		t.Fatal("password leaked into logs or errors")
	}
}
