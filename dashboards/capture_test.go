package dashboards

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/exporter/kafka/kafkatest"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

var updateCaptures = flag.Bool("update-captures", false, "rewrite testdata/metrics from the real binaries")

// startBinary runs one of our binaries until the test ends.
func startBinary(t *testing.T, name string, args ...string) *os.File {
	t.Helper()
	bin := testenv.Binary(t, name)
	logf, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = logf.Close()
	})
	return logf
}

func logTail(f *os.File) string {
	b, err := os.ReadFile(f.Name())
	if err != nil {
		return err.Error()
	}
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

func scrape(addr string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("status %s", resp.Status)
	}
	return string(b), nil
}

func families(text string) (map[string]bool, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(text))
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(mfs))
	for n, mf := range mfs {
		if len(mf.GetMetric()) > 0 {
			out[n] = true
		}
	}
	return out, nil
}

// waitForFamilies scrapes addr until every family in want has a sample,
// calling poke between attempts (to generate traffic), for at most timeout.
func waitForFamilies(t *testing.T, addr string, want []string, timeout time.Duration, logf *os.File, poke func()) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var text string
	var missing []string
	for attempt := 0; time.Now().Before(deadline); attempt++ {
		if poke != nil {
			poke()
		}
		var err error
		if text, err = scrape(addr); err == nil {
			fams, err := families(text)
			if err != nil {
				t.Fatalf("exposition does not parse: %v", err)
			}
			missing = missing[:0]
			for _, w := range want {
				if !fams[w] {
					missing = append(missing, w)
				}
			}
			if len(missing) == 0 {
				return text
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Errorf("after %s still missing %v from %s; log:\n%s", timeout, missing, addr, logTail(logf))
	return text
}

// Runtime families differ across Go versions and platforms; the drift check ignores them.
func ours(name string) bool {
	return !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") && !strings.HasPrefix(name, "promhttp_")
}

// checkCapture rewrites the capture with -update-captures; otherwise it fails
// when the binary's families differ from the committed capture.
func checkCapture(t *testing.T, file, text string) {
	t.Helper()
	path := filepath.Join(capturesDir, file)
	if *updateCaptures {
		if err := os.MkdirAll(capturesDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	live, err := families(text)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (regenerate with -update-captures)", err)
	}
	committed, err := families(string(b))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	var diff []string
	for n := range live {
		if ours(n) && !committed[n] {
			diff = append(diff, "+"+n)
		}
	}
	for n := range committed {
		if ours(n) && !live[n] {
			diff = append(diff, "-"+n)
		}
	}
	sort.Strings(diff)
	if len(diff) > 0 {
		t.Errorf("%s differs from the binary's /metrics (%s); run go test ./dashboards -run TestCaptures -update-captures", path, strings.Join(diff, " "))
	}
}

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// The committed captures are the real /metrics of our binaries: this test
// starts each one, makes it produce its labelled series, and compares (or,
// with -update-captures, rewrites) testdata/metrics.
func TestCaptures(t *testing.T) {
	t.Run("exporter-accesslog", captureExporterAccessLog)
	t.Run("exporter-ebpf", captureExporterEBPF)
	t.Run("exporter-kafka", captureExporterKafka)
	t.Run("rulegen", captureRulegen)
	t.Run("receiver", captureReceiver)
}

func captureExporterAccessLog(t *testing.T) {
	dir := t.TempDir()
	var lines strings.Builder
	end := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i, r := range []struct {
		path, model string
		status      int
		dur         float64
	}{
		{"/v1/chat/completions", "glm-4", 200, 2.5},
		{"/v1/chat/completions", "glm-4", 500, 0.2},
		{"/v1/completions", "glm-4-air", 200, 1.1},
		{"/v1/embeddings", "embed-1", 200, 0.03},
		{"/v1/unknown", "glm-4", 404, 0.01},
	} {
		fmt.Fprintf(&lines, `{"time_iso8601":%q,"remote_addr":"10.0.0.%d","method":"POST","uri":%q,"status":%d,"request_time":%g,"model":%q,"ttft":"0.2","usage":{"prompt_tokens":%d,"completion_tokens":%d}}`+"\n",
			end.Add(time.Duration(i)*time.Second).Format(time.RFC3339), i+1, r.path, r.status, r.dur, r.model, 10*(i+1), 100*(i+1))
	}
	lines.WriteString("not a json line\n")
	logPath := writeFile(t, dir, "access.log", lines.String())
	port := testenv.FreePort(t)
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`metrics:
  interval: 10s
  endpoints: [/v1/chat/completions, /v1/completions, /v1/embeddings]
exporter:
  source: accesslog
  ports: [8000]
  accesslog:
    path: %s
    format: json
    from_start: true
    fields: {status: status, duration: request_time, path: uri, method: method, model: model, client: remote_addr, ttft: ttft, time: time_iso8601, input_tokens: usage.prompt_tokens, output_tokens: usage.completion_tokens}
`, logPath))
	logf := startBinary(t, "autoglm-exporter", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	text := waitForFamilies(t, testenv.Addr(port), []string{
		"http_server_request_duration_seconds", "gen_ai_server_request_duration_seconds",
		"gen_ai_server_time_to_first_token_seconds", "gen_ai_server_tokens_total",
		"autoglm_exporter_client_requests_total", "autoglm_exporter_build_info",
	}, 20*time.Second, logf, nil)
	checkCapture(t, "exporter.txt", text)
}

// captureExporterKafka runs the exporter in access-log mode with the Kafka
// output on, producing to an in-process broker, for the output's self metrics.
func captureExporterKafka(t *testing.T) {
	dir := t.TempDir()
	b := kafkatest.Start(t, "autoglm.requests", 1)
	line := `10.1.2.3 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/chat/completions HTTP/1.1" 200 5123 "-" "curl" 2.345` + "\n"
	logPath := writeFile(t, dir, "access.log", strings.Repeat(line, 5))
	port := testenv.FreePort(t)
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`metrics:
  endpoints: [/v1/chat/completions]
exporter:
  source: accesslog
  ports: [8000]
  accesslog: {path: %s, format: nginx, from_start: true}
  outputs:
    kafka:
      brokers: [%s]
      topic: autoglm.requests
`, logPath, b.Addr()))
	logf := startBinary(t, "autoglm-exporter", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	text := waitForFamilies(t, testenv.Addr(port), []string{
		"autoglm_exporter_kafka_events_produced_total", "autoglm_exporter_kafka_produce_latency_seconds",
		"autoglm_exporter_kafka_batches_total", "autoglm_exporter_kafka_broker_connections",
	}, 30*time.Second, logf, nil)
	checkCapture(t, "exporter-kafka.txt", text)
}

func captureExporterEBPF(t *testing.T) {
	testenv.Root(t)
	// An LLM-like backend on loopback whose traffic the exporter observes.
	backend := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"glm-4","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`)
	})}
	backendPort := testenv.FreePort(t)
	ln, err := netListen(backendPort)
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = backend.Serve(ln) }()
	t.Cleanup(func() { _ = backend.Close() })

	dir := t.TempDir()
	port := testenv.FreePort(t)
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`metrics:
  interval: 10s
  endpoints: [/v1/chat/completions]
exporter:
  source: ebpf
  ports: [%d]
`, backendPort))
	logf := startBinary(t, "autoglm-exporter", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	poke := func() {
		for i := 0; i < 3; i++ {
			resp, err := client.Post("http://"+testenv.Addr(backendPort)+"/v1/chat/completions", "application/json",
				strings.NewReader(`{"model":"glm-4","messages":[{"role":"user","content":"hello"}]}`))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		}
	}
	text := waitForFamilies(t, testenv.Addr(port), []string{
		"http_server_request_duration_seconds", "http_server_active_requests",
		"http_server_request_body_size_bytes", "http_server_response_body_size_bytes",
		"autoglm_exporter_events_total", "autoglm_exporter_ringbuf_fill_ratio",
		"autoglm_exporter_tracked_connections", "autoglm_exporter_build_info",
	}, 30*time.Second, logf, poke)
	checkCapture(t, "exporter-ebpf.txt", text)
}

// fakePrometheus answers range queries with a week of daily-seasonal history
// for one route (and one model when the query is per model).
func fakePrometheus(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		w.Header().Set("Content-Type", "application/json")
		if !strings.HasSuffix(r.URL.Path, "/query_range") {
			_, _ = io.WriteString(w, `{"status":"success","data":{"resultType":"vector","result":[]}}`)
			return
		}
		q := r.Form.Get("query")
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		step, err := strconv.ParseFloat(r.Form.Get("step"), 64)
		if err != nil || step <= 0 {
			if d, err := model.ParseDuration(r.Form.Get("step")); err == nil {
				step = time.Duration(d).Seconds()
			} else {
				step = 60
			}
		}
		metric := map[string]string{"job": "autoglm-exporter", "http_route": "/v1/chat/completions"}
		if strings.Contains(q, "model") {
			metric["gen_ai_request_model"] = "glm-4"
		}
		base := 20.0
		switch {
		case strings.Contains(q, "ratio") || strings.Contains(q, "errors"):
			base = 0.01
		case strings.Contains(q, "seconds"):
			base = 1.5
		}
		values := make([][2]any, 0, 1024)
		for ts, i := start, 0; ts <= end && i < 100000; ts, i = ts+step, i+1 {
			v := base * (1 + 0.5*math.Sin(2*math.Pi*ts/86400))
			values = append(values, [2]any{ts, strconv.FormatFloat(v, 'f', -1, 64)})
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "success", "data": map[string]any{
			"resultType": "matrix",
			"result":     []any{map[string]any{"metric": metric, "values": values}},
		}})
	}))
	t.Cleanup(srv.Close)
	return srv
}

func captureRulegen(t *testing.T) {
	prom := fakePrometheus(t)
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "rules"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`metrics:
  interval: 10s
  endpoints: [/v1/chat/completions]
rulegen:
  prometheus:
    url: %s
  output:
    rule_dir: %s
`, prom.URL, filepath.Join(dir, "rules")))
	logf := startBinary(t, "autoglm-rulegen", "run", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	text := waitForFamilies(t, testenv.Addr(port), []string{
		"autoglm_rulegen_build_info", "autoglm_rulegen_baseline", "autoglm_rulegen_last_fit_timestamp_seconds",
		"autoglm_rulegen_last_success_timestamp_seconds", "autoglm_rulegen_series", "autoglm_rulegen_history_seconds",
		"autoglm_rulegen_model_info", "autoglm_rulegen_forecast", "autoglm_rulegen_instance_forecast",
	}, 90*time.Second, logf, nil)
	checkCapture(t, "rulegen.txt", text)
}

func captureReceiver(t *testing.T) {
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	t.Cleanup(ok.Close)
	bad := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		http.Error(w, "rejected", http.StatusBadRequest)
	}))
	t.Cleanup(bad.Close)
	dir := t.TempDir()
	port := testenv.FreePort(t)
	cfg := writeFile(t, dir, "config.yml", fmt.Sprintf(`receiver:
  storage:
    path: %s
  channels:
    ok:
      type: webhook
      url: %s
    bad:
      type: webhook
      url: %s
  default_route:
    name: default
    channels: [ok, bad]
`, filepath.Join(dir, "store"), ok.URL, bad.URL))
	logf := startBinary(t, "autoglm-receiver", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	now := time.Now().UTC()
	payload := fmt.Sprintf(`{"version":"4","groupKey":"{}:{alertname=\"AutoGLMHighErrorRate\"}","status":"firing","receiver":"autoglm-warning",
"groupLabels":{"alertname":"AutoGLMHighErrorRate"},"commonLabels":{"alertname":"AutoGLMHighErrorRate","severity":"warning"},
"commonAnnotations":{"summary":"LLM API error ratio is above the configured limit"},"externalURL":"http://127.0.0.1:9093","truncatedAlerts":0,
"alerts":[{"status":"firing","labels":{"alertname":"AutoGLMHighErrorRate","severity":"warning","job":"autoglm-exporter","http_route":"/v1/chat/completions"},
"annotations":{"summary":"LLM API error ratio is above the configured limit","description":"9 percent of requests fail"},"startsAt":%q,"endsAt":"0001-01-01T00:00:00Z",
"generatorURL":"http://127.0.0.1:9090/graph","fingerprint":"abc123"}]}`, now.Format(time.RFC3339))
	posted := false
	poke := func() {
		if posted {
			return
		}
		resp, err := http.Post("http://"+testenv.Addr(port)+"/webhook", "application/json", bytes.NewBufferString(payload))
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			posted = resp.StatusCode/100 == 2
		}
	}
	text := waitForFamilies(t, testenv.Addr(port), []string{
		"autoglm_receiver_build_info", "autoglm_receiver_alerts_received_total", "autoglm_receiver_notifications_total",
		"autoglm_receiver_delivery_duration_seconds", "autoglm_receiver_queue_depth", "autoglm_receiver_oldest_pending_seconds",
		"autoglm_receiver_dead_letters_total",
	}, 30*time.Second, logf, poke)
	checkCapture(t, "receiver.txt", text)
}
