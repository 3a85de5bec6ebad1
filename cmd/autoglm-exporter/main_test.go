package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// scrape polls /metrics until cond holds for its text or the deadline passes.
func scrape(t *testing.T, url string, cond func(string) bool) string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		resp, err := http.Get(url)
		if err != nil {
			continue
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		last = string(b)
		if cond(last) {
			return last
		}
	}
	t.Fatalf("condition not met; last scrape:\n%s", last)
	return ""
}

func TestAccessLogMode(t *testing.T) {
	bin := testenv.Binary(t, "autoglm-exporter")
	dir := t.TempDir()
	logPath := filepath.Join(dir, "access.log")
	var lines strings.Builder
	for i := 0; i < 7; i++ {
		lines.WriteString(`10.1.2.3 - - [25/Nov/2026:17:52:38 +0000] "POST /v1/chat/completions HTTP/1.1" 200 5123 "-" "openai-python/1.51.0" 2.345` + "\n")
	}
	for i := 0; i < 2; i++ {
		lines.WriteString(`10.9.9.9 - - [25/Nov/2026:17:52:39 +0000] "POST /v1/chat/completions HTTP/1.1" 503 12 "-" "curl" 0.010` + "\n")
	}
	lines.WriteString(`10.1.2.4 - - [25/Nov/2026:17:52:40 +0000] "GET /admin HTTP/1.1" 404 0 "-" "curl" 0.001` + "\n")
	if err := os.WriteFile(logPath, []byte(lines.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(cfg, []byte(`metrics:
  endpoints: [/v1/chat/completions]
exporter:
  source: accesslog
  ports: [8000]
  accesslog:
    path: `+logPath+`
    format: nginx
    from_start: true
    service_name: gateway
`), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--config.file="+cfg, "--web.listen-address="+testenv.Addr(port))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("exporter log:\n%s", stderr.String())
		}
	}()
	url := "http://" + testenv.Addr(port) + "/metrics"
	text := scrape(t, url, func(s string) bool { return strings.Contains(s, "autoglm_exporter_requests_observed_total 10") })
	for _, want := range []string{
		`http_server_request_duration_seconds_count{error_type="",http_request_method="POST",http_response_status_code="200",http_route="/v1/chat/completions",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",server_port="8000",service_name="gateway"} 7`,
		`http_server_request_duration_seconds_count{error_type="503",http_request_method="POST",http_response_status_code="503",http_route="/v1/chat/completions",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",server_port="8000",service_name="gateway"} 2`,
		`http_server_request_duration_seconds_count{error_type="",http_request_method="GET",http_response_status_code="404",http_route="other",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",server_port="8000",service_name="gateway"} 1`,
		`autoglm_exporter_client_requests_total{client_address="10.1.2.0/24",k8s_container_name="",k8s_namespace_name="",k8s_pod_name="",netns="",service_name="gateway"} 8`,
		`autoglm_exporter_build_info{`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	// The exposition is valid for promtool.
	check := exec.Command(testenv.Promtool(t), "check", "metrics")
	check.Stdin = strings.NewReader(text)
	if out, err := check.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

func TestEBPFUnavailableSaysWhy(t *testing.T) {
	testenv.Root(t) // to drop to an unprivileged user
	bin := testenv.Binary(t, "autoglm-exporter")
	// Copy the binary where an unprivileged user can run it.
	dir, err := os.MkdirTemp("", "exporter-nobody")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	b, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "autoglm-exporter")
	if err := os.WriteFile(exe, b, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	setpriv := testenv.Tool(t, "setpriv")
	cmd := exec.Command(setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", exe,
		"--web.listen-address="+testenv.Addr(testenv.FreePort(t)))
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("exporter without privileges exited with %v:\n%s", err, out)
	}
	lastLine := strings.TrimSpace(string(out))
	if i := strings.LastIndexByte(lastLine, '\n'); i >= 0 {
		lastLine = lastLine[i+1:]
	}
	for _, want := range []string{"CAP_BPF", "exporter.source: accesslog", "uid " + strconv.Itoa(65534)} {
		if !strings.Contains(lastLine, want) {
			t.Errorf("last line %q does not mention %q", lastLine, want)
		}
	}
}
