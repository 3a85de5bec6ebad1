package stack

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func TestLockRefusesSecondRun(t *testing.T) {
	dir := t.TempDir()
	lock, err := acquireLock(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = acquireLock(dir)
	if err == nil || !strings.Contains(err.Error(), "already running") || !strings.Contains(err.Error(), strconv.Itoa(os.Getpid())) {
		t.Fatalf("second lock: got %v, want an 'already running (pid %d)' error", err, os.Getpid())
	}
	if err := os.Remove(lock); err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(dir); err != nil {
		t.Fatalf("lock after release: %v", err)
	}
}

func TestLockTakesOverFromDeadRun(t *testing.T) {
	dir := t.TempDir()
	// A pid that cannot be alive: beyond the kernel's pid_max.
	if err := os.WriteFile(filepath.Join(dir, "stack.pid"), []byte("2147483646\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := acquireLock(dir); err != nil {
		t.Fatalf("stale lock was not taken over: %v", err)
	}
}

func TestStartFailsFastOnTakenPort(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	taken := l.Addr().(*net.TCPAddr).Port
	ports := Ports{LLMSim: testenv.FreePort(t), LLMSimMetrics: testenv.FreePort(t), Exporter: testenv.FreePort(t),
		Rulegen: testenv.FreePort(t), Receiver: testenv.FreePort(t), Prometheus: taken,
		Alertmanager: testenv.FreePort(t), SMTP: testenv.FreePort(t)}
	work := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	begin := time.Now()
	_, err = Start(ctx, Options{Repo: testenv.RepoRoot(t), Work: work, Bin: t.TempDir(), Ports: ports})
	if err == nil {
		t.Fatal("Start succeeded with the Prometheus port taken")
	}
	if want := strconv.Itoa(taken) + " (prometheus)"; !strings.Contains(err.Error(), want) {
		t.Errorf("error %q does not name %s", err, want)
	}
	if d := time.Since(begin); d > 2*time.Second {
		t.Errorf("Start took %s to notice the taken port", d)
	}
	if _, err := os.Stat(filepath.Join(work, "stack.pid")); !os.IsNotExist(err) {
		t.Errorf("the lock was left behind after the failed start: %v", err)
	}
}

func TestYoungRateScale(t *testing.T) {
	for _, tc := range []struct {
		record string
		age    time.Duration
		want   float64
	}{
		{"job_route:http_server_requests:rate5m", time.Minute, 5},
		{"job_route:http_server_requests:rate1h", 30 * time.Minute, 2},
		{"job_route:http_server_requests:rate5m", 10 * time.Minute, 1},
		{"job_route:http_server_request_errors:ratio_rate5m", time.Minute, 1},
		{"job_route:http_server_request_duration_seconds:p95_rate5m", time.Minute, 1},
	} {
		if got := youngRateScale(tc.record, tc.age); got != tc.want {
			t.Errorf("youngRateScale(%s, %s) = %g, want %g", tc.record, tc.age, got, tc.want)
		}
	}
}

func TestParseDeliveries(t *testing.T) {
	log := `time=2026-11-25T18:36:56Z level=INFO msg=starting
time=2026-11-25T18:36:57Z level=INFO source=engine.go:675 msg="notification delivered" channel=oncall-mail alertname=AutoGLMHighErrorRate route=warning attempt=1
time=2026-11-25T18:36:58Z level=INFO msg="notification delivered" channel=console alertname="Alert with space" route=critical
`
	ds, err := parseDeliveries(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 {
		t.Fatalf("got %d deliveries, want 2", len(ds))
	}
	if ds[0].Channel != "oncall-mail" || ds[0].Alertname != "AutoGLMHighErrorRate" || ds[0].Route != "warning" {
		t.Errorf("first delivery parsed as %+v", ds[0])
	}
	if ds[1].Alertname != "Alert with space" || ds[1].Route != "critical" {
		t.Errorf("quoted value parsed as %+v", ds[1])
	}
}

// Without root the exporter tails the access log the simulator writes: both
// must name the same file, and only ports and paths may differ from deploy/.
func TestConfigsForAccessLogSource(t *testing.T) {
	work := t.TempDir()
	ports := Ports{LLMSim: 18000, LLMSimMetrics: 18001, Exporter: 19810, Rulegen: 19811, Receiver: 19812,
		Prometheus: 19090, Alertmanager: 19093, SMTP: 11025}
	s := &Stack{opts: Options{Repo: testenv.RepoRoot(t), Work: work, Ports: ports,
		FaultsFile: filepath.Join(testenv.RepoRoot(t), "deploy/autoglm/llmsim-faults.yml")}, Source: "accesslog"}
	if err := s.writeConfigs(); err != nil {
		t.Fatal(err)
	}
	f, err := config.Load(s.path("autoglm.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if f.Exporter.Source != "accesslog" || f.Exporter.AccessLog.Path != s.path("llmsim-access.log") {
		t.Errorf("exporter reads %s from %q, want accesslog from %q", f.Exporter.Source, f.Exporter.AccessLog.Path, s.path("llmsim-access.log"))
	}
	if args := s.llmsimLogArgs(); len(args) != 1 || args[0] != "--access-log="+f.Exporter.AccessLog.Path {
		t.Errorf("simulator writes %v, exporter reads %s", args, f.Exporter.AccessLog.Path)
	}
	if len(f.Exporter.Ports) != 1 || f.Exporter.Ports[0] != 18000 {
		t.Errorf("exporter ports %v, want [18000]", f.Exporter.Ports)
	}
	if f.Rulegen.Prometheus.URL != "http://127.0.0.1:19090" {
		t.Errorf("rulegen reads %s, want the stack's Prometheus", f.Rulegen.Prometheus.URL)
	}
	prom, err := os.ReadFile(s.path("prometheus", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{18001, 19810, 19811, 19812, 19090, 19093} {
		if !strings.Contains(string(prom), "127.0.0.1:"+strconv.Itoa(p)) {
			t.Errorf("prometheus.yml does not target port %d", p)
		}
	}
	if strings.Contains(string(prom), ":8000") || strings.Contains(string(prom), ":9810") {
		t.Errorf("prometheus.yml still has a default port:\n%s", prom)
	}
}
