package exporter

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// BenchmarkExporter measures, with the real eBPF exporter and simulator
// processes on loopback: capture completeness at 1k, 5k and the maximum
// req/s; simulator throughput attached vs detached (alternating runs);
// exporter CPU per 1k req/s and peak RSS; RSS with 10k idle keep-alive
// connections. AUTOGLM_BENCH_DURATION (default 60s) sets each load run.
//
//	sudo go test -run '^$' -bench BenchmarkExporter -benchtime 1x ./exporter/
func BenchmarkExporter(b *testing.B) {
	testenv.Root(b)
	dur := 60 * time.Second
	if v := os.Getenv("AUTOGLM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("AUTOGLM_BENCH_DURATION: %v", err)
		}
		dur = d
	}
	raiseFileLimit(b, 10500)
	simBin := testenv.Binary(b, "autoglm-llmsim")
	expBin := testenv.Binary(b, "autoglm-exporter")
	simPort := testenv.FreePort(b)
	sim := startProcess(b, simBin, "serve", "--pacing.disabled", "--web.listen-address="+testenv.Addr(simPort))
	defer sim.stop()
	target := "http://" + testenv.Addr(simPort)
	waitHTTP(b, target+"/v1/models")

	cfg := filepath.Join(b.TempDir(), "c.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("exporter:\n  ports: [%d]\n", simPort)), 0o600); err != nil {
		b.Fatal(err)
	}
	expPort := testenv.FreePort(b)
	metricsURL := "http://" + testenv.Addr(expPort) + "/metrics"
	startExporter := func() *process {
		p := startProcess(b, expBin, "--config.file="+cfg, "--web.listen-address="+testenv.Addr(expPort))
		waitHTTP(b, metricsURL)
		return p
	}

	load := func(mode string, rate float64) *llmsim.Summary {
		s, err := llmsim.Run(context.Background(), llmsim.LoadOptions{
			Target: target, Mode: mode, Rate: rate, Concurrency: 32, MaxInFlight: 2000,
			Duration: dur, KeepAlive: true, Timeout: 30 * time.Second, MaxTokens: 16, PromptTokens: 64,
			StreamRatio: 0.3, Seed: 1,
		})
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		return s
	}

	// 1. Completeness and CPU.
	exp := startExporter()
	type row struct {
		name                     string
		rate                     float64
		sent, skipped            int64
		responses, counted, lost float64
		cpuPer1k                 float64
	}
	var rows []row
	for _, step := range []struct {
		name string
		mode string
		rate float64
	}{{"1k req/s", llmsim.ModeOpen, 1000}, {"5k req/s", llmsim.ModeOpen, 5000}, {"max (closed loop, 32 workers)", llmsim.ModeClosed, 0}} {
		before := scrapeValues(b, metricsURL)
		cpu0 := exp.cpuSeconds(b)
		s := load(step.mode, step.rate)
		settle(b, metricsURL, before["autoglm_exporter_requests_observed_total"]+float64(s.Responses))
		cpu := exp.cpuSeconds(b) - cpu0
		after := scrapeValues(b, metricsURL)
		r := row{name: step.name, rate: s.AchievedRate, sent: s.Sent, skipped: s.Skipped, responses: float64(s.Responses),
			counted: after["autoglm_exporter_requests_observed_total"] - before["autoglm_exporter_requests_observed_total"],
			lost:    after["lost"] - before["lost"]}
		if s.AchievedRate > 0 {
			r.cpuPer1k = 100 * cpu / s.DurationSeconds / (s.AchievedRate / 1000)
		}
		rows = append(rows, r)
	}
	peakRSS := exp.status(b, "VmHWM")

	// 3. RSS with 10k idle keep-alive connections.
	idle := openIdle(b, testenv.Addr(simPort), 10000)
	time.Sleep(2 * time.Second)
	idleRSS := exp.status(b, "VmRSS")
	idleConns := scrapeValues(b, metricsURL)["autoglm_exporter_parser_connections"]
	for _, c := range idle {
		_ = c.Close()
	}
	exp.stop()

	// 2. Overhead: alternate detached and attached runs of the same closed loop.
	var detached, attached []float64
	for i := 0; i < 3; i++ {
		detached = append(detached, load(llmsim.ModeClosed, 0).AchievedRate)
		p := startExporter()
		attached = append(attached, load(llmsim.ModeClosed, 0).AchievedRate)
		p.stop()
	}
	ratio := mean(attached) / mean(detached)

	var t strings.Builder
	fmt.Fprintf(&t, "\nexporter benchmark, %s per run, simulator without pacing on loopback, %d CPUs\n", dur, nproc())
	fmt.Fprintf(&t, "%-30s %8s %8s %8s %10s %10s %9s %6s %14s\n", "load", "req/s", "sent", "skipped", "responses", "counted", "captured", "lost", "CPU%/1k req/s")
	for _, r := range rows {
		fmt.Fprintf(&t, "%-30s %8.0f %8d %8d %10.0f %10.0f %8.2f%% %6.0f %14.2f\n", r.name, r.rate, r.sent, r.skipped, r.responses, r.counted, 100*r.counted/max(r.responses, 1), r.lost, r.cpuPer1k)
	}
	fmt.Fprintf(&t, "overhead: detached %v req/s, attached %v req/s, ratio %.3f\n", round(detached), round(attached), ratio)
	fmt.Fprintf(&t, "exporter peak RSS %.1f MiB; RSS with 10k idle keep-alive connections %.1f MiB (%.0f tracked)\n", peakRSS/1024, idleRSS/1024, idleConns)
	b.Log(t.String())
	fmt.Print(t.String())
	for i, r := range rows {
		b.ReportMetric(100*r.counted/max(r.responses, 1), fmt.Sprintf("captured%%/step%d", i+1))
	}
	b.ReportMetric(rows[len(rows)-1].rate, "max-req/s")
	b.ReportMetric(ratio, "attached/detached")
	b.ReportMetric(rows[0].cpuPer1k, "cpu%/1k-req/s")
	b.ReportMetric(peakRSS/1024, "peak-MiB")
	b.ReportMetric(idleRSS/1024, "10k-idle-MiB")
}

func round(v []float64) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(max(len(v), 1))
}

func nproc() int {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return 0
	}
	return strings.Count(string(b), "processor\t:")
}

type process struct {
	cmd *exec.Cmd
}

func startProcess(b testing.TB, bin string, args ...string) *process {
	b.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatalf("start %s: %v", bin, err)
	}
	return &process{cmd: cmd}
}

func (p *process) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	_ = p.cmd.Wait()
}

// cpuSeconds is the process's user plus system CPU time so far.
func (p *process) cpuSeconds(b testing.TB) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	// Fields after the parenthesised command name; utime and stime are the 14th and 15th fields.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+2:]))
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

// status returns a kB field of /proc/<pid>/status.
func (p *process) status(b testing.TB, field string) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return n
		}
	}
	return 0
}

func waitHTTP(b testing.TB, url string) {
	b.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(url)
		if err == nil {
			drain(resp.Body)
			return
		}
	}
	b.Fatalf("%s did not come up", url)
}

// scrapeValues returns unlabelled sample values by name, plus "lost": the sum of every lost-event counter.
func scrapeValues(b testing.TB, url string) map[string]float64 {
	b.Helper()
	resp, err := http.Get(url)
	if err != nil {
		b.Fatal(err)
	}
	defer drain(resp.Body)
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		name := line[:i]
		out[name] = v
		if strings.HasPrefix(name, "autoglm_exporter_events_lost_total{") && !strings.Contains(name, `"truncated"`) {
			out["lost"] += v
		}
	}
	return out
}

// settle waits until the exporter has counted want requests or stops making progress.
func settle(b testing.TB, url string, want float64) {
	last, still := -1.0, 0
	for i := 0; i < 200 && still < 10; i++ {
		v := scrapeValues(b, url)["autoglm_exporter_requests_observed_total"]
		if v >= want {
			return
		}
		if v == last {
			still++
		} else {
			still = 0
		}
		last = v
		time.Sleep(100 * time.Millisecond)
	}
}

// openIdle opens n keep-alive connections, each answering one request, and leaves them idle.
func openIdle(b testing.TB, addr string, n int) []net.Conn {
	b.Helper()
	conns := make([]net.Conn, 0, n)
	req := []byte("GET /v1/models HTTP/1.1\r\nHost: sim\r\n\r\n")
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Logf("opened %d idle connections: %v", i, err)
			break
		}
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			b.Fatal(err)
		}
		drain(resp.Body)
		conns = append(conns, c)
	}
	return conns
}

// raiseFileLimit lifts the soft open-file limit to the hard one (children inherit it).
func raiseFileLimit(b testing.TB, need uint64) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatal(err)
	}
	l.Cur = l.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		b.Fatalf("raise open file limit: %v", err)
	}
	if l.Cur < need {
		b.Fatalf("open file limit %d is below the %d this benchmark needs", l.Cur, need)
	}
}
