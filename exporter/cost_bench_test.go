package exporter

import (
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// The cost benchmarks put a real server at work with the exporter binary
// attached and detached, in alternated pairs within one run, and print the
// ratios side by side with the kernel's run time accounting of the
// exporter's programs (kernel.bpf_stats_enabled, on while they run).
//
//	sudo go test -run '^$' -bench 'BenchmarkNginxWrk|BenchmarkStreaming' -benchtime 1x ./exporter/
//
// AUTOGLM_BENCH_DURATION (default 10s here) is each side's length,
// AUTOGLM_BENCH_PAIRS (default 3) the number of pairs.

// costSettings reads the duration and pair count of the cost benchmarks.
func costSettings(b *testing.B) (time.Duration, int) {
	dur, pairs := 10*time.Second, 3
	if v := os.Getenv("AUTOGLM_BENCH_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			b.Fatalf("AUTOGLM_BENCH_DURATION: %v", err)
		}
		dur = d
	}
	if v := os.Getenv("AUTOGLM_BENCH_PAIRS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("AUTOGLM_BENCH_PAIRS: want a positive integer, got %q", v)
		}
		pairs = n
	}
	return dur, pairs
}

// progStat is one program's run time accounting.
type progStat struct {
	runs uint64
	ns   uint64
}

// exporterProgs reads the run time accounting of the BPF programs the
// process pid holds (its fds' fdinfo name their ids), summed by name.
func exporterProgs(b *testing.B, pid int) map[string]progStat {
	dir := fmt.Sprintf("/proc/%d/fdinfo", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]progStat{}
	seen := map[uint32]bool{}
	for _, e := range ents {
		raw, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		_, rest, ok := strings.Cut(string(raw), "prog_id:\t")
		if !ok {
			continue
		}
		id, err := strconv.ParseUint(strings.Fields(rest)[0], 10, 32)
		if err != nil || seen[uint32(id)] {
			continue
		}
		seen[uint32(id)] = true
		p, err := cebpf.NewProgramFromID(cebpf.ProgramID(id))
		if err != nil {
			continue
		}
		info, err := p.Info()
		st, serr := p.Stats()
		_ = p.Close()
		if err != nil || serr != nil {
			continue
		}
		s := out[info.Name]
		s.runs += st.RunCount
		s.ns += uint64(st.Runtime.Nanoseconds())
		out[info.Name] = s
	}
	return out
}

// addProgs adds the difference after − before to sum.
func addProgs(sum, before, after map[string]progStat) {
	for name, a := range after {
		s := sum[name]
		s.runs += a.runs - before[name].runs
		s.ns += a.ns - before[name].ns
		sum[name] = s
	}
}

// progTable prints each program's runs and time per unit of work.
func progTable(sum map[string]progStat, units float64, unit string) string {
	var t strings.Builder
	var total progStat
	fmt.Fprintf(&t, "  %-16s %12s %8s %10s\n", "program", "runs", "ns/run", "ns/"+unit)
	for _, name := range slices.Sorted(maps.Keys(sum)) {
		s := sum[name]
		if s.runs == 0 {
			continue
		}
		total.runs += s.runs
		total.ns += s.ns
		fmt.Fprintf(&t, "  %-16s %12d %8.0f %10.0f\n", name, s.runs, float64(s.ns)/float64(s.runs), float64(s.ns)/units)
	}
	fmt.Fprintf(&t, "  %-16s %12d %8.0f %10.0f\n", "all", total.runs, float64(total.ns)/float64(max(total.runs, 1)), float64(total.ns)/units)
	return t.String()
}

// enableBPFStats turns the kernel's run time accounting on for the benchmark.
func enableBPFStats(b *testing.B) {
	stats, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatalf("enabling BPF run time accounting: %v", err)
	}
	b.Cleanup(func() { _ = stats.Close() })
}

// costExporter starts the exporter binary for port and returns it with its
// metrics URL.
func costExporter(b *testing.B, port int) (*process, string) {
	cfg := filepath.Join(b.TempDir(), "c.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("exporter:\n  ports: [%d]\n", port)), 0o600); err != nil {
		b.Fatal(err)
	}
	expPort := testenv.FreePort(b)
	url := "http://" + testenv.Addr(expPort) + "/metrics"
	p := startProcess(b, testenv.Binary(b, "autoglm-exporter"), "--config.file="+cfg, "--web.listen-address="+testenv.Addr(expPort))
	waitHTTP(b, url)
	return p, url
}

// nginxBenchConf is one nginx process serving a chat-completion-like JSON
// answer from memory on loopback.
const nginxBenchConf = `daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d;
    location / {
      default_type application/json;
      return 200 '{"id":"c","model":"glm-4","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":11,"completion_tokens":3}}';
    }
  }
}
`

var wrkTotal = regexp.MustCompile(`(\d+) requests in ([\d.]+)s`)

// BenchmarkNginxWrk drives one nginx process to saturation with wrk over
// 16 keep-alive connections on loopback, detached and attached in
// alternated pairs, and prints served throughput, nginx CPU per request, the
// exporter's own CPU per request and its programs' run time per request.
func BenchmarkNginxWrk(b *testing.B) {
	testenv.Root(b)
	nginx, wrk := testenv.Tool(b, "nginx"), testenv.Tool(b, "wrk")
	dur, pairs := costSettings(b)
	enableBPFStats(b)
	dir := b.TempDir()
	port := testenv.FreePort(b)
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(nginxBenchConf, dir, port)), 0o600); err != nil {
		b.Fatal(err)
	}
	srv := startProcess(b, nginx, "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	defer srv.stop()
	url := "http://" + testenv.Addr(port) + "/v1/chat/completions"
	waitHTTP(b, url)

	type side struct {
		rate, requests, cpuPerReq, expPerReq float64
		counted                              float64
	}
	// load runs wrk for dur and returns what nginx served and its CPU time.
	load := func() side {
		cpu0 := srv.cpuSeconds(b)
		out, err := exec.Command(wrk, "-t1", "-c16", "-d"+dur.String(), url).CombinedOutput()
		if err != nil {
			b.Fatalf("wrk: %v\n%s", err, out)
		}
		m := wrkTotal.FindSubmatch(out)
		if m == nil {
			b.Fatalf("wrk printed no total:\n%s", out)
		}
		n, _ := strconv.ParseFloat(string(m[1]), 64)
		secs, _ := strconv.ParseFloat(string(m[2]), 64)
		return side{rate: n / secs, requests: n, cpuPerReq: 1e6 * (srv.cpuSeconds(b) - cpu0) / n}
	}
	progs := map[string]progStat{}
	var attRequests float64
	measure := func(attached bool) side {
		if !attached {
			return load()
		}
		exp, metrics := costExporter(b, port)
		before := scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"]
		p0, e0 := exporterProgs(b, exp.cmd.Process.Pid), exp.cpuSeconds(b)
		s := load()
		settle(b, metrics, before+s.requests)
		s.expPerReq = 1e6 * (exp.cpuSeconds(b) - e0) / s.requests
		addProgs(progs, p0, exporterProgs(b, exp.cmd.Process.Pid))
		s.counted = scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"] - before
		attRequests += s.requests
		exp.stop()
		return s
	}
	type pair struct{ det, att side }
	var ps []pair
	for b.Loop() {
		for i := range pairs {
			var p pair
			if i%2 == 0 {
				p.det, p.att = measure(false), measure(true)
			} else {
				p.att, p.det = measure(true), measure(false)
			}
			ps = append(ps, p)
		}
	}
	var rateRatios, cpuRatios []float64
	var t strings.Builder
	fmt.Fprintf(&t, "\nnginx (1 process) + wrk -t1 -c16 on loopback, %s per side, %d pairs, %d CPUs, load average %s\n", dur, pairs, nproc(), loadavg())
	fmt.Fprintf(&t, "  %-6s %9s %9s %6s | %9s %9s %6s | %10s %9s\n", "pair", "det req/s", "att req/s", "ratio", "det us/req", "att us/req", "ratio", "exp us/req", "captured")
	for i, p := range ps {
		rateRatios = append(rateRatios, p.att.rate/p.det.rate)
		cpuRatios = append(cpuRatios, p.att.cpuPerReq/p.det.cpuPerReq)
		fmt.Fprintf(&t, "  %d %-4s %9.0f %9.0f %6.3f | %10.2f %10.2f %6.3f | %10.2f %8.2f%%\n", i+1, [2]string{"DA", "AD"}[i%2], p.det.rate, p.att.rate, rateRatios[i],
			p.det.cpuPerReq, p.att.cpuPerReq, cpuRatios[i], p.att.expPerReq, 100*p.att.counted/p.att.requests)
	}
	fmt.Fprintf(&t, "  median attached/detached: served throughput %.3f, nginx CPU per request %.3f\n", median(rateRatios), median(cpuRatios))
	fmt.Fprintf(&t, "  BPF programs of the attached sides (%.0f requests):\n%s", attRequests, progTable(progs, attRequests, "req"))
	b.Log(t.String())
	fmt.Print(t.String())
	b.ReportMetric(median(rateRatios), "throughput-attached/detached")
	b.ReportMetric(median(cpuRatios), "cpu-per-req-attached/detached")
}

// BenchmarkStreaming runs the simulator without pacing, answering 300
// streamed chat completions per second of 200 tokens each with a usage
// chunk (its own load generator, a separate process), detached and attached
// in alternated pairs, and prints the simulator's CPU per stream, the
// exporter's, and the programs' run time per stream.
func BenchmarkStreaming(b *testing.B) {
	testenv.Root(b)
	dur, pairs := costSettings(b)
	enableBPFStats(b)
	simBin := testenv.Binary(b, "autoglm-llmsim")
	port := testenv.FreePort(b)
	sim := startProcess(b, simBin, "serve", "--pacing.disabled", "--usage.always", "--web.listen-address="+testenv.Addr(port))
	defer sim.stop()
	target := "http://" + testenv.Addr(port)
	waitHTTP(b, target+"/v1/models")

	type side struct {
		streams, cpuPerStream, expPerStream, counted float64
	}
	out := filepath.Join(b.TempDir(), "load.json")
	load := func() side {
		cpu0 := sim.cpuSeconds(b)
		cmd := exec.Command(simBin, "load", "--target="+target, "--mode=open", "--rate=300", "--duration="+dur.String(),
			"--stream-ratio=1", "--max-tokens=200", "--routes=/v1/chat/completions=1", "--seed=1", "--output="+out)
		if o, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("load: %v\n%s", err, o)
		}
		raw, err := os.ReadFile(out)
		if err != nil {
			b.Fatal(err)
		}
		var sum struct {
			Responses int64 `json:"responses"`
			Streams   int64 `json:"streams"`
		}
		if err := json.Unmarshal(raw, &sum); err != nil {
			b.Fatal(err)
		}
		n := float64(sum.Responses)
		return side{streams: n, cpuPerStream: 1e6 * (sim.cpuSeconds(b) - cpu0) / n}
	}
	progs := map[string]progStat{}
	var attStreams float64
	measure := func(attached bool) side {
		if !attached {
			return load()
		}
		exp, metrics := costExporter(b, port)
		before := scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"]
		p0, e0 := exporterProgs(b, exp.cmd.Process.Pid), exp.cpuSeconds(b)
		s := load()
		settle(b, metrics, before+s.streams)
		s.expPerStream = 1e6 * (exp.cpuSeconds(b) - e0) / s.streams
		addProgs(progs, p0, exporterProgs(b, exp.cmd.Process.Pid))
		s.counted = scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"] - before
		attStreams += s.streams
		exp.stop()
		return s
	}
	type pair struct{ det, att side }
	var ps []pair
	for b.Loop() {
		for i := range pairs {
			var p pair
			if i%2 == 0 {
				p.det, p.att = measure(false), measure(true)
			} else {
				p.att, p.det = measure(true), measure(false)
			}
			ps = append(ps, p)
		}
	}
	var ratios []float64
	var t strings.Builder
	fmt.Fprintf(&t, "\nllmsim --pacing.disabled --usage.always, 300 streams/s of 200 tokens, %s per side, %d pairs, %d CPUs, load average %s\n", dur, pairs, nproc(), loadavg())
	fmt.Fprintf(&t, "  %-6s %8s %13s %13s %6s | %13s %9s\n", "pair", "streams", "det us/stream", "att us/stream", "ratio", "exp us/stream", "captured")
	for i, p := range ps {
		ratios = append(ratios, p.att.cpuPerStream/p.det.cpuPerStream)
		fmt.Fprintf(&t, "  %d %-4s %8.0f %13.1f %13.1f %6.3f | %13.1f %8.2f%%\n", i+1, [2]string{"DA", "AD"}[i%2], p.att.streams,
			p.det.cpuPerStream, p.att.cpuPerStream, ratios[i], p.att.expPerStream, 100*p.att.counted/p.att.streams)
	}
	fmt.Fprintf(&t, "  median attached/detached simulator CPU per stream %.3f\n", median(ratios))
	fmt.Fprintf(&t, "  BPF programs of the attached sides (%.0f streams):\n%s", attStreams, progTable(progs, attStreams, "stream"))
	b.Log(t.String())
	fmt.Print(t.String())
	b.ReportMetric(median(ratios), "cpu-per-stream-attached/detached")
}
