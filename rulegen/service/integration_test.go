package service

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// sliTarget serves the SLI recording-rule series as a scrape target, so the
// test controls "live" values; incident switches the error ratio to 50%.
type sliTarget struct{ incident atomic.Bool }

func (s *sliTarget) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	rate, ratio, p95 := seasonal(time.Now())
	if s.incident.Load() {
		ratio = 0.5
	}
	l := `{job="autoglm-exporter",http_route="/v1/chat/completions"}`
	fmt.Fprintf(w, "%s%s %g\n%s%s %g\n%s%s %g\n", sli.RouteRequestRate, l, rate, sli.RouteErrorRatio, l, ratio, sli.RouteLatencyP95, l, p95)
}

// seasonal is the backfilled history: a daily cycle for traffic and latency,
// a steady 1% error ratio.
func seasonal(t time.Time) (rate, ratio, p95 float64) {
	day := 2 * math.Pi * float64(t.Unix()%86400) / 86400
	return 100 + 30*math.Sin(day), 0.01 + 0.002*math.Sin(7*day), 1.5 + 0.2*math.Sin(day)
}

// backfill writes a week of 1-minute points ending at end into dataDir with
// promtool, with the labels the scrape will attach, so history and live
// samples are one series.
func backfill(t *testing.T, promtool, dataDir, instance string, end time.Time) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "history.om")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	l := fmt.Sprintf(`{job="autoglm-exporter",http_route="/v1/chat/completions",instance=%q}`, instance)
	start := end.Add(-7 * 24 * time.Hour).Truncate(time.Minute)
	for i, name := range []string{sli.RouteRequestRate, sli.RouteErrorRatio, sli.RouteLatencyP95} {
		fmt.Fprintf(w, "# TYPE %s gauge\n", name)
		for ts := start; ts.Before(end); ts = ts.Add(time.Minute) {
			v := [3]float64{}
			v[0], v[1], v[2] = seasonal(ts)
			fmt.Fprintf(w, "%s%s %g %d\n", name, l, v[i], ts.Unix())
		}
	}
	fmt.Fprint(w, "# EOF\n")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", p, dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("backfill: %v\n%s", err, out)
	}
}

func getJSON(t *testing.T, url string, v any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, b)
	}
	return json.Unmarshal(b, v)
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if ok() {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s", timeout, what)
}

// TestAgainstRealPrometheus: backfilled history → rulegen fits, writes,
// reloads; /api/v1/rules shows the rules; the baseline gauges are scraped
// with the exporter's job; an injected incident fires the alert.
func TestAgainstRealPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real Prometheus")
	}
	promBin, promtool := testenv.Prometheus(t), testenv.Promtool(t)
	dir := t.TempDir()
	dataDir, ruleDir := filepath.Join(dir, "data"), filepath.Join(dir, "rules")
	for _, d := range []string{dataDir, ruleDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	target := &sliTarget{}
	exporter := httptest.NewServer(target)
	defer exporter.Close()
	exporterAddr := strings.TrimPrefix(exporter.URL, "http://")
	backfill(t, promtool, dataDir, exporterAddr, time.Now().Add(-time.Minute))

	reg := prometheus.NewRegistry()
	rulegenSrv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer rulegenSrv.Close()

	port := testenv.FreePort(t)
	promURL := "http://" + testenv.Addr(port)
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
scrape_configs:
  - job_name: sli
    honor_labels: true
    static_configs: [{targets: [%q]}]
  - job_name: autoglm-rulegen
    # The baseline gauges carry the exporter's job label; honor it.
    honor_labels: true
    static_configs: [{targets: [%q]}]
`, filepath.Join(ruleDir, "*.rules.yml"), exporterAddr, strings.TrimPrefix(rulegenSrv.URL, "http://"))
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, promBin, "--config.file="+cfgPath, "--storage.tsdb.path="+dataDir,
		"--web.listen-address="+testenv.Addr(port), "--web.enable-lifecycle")
	logFile, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(logFile.Name())
			for _, line := range strings.Split(string(b), "\n") {
				if !strings.Contains(line, "level=info") {
					t.Log(line)
				}
			}
		}
	}()
	waitFor(t, "prometheus ready", 30*time.Second, func() bool {
		resp, err := http.Get(promURL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})

	cfg, err := config.Parse([]byte(fmt.Sprintf(`
alert_rules: {qps_threshold: 5000, error_rate: 0.2, cooldown: 0}
rulegen:
  prometheus: {url: %s, timeout: 20s, retries: 1}
  history: 1w
  for: 2s
  min_traffic: 1
  output:
    # The target serves the recording-rule series itself.
    recording_rules: false
    rule_dir: %s
    reload_url: %s/-/reload
`, promURL, ruleDir, promURL)), "it.yml")
	if err != nil {
		t.Fatal(err)
	}
	reader, _, err := NewReader(cfg, reg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	targets, err := NewTargets(cfg, "")
	if err != nil {
		t.Fatal(err)
	}
	fits := map[string]string{}
	svc, err := New(Options{
		Config: cfg, History: reader, Targets: targets, Registerer: reg,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Fit: func(h []baseline.Point, o baseline.Options) (baseline.Model, baseline.Policy, error) {
			m, p, err := baseline.Fit(h, o)
			if err == nil {
				fits[string(o.Kind)] = fmt.Sprintf("%s from %d points", m.Name(), len(h))
				// Production policies are minutes long; the test cannot wait that long.
				p = baseline.Policy{For: 2 * time.Second}
			}
			return m, p, err
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refit(ctx); err != nil {
		t.Fatalf("refit: %v", err)
	}
	t.Logf("fits: %v", fits)
	if _, ok := fits[string(sli.KindRatio)]; !ok {
		t.Fatalf("error ratio was not fitted from a week of history (fits: %v)", fits)
	}
	if got := testutil.ToFloat64(svc.metrics.reloads.WithLabelValues("success")); got != 1 {
		t.Fatalf("verified reloads = %g, want 1", got)
	}

	var rulesResp struct {
		Data struct {
			Groups []struct {
				Name  string `json:"name"`
				Rules []struct {
					Name   string `json:"name"`
					Health string `json:"health"`
					Error  string `json:"lastError"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	if err := getJSON(t, promURL+"/api/v1/rules", &rulesResp); err != nil {
		t.Fatal(err)
	}
	groups := map[string]int{}
	for _, g := range rulesResp.Data.Groups {
		groups[g.Name] = len(g.Rules)
	}
	for _, g := range []string{rules.GroupStatic, rules.GroupBaseline, rules.GroupMeta} {
		if groups[g] == 0 {
			t.Errorf("group %s not loaded by Prometheus (loaded: %v)", g, groups)
		}
	}

	type alertsResp struct {
		Data struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
				State  string            `json:"state"`
			} `json:"alerts"`
		} `json:"data"`
	}
	firing := func(name string) bool {
		var a alertsResp
		if err := getJSON(t, promURL+"/api/v1/alerts", &a); err != nil {
			return false
		}
		for _, al := range a.Data.Alerts {
			if al.Labels["alertname"] == name && al.State == "firing" && al.Labels["http_route"] == "/v1/chat/completions" {
				return true
			}
		}
		return false
	}
	// The gauges must arrive with the exporter's job so the rules can join them.
	waitFor(t, "baseline gauges scraped with the exporter's job", 20*time.Second, func() bool {
		var q struct {
			Data struct {
				Result []json.RawMessage `json:"result"`
			} `json:"data"`
		}
		err := getJSON(t, promURL+`/api/v1/query?query=`+
			`autoglm_rulegen_baseline{job="autoglm-exporter",sli="error_ratio",bound="upper"}`, &q)
		return err == nil && len(q.Data.Result) == 1
	})
	// Normal (seasonal) traffic for a few evaluations: nothing fires.
	time.Sleep(4 * time.Second)
	for _, a := range []string{"AutoGLMErrorRatioAboveBaseline", "AutoGLMTrafficDrop", "AutoGLMTrafficSurge", "AutoGLMLatencyAboveBaseline", "AutoGLMHighErrorRate"} {
		if firing(a) {
			t.Errorf("%s fires on normal traffic", a)
		}
	}
	target.incident.Store(true)
	defer func() {
		if !t.Failed() {
			return
		}
		for _, q := range []string{sli.RouteErrorRatio, `autoglm_rulegen_baseline{sli="error_ratio"}`,
			"avg_over_time(" + sli.RouteErrorRatio + "[1h])", sli.RouteRequestRate, "ALERTS"} {
			var r json.RawMessage
			_ = getJSON(t, promURL+"/api/v1/query?query="+url.QueryEscape(q), &r)
			t.Logf("%s = %s", q, r)
		}
		var r json.RawMessage
		_ = getJSON(t, promURL+"/api/v1/rules?type=alert", &r)
		t.Logf("rules: %s", r)
	}()
	waitFor(t, "AutoGLMErrorRatioAboveBaseline to fire on the injected incident", 45*time.Second, func() bool {
		return firing("AutoGLMErrorRatioAboveBaseline")
	})
	for _, g := range rulesResp.Data.Groups {
		for _, r := range g.Rules {
			if r.Health == "err" {
				t.Errorf("rule %s is unhealthy: %s", r.Name, r.Error)
			}
		}
	}
}
