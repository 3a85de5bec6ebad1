package dashboards

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// llmBackend is a small OpenAI-style server: JSON answers with usage, SSE
// streams when asked, and a 500 for every fifth request.
func llmBackend() http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if n.Add(1)%5 == 0 {
			http.Error(w, `{"error":{"message":"overloaded"}}`, http.StatusInternalServerError)
			return
		}
		if !strings.Contains(string(body), `"stream":true`) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"id":"x","object":"chat.completion","model":"glm-4","choices":[{"index":0,"message":{"role":"assistant","content":"hi"}}],"usage":{"prompt_tokens":5,"completion_tokens":7,"total_tokens":12}}`)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f, _ := w.(http.Flusher)
		for i := 0; i < 4; i++ {
			fmt.Fprintf(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"glm-4\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d\"}}]}\n\n", i)
			if f != nil {
				f.Flush()
			}
			time.Sleep(5 * time.Millisecond)
		}
		_, _ = io.WriteString(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"model\":\"glm-4\",\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":4,\"total_tokens\":9}}\n\ndata: [DONE]\n\n")
	})
}

func promQuery(ctx context.Context, addr, q string) (int, error) {
	u := "http://" + addr + "/api/v1/query?query=" + url.QueryEscape(q)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, err
	}
	if out.Status != "success" {
		return 0, fmt.Errorf("query failed: %s", out.Error)
	}
	var vec []any
	if err := json.Unmarshal(out.Data.Result, &vec); err != nil {
		return 1, nil // scalar results count as data
	}
	return len(vec), nil
}

// grafanaExpand replaces what Grafana would: every variable set to All, the
// rate interval to a window that covers several scrapes.
var grafanaExpand = strings.NewReplacer(
	"$__rate_interval", "20s", "$__range", "1m",
	`"$job"`, `".*"`, `"$namespace"`, `".*"`, `"$service"`, `".*"`, `"$instance"`, `".*"`, `"$route"`, `".*"`, `"$model"`, `".*"`,
)

// With the real exporter observing real HTTP traffic (eBPF), the mixin's rules
// loaded into a real Prometheus, every query of the traffic dashboards returns data.
func TestTrafficDashboardsShowDataFromRealStack(t *testing.T) {
	testenv.Root(t)
	promBin := testenv.Prometheus(t)
	backendPort := testenv.FreePort(t)
	ln, err := netListen(backendPort)
	if err != nil {
		t.Fatal(err)
	}
	backend := &http.Server{Handler: llmBackend()}
	go func() { _ = backend.Serve(ln) }()
	t.Cleanup(func() { _ = backend.Close() })

	dir := t.TempDir()
	exporterPort := testenv.FreePort(t)
	cfg := writeFile(t, dir, "autoglm.yml", fmt.Sprintf(`metrics:
  interval: 10s
  endpoints: [/v1/chat/completions, /v1/completions]
exporter:
  source: ebpf
  ports: [%d]
`, backendPort))
	exporterLog := startBinary(t, "autoglm-exporter", "--config.file="+cfg, "--web.listen-address="+testenv.Addr(exporterPort))

	mixin, err := filepath.Abs(mixinDir)
	if err != nil {
		t.Fatal(err)
	}
	promPort := testenv.FreePort(t)
	promCfg := writeFile(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files:
  - %s
  - %s
scrape_configs:
  - job_name: autoglm-exporter
    static_configs:
      - targets: [%q]
`, filepath.Join(mixin, "prometheus_rules.yaml"), filepath.Join(mixin, "prometheus_alerts.yaml"), testenv.Addr(exporterPort)))
	promLog, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	startProcess(t, promLog, promBin, "--config.file="+promCfg, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+testenv.Addr(promPort))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	trafficDone := make(chan struct{})
	go func() {
		defer close(trafficDone)
		bodies := []string{`{"model":"glm-4","messages":[]}`, `{"model":"glm-4","stream":true,"messages":[]}`}
		for i := 0; ctx.Err() == nil && i < 100000; i++ {
			path := "/v1/chat/completions"
			if i%3 == 2 {
				path = "/v1/completions"
			}
			resp, err := client.Post("http://"+testenv.Addr(backendPort)+path, "application/json", strings.NewReader(bodies[i%2]))
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	defer func() { cancel(); <-trafficDone }()

	var exprs []string
	for _, name := range []string{"overview.json", "models.json"} {
		b, err := os.ReadFile(filepath.Join("json", name))
		if err != nil {
			t.Fatal(err)
		}
		d, err := parseDashboard(b)
		if err != nil {
			t.Fatal(err)
		}
		for where, e := range d.Exprs() {
			if strings.HasPrefix(where, "variable ") {
				continue
			}
			exprs = append(exprs, name+": "+where+"\x00"+grafanaExpand.Replace(e))
		}
	}
	if len(exprs) < 25 {
		t.Fatalf("only %d queries found in the traffic dashboards", len(exprs))
	}
	waitReady(t, "http://"+testenv.Addr(promPort)+"/-/ready", 30*time.Second, promLog)
	// Recording rules need a few evaluations; poll until every query has data or time runs out.
	deadline := time.Now().Add(60 * time.Second)
	empty := map[string]string{}
	for {
		empty = map[string]string{}
		for _, we := range exprs {
			where, q, _ := strings.Cut(we, "\x00")
			n, err := promQuery(ctx, testenv.Addr(promPort), q)
			if err != nil {
				t.Fatalf("%s: %v\n%s", where, err, q)
			}
			if n == 0 {
				empty[where] = q
			}
		}
		if len(empty) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(2 * time.Second)
	}
	for where, q := range empty {
		if strings.Contains(q, sli.RouteSaturated) {
			// No serving engine is scraped here; internal/stack's end-to-end
			// test runs the simulator's vLLM metrics and checks this panel.
			continue
		}
		t.Errorf("%s returns no data:\n  %s", where, q)
	}
	if len(empty) > 0 {
		t.Logf("exporter log:\n%s", logTail(exporterLog))
	}
}

func waitReady(t *testing.T, u string, timeout time.Duration, logf *os.File) {
	t.Helper()
	client := &http.Client{Timeout: time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		resp, err := client.Get(u)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("%s not ready after %s; log:\n%s", u, timeout, logTail(logf))
}
