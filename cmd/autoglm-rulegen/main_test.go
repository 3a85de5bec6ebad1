package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// fakePrometheus answers range queries with two days of a daily cycle for one route.
func fakePrometheus(t *testing.T) *httptest.Server {
	t.Helper()
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/v1/query_range" {
			http.NotFound(w, r)
			return
		}
		_ = r.ParseForm()
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
		if start < end-2*86400 {
			start = end - 2*86400
		}
		var vals [][]any
		for ts := math.Ceil(start/step) * step; ts <= end; ts += step {
			v := 10 + 5*math.Sin(2*math.Pi*math.Mod(ts, 86400)/86400)
			if strings.Contains(r.Form.Get("query"), "ratio") {
				v /= 1000
			}
			vals = append(vals, []any{ts, strconv.FormatFloat(v, 'f', -1, 64)})
		}
		metric := map[string]string{"job": "autoglm-exporter", "http_route": "/v1/chat/completions"}
		if strings.HasPrefix(r.Form.Get("query"), "job_route_model:") {
			metric["gen_ai_request_model"] = "glm-4"
		}
		result := []any{}
		if len(vals) > 0 {
			result = append(result, map[string]any{"metric": metric, "values": vals})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": result}})
	}))
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "autoglm.yml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestGenerateWritesValidRules(t *testing.T) {
	bin, promtool := testenv.Binary(t, "autoglm-rulegen"), testenv.Promtool(t)
	prom := fakePrometheus(t)
	defer prom.Close()
	cfg := writeConfig(t, fmt.Sprintf("rulegen:\n  prometheus: {url: %s}\n  history: 2d\n  mode: literal\n", prom.URL))
	out := filepath.Join(t.TempDir(), "out")
	cmd := exec.Command(bin, "generate", "--config.file="+cfg, "--output", out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("generate: %v\n%s", err, b)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.rules.yml"))
	if len(files) != 2 {
		t.Fatalf("rule files = %v", files)
	}
	b, err := exec.Command(promtool, append([]string{"check", "rules"}, files...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool: %v\n%s", err, b)
	}
	alerts, _ := os.ReadFile(filepath.Join(out, "autoglm-alerts.rules.yml"))
	if !strings.Contains(string(alerts), `job_route:http_server_request_errors:ratio_rate5m{job="autoglm-exporter", service_name="", netns="", k8s_namespace_name="", k8s_pod_name="", k8s_container_name="", http_route="/v1/chat/completions"} >`) {
		t.Fatalf("no per-series literal rule:\n%s", alerts)
	}
}

func TestGenerateFailsClearlyOnBadConfig(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-rulegen")
	cfg := writeConfig(t, "rulegen:\n  mode: magic\n")
	b, err := exec.Command(bin, "generate", "--config.file="+cfg, "--output", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "rulegen.mode") || !strings.Contains(string(b), "autoglm.yml:2") {
		t.Fatalf("err = %v, output:\n%s", err, b)
	}
}

func TestRunServesBaselines(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-rulegen")
	prom := fakePrometheus(t)
	defer prom.Close()
	rulesDir := t.TempDir()
	cfg := writeConfig(t, fmt.Sprintf("rulegen:\n  prometheus: {url: %s}\n  history: 2d\n  output: {rule_dir: %s}\n", prom.URL, rulesDir))
	addr := testenv.Addr(testenv.FreePort(t))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "run", "--config.file="+cfg, "--web.listen-address="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cancel(); _ = cmd.Wait() }()
	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return 0, ""
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	deadline := time.Now().Add(45 * time.Second)
	for {
		if code, _ := get("/-/ready"); code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("never became ready")
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, metrics := get("/metrics")
	for _, want := range []string{
		`autoglm_rulegen_baseline{bound="upper",gen_ai_request_model="",http_route="/v1/chat/completions",job="autoglm-exporter",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="",sli="request_rate"}`,
		`autoglm_rulegen_series{sli="request_rate"} 1`,
		"autoglm_rulegen_build_info{",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if _, err := os.Stat(filepath.Join(rulesDir, "autoglm-alerts.rules.yml")); err != nil {
		t.Errorf("rules not written: %v", err)
	}
	resp, err := http.Post("http://"+addr+"/-/reload", "", nil)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %v %v", resp, err)
	}
	resp.Body.Close()
}

// TestSLOWritesSlothSpecRules: `slo` turns a Sloth spec into rules promtool
// accepts, and a broken spec stops both `slo` and `generate` with its file
// and line.
func TestSLOWritesSlothSpecRules(t *testing.T) {
	bin, promtool := testenv.Binary(t, "autoglm-rulegen"), testenv.Promtool(t)
	spec := filepath.Join("..", "..", "rulegen", "slo", "testdata", "sloth-availability.yml")
	out := filepath.Join(t.TempDir(), "slo.rules.yml")
	if b, err := exec.Command(bin, "slo", "--input", spec, "--window", "28d", "--output", out).CombinedOutput(); err != nil {
		t.Fatalf("slo: %v\n%s", err, b)
	}
	if b, err := exec.Command(promtool, "check", "rules", out).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, b)
	}
	b, _ := os.ReadFile(out)
	if !strings.Contains(string(b), "slo:sli_error:ratio_rate4w") || !strings.Contains(string(b), "(13.44 * 0.01") {
		t.Errorf("28-day rules lack the period ratio or the scaled page factor:\n%s", b)
	}
	bad := writeConfig(t, "version: prometheus/v1\nservice: svc\nslos:\n  - name: x\n    objective: 99\n    sli: {events: {error_query: 'sum(rate(e[{{.window}}])', total_query: 'sum(rate(t[{{.window}}]))'}}\n    alerting: {name: SvcBurn}\n")
	b, err := exec.Command(bin, "slo", "--input", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "autoglm.yml:6: slos[0].sli.events.error_query") {
		t.Fatalf("broken spec: err %v, output:\n%s", err, b)
	}
	cfg := writeConfig(t, "rulegen:\n  sloth_specs: ["+bad+"]\n")
	b, err = exec.Command(bin, "generate", "--config.file="+cfg, "--output", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(b), "slos[0].sli.events.error_query") {
		t.Fatalf("generate with a broken Sloth spec: err %v, output:\n%s", err, b)
	}
}

// The backtest writes one kind of report: asked for a PNG (or for files
// the forecast table does not write) it exits non-zero with the reason
// and writes nothing, rather than HTML under a .png name.
func TestBacktestRefusesReportsItCannotWrite(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-rulegen")
	dir := t.TempDir()
	in := filepath.Join(dir, "a.csv")
	if err := os.WriteFile(in, []byte("timestamp,value\n2026-01-01 00:00:00,1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--output", filepath.Join(dir, "o.json"), "--report", filepath.Join(dir, "r.png")}, "the report is a self-contained HTML page; name it .html (no png output)"},
		{[]string{"--forecast", "--report", filepath.Join(dir, "r.html")}, "--forecast prints a table"},
	} {
		b, err := exec.Command(bin, append([]string{"backtest", "--input", in}, tc.args...)...).CombinedOutput()
		if err == nil || !strings.Contains(string(b), tc.want) {
			t.Errorf("%v: err %v, output:\n%s", tc.args, err, b)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 1 {
		t.Errorf("files written: %v", left)
	}
}
