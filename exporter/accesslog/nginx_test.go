package accesslog

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// nginxConf is the configuration README.md recommends, proxying to the simulator.
const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 512; }
http {
  client_body_temp_path %[1]s/tmp/body;
  proxy_temp_path %[1]s/tmp/proxy;
  fastcgi_temp_path %[1]s/tmp/fastcgi;
  uwsgi_temp_path %[1]s/tmp/uwsgi;
  scgi_temp_path %[1]s/tmp/scgi;
  log_format autoglm '$remote_addr - $remote_user [$time_local] "$request" '
                     '$status $body_bytes_sent "$http_referer" "$http_user_agent" '
                     '$request_time $upstream_response_time $request_length';
  log_format autoglm_json escape=json '{"time_iso8601":"$time_iso8601","remote_addr":"$remote_addr",'
                     '"method":"$request_method","uri":"$uri","status":"$status",'
                     '"body_bytes_sent":"$body_bytes_sent","request_length":"$request_length",'
                     '"request_time":"$request_time","upstream_response_time":"$upstream_response_time"}';
  server {
    listen 127.0.0.1:%[2]d;
    access_log %[1]s/access.log autoglm;
    access_log %[1]s/access.json autoglm_json;
    location / {
      proxy_pass http://%[3]s;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`

// TestRealNginx runs nginx on loopback in front of the simulator and checks
// that both log formats yield exactly the responses the load generator got.
func TestRealNginx(t *testing.T) {
	bin := testenv.Tool(t, "nginx")
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	sim, err := llmsim.NewServer(llmsim.Options{NoPacing: true, Seed: 5, Schedule: &llmsim.Schedule{Phases: []llmsim.Phase{
		{Name: "errs", Duration: time.Hour, ErrorRatio: 0.2, StatusCodes: []int{500, 503}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	upstream := httptest.NewServer(sim.Handler())
	defer upstream.Close()
	port := testenv.FreePort(t)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxConf, dir, port, upstream.Listener.Addr())), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	base := "http://" + testenv.Addr(port)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := http.Get(base + llmsim.RouteModels)
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			t.Fatalf("nginx did not come up: %v\n%s", err, b)
		}
	}

	// The probe's own log lines must be written before the sources seek to the end.
	for _, f := range []string{"access.log", "access.json"} {
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
			if st, err := os.Stat(filepath.Join(dir, f)); err == nil && st.Size() > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("nginx wrote nothing to %s", f)
			}
		}
	}

	type key struct {
		path   string
		status int
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	counts := map[string]map[key]int64{}
	var mu sync.Mutex
	var (
		wg      sync.WaitGroup
		sources []*Source
	)
	for _, f := range []struct{ format, file string }{{FormatNginx, "access.log"}, {FormatJSON, "access.json"}} {
		src, err := New(Options{Path: filepath.Join(dir, f.file), Format: f.format, ServerPort: uint16(port)})
		if err != nil {
			t.Fatal(err)
		}
		src.poll = 20 * time.Millisecond
		sources = append(sources, src)
		counts[f.format] = map[key]int64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := src.Run(ctx, func(r *traffic.Request) {
				if r.ServerPort != uint16(port) || !r.Client.IsLoopback() || r.End.Before(r.Start) || r.Method == "" {
					t.Errorf("%s: implausible request %+v", f.format, r)
				}
				mu.Lock()
				counts[f.format][key{r.Path, r.Status}]++
				mu.Unlock()
			})
			if err != nil {
				t.Errorf("%s: %v", f.format, err)
			}
		}()
	}
	// The sources start at the end of the files, after the readiness probe.
	for _, src := range sources {
		for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(src.m.open) != 1; time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("source did not open its file")
			}
		}
	}

	sum, err := llmsim.Run(ctx, llmsim.LoadOptions{Target: base, Mode: llmsim.ModeClosed, Concurrency: 4, Count: 300,
		KeepAlive: true, StreamRatio: 0.5, MaxTokens: 8, Seed: 11, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Responses != 300 {
		t.Fatalf("load generator got %d responses, want 300 (errors %v)", sum.Responses, sum.Errors)
	}
	want := map[key]int64{}
	for route, m := range sum.ByRoute {
		for code, n := range m {
			c, _ := strconv.Atoi(code)
			want[key{route, c}] = n
		}
	}
	equal := func(got map[key]int64) bool {
		if len(got) != len(want) {
			return false
		}
		for k, n := range want {
			if got[k] != n {
				return false
			}
		}
		return true
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		mu.Lock()
		ok := equal(counts[FormatNginx]) && equal(counts[FormatJSON])
		snapshot := fmt.Sprint(counts)
		mu.Unlock()
		if ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log counts %s, load generator got %v", snapshot, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	wg.Wait()
}
