package exporter

import (
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

// The cost benchmarks put a real server at work detached and with each
// exporter binary attached (main's and this one, see exporterBins), rotated
// within each pair of one run, and print the ratios side by side with the
// kernel's run time accounting of the exporter's programs
// (kernel.bpf_stats_enabled, on while they run).
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

// costExporter starts the exporter binary bin for port and returns it with
// its metrics URL.
func costExporter(b *testing.B, bin string, port int) (*process, string) {
	cfg := filepath.Join(b.TempDir(), "c.yml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("exporter:\n  ports: [%d]\n", port)), 0o600); err != nil {
		b.Fatal(err)
	}
	expPort := testenv.FreePort(b)
	url := "http://" + testenv.Addr(expPort) + "/metrics"
	p := startProcess(b, bin, "--config.file="+cfg, "--log.level=warn", "--web.listen-address="+testenv.Addr(expPort))
	waitHTTP(b, url)
	return p, url
}

// exporterBins is the exporter binary under test ("this") and, before it
// when there is one, a baseline: AUTOGLM_BENCH_BASELINE_BIN, else one built
// at the git revision AUTOGLM_BENCH_BASELINE (default main; "" or "none":
// no baseline).
func exporterBins(b *testing.B) (bins, names []string) {
	bins, names = []string{testenv.Binary(b, "autoglm-exporter")}, []string{"this"}
	if bin := os.Getenv("AUTOGLM_BENCH_BASELINE_BIN"); bin != "" {
		return append([]string{bin}, bins...), append([]string{"baseline"}, names...)
	}
	rev, ok := os.LookupEnv("AUTOGLM_BENCH_BASELINE")
	if !ok {
		rev = "main"
	}
	base, err := buildRevision(b, rev)
	if err != nil {
		b.Logf("no baseline: %v", err)
	}
	if base == "" {
		return bins, names
	}
	return append([]string{base}, bins...), append([]string{rev}, names...)
}

// rotation is the order of a pair's sides: 0 (detached) then each exporter
// in turn, reversed every other pair so a drift in machine load hits all
// sides alike.
func rotation(pair, exporters int) []int {
	order := make([]int, exporters+1)
	for i := range order {
		order[i] = i
		if pair%2 == 1 {
			order[i] = exporters - i
		}
	}
	return order
}

// runSides runs pairs of sides, each the detached side (measure(-1)) and
// each exporter attached (measure(i)), in rotation order; it returns them
// per pair in the order of exporterBins, after the detached side.
func runSides[S any](b *testing.B, pairs, exporters int, measure func(exporter int) S) [][]S {
	var ps [][]S
	for b.Loop() {
		for p := range pairs {
			sides := make([]S, exporters+1)
			for _, i := range rotation(p, exporters) {
				sides[i] = measure(i - 1)
			}
			ps = append(ps, sides)
		}
	}
	return ps
}

// newProgs is one empty run time accounting per exporter.
func newProgs(n int) []map[string]progStat {
	out := make([]map[string]progStat, n)
	for i := range out {
		out[i] = map[string]progStat{}
	}
	return out
}

// attachedRun is what one attached side measured.
type attachedRun struct {
	work    float64 // requests or streams served
	counted float64 // requests the exporter counted
	expUS   float64 // exporter CPU µs per unit of work
}

// attach runs load with exporter bin attached to port and returns what
// load returned with the exporter's figures; its programs' run time is
// added to progs.
func attach(b *testing.B, bin string, port int, progs map[string]progStat, load func() float64) attachedRun {
	exp, metrics := costExporter(b, bin, port)
	defer exp.stop()
	before := scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"]
	p0, e0 := exporterProgs(b, exp.cmd.Process.Pid), exp.cpuSeconds(b)
	work := load()
	settle(b, metrics, before+work)
	r := attachedRun{work: work, expUS: 1e6 * (exp.cpuSeconds(b) - e0) / work}
	addProgs(progs, p0, exporterProgs(b, exp.cmd.Process.Pid))
	r.counted = scrapeValues(b, metrics)["autoglm_exporter_requests_observed_total"] - before
	return r
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
// 16 keep-alive connections on loopback, detached and with each exporter
// (exporterBins: main's and this one) attached, rotated within each pair,
// and prints served throughput and nginx CPU per request attached against
// detached, the exporter's own CPU per request and its programs' run time
// per request.
func BenchmarkNginxWrk(b *testing.B) {
	testenv.Root(b)
	nginx, wrk := testenv.Tool(b, "nginx"), testenv.Tool(b, "wrk")
	dur, pairs := costSettings(b)
	bins, names := exporterBins(b)
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
		rate, cpuPerReq float64
		attachedRun
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
		return side{rate: n / secs, cpuPerReq: 1e6 * (srv.cpuSeconds(b) - cpu0) / n, attachedRun: attachedRun{work: n}}
	}
	progs, attRequests := newProgs(len(bins)), make([]float64, len(bins))
	ps := runSides(b, pairs, len(bins), func(e int) side {
		if e < 0 {
			return load()
		}
		var s side
		s.attachedRun = attach(b, bins[e], port, progs[e], func() float64 {
			s = load()
			return s.work
		})
		attRequests[e] += s.work
		return s
	})
	rateRatios, cpuRatios := make([][]float64, len(bins)), make([][]float64, len(bins))
	var t strings.Builder
	fmt.Fprintf(&t, "\nnginx (1 process) + wrk -t1 -c16 on loopback, %s per side, %d pairs, %d CPUs, load average %s\n", dur, pairs, nproc(), loadavg())
	fmt.Fprintf(&t, "  %-4s %-10s %9s %6s | %9s %6s | %10s %9s\n", "pair", "exporter", "req/s", "ratio", "us/req", "ratio", "exp us/req", "captured")
	for p, sides := range ps {
		det := sides[0]
		fmt.Fprintf(&t, "  %-4d %-10s %9.0f %6s | %9.2f %6s |\n", p+1, "detached", det.rate, "", det.cpuPerReq, "")
		for i, s := range sides[1:] {
			rateRatios[i] = append(rateRatios[i], s.rate/det.rate)
			cpuRatios[i] = append(cpuRatios[i], s.cpuPerReq/det.cpuPerReq)
			fmt.Fprintf(&t, "  %-4d %-10s %9.0f %6.3f | %9.2f %6.3f | %10.2f %8.2f%%\n", p+1, names[i], s.rate, s.rate/det.rate,
				s.cpuPerReq, s.cpuPerReq/det.cpuPerReq, s.expUS, 100*s.counted/s.work)
		}
	}
	for i, n := range names {
		fmt.Fprintf(&t, "  median attached (%s)/detached: served throughput %.3f, nginx CPU per request %.3f\n", n, median(rateRatios[i]), median(cpuRatios[i]))
	}
	for i, n := range names {
		fmt.Fprintf(&t, "  BPF programs of %s attached (%.0f requests):\n%s", n, attRequests[i], progTable(progs[i], attRequests[i], "req"))
	}
	b.Log(t.String())
	fmt.Print(t.String())
	this := len(bins) - 1
	b.ReportMetric(median(rateRatios[this]), "throughput-attached/detached")
	b.ReportMetric(median(cpuRatios[this]), "cpu-per-req-attached/detached")
}

// BenchmarkStreaming runs the simulator without pacing, answering 300
// streamed chat completions per second of 200 tokens each with a usage
// chunk (its own load generator, a separate process), detached and with each
// exporter (exporterBins) attached, rotated within each pair, and prints the
// simulator's CPU per stream attached against detached, the exporter's, and
// the programs' run time per stream.
func BenchmarkStreaming(b *testing.B) {
	testenv.Root(b)
	dur, pairs := costSettings(b)
	bins, names := exporterBins(b)
	enableBPFStats(b)
	simBin := testenv.Binary(b, "autoglm-llmsim")
	port := testenv.FreePort(b)
	sim := startProcess(b, simBin, "serve", "--pacing.disabled", "--usage.always", "--log.level=warn", "--web.listen-address="+testenv.Addr(port))
	defer sim.stop()
	addr := testenv.Addr(port)
	waitHTTP(b, "http://"+addr+"/v1/models")

	type side struct {
		cpuPerStream float64
		attachedRun
	}
	load := func() side {
		cpu0 := sim.cpuSeconds(b)
		n := float64(streamLoad(b, simBin, addr, 300, 200, dur))
		return side{cpuPerStream: 1e6 * (sim.cpuSeconds(b) - cpu0) / n, attachedRun: attachedRun{work: n}}
	}
	progs, attStreams := newProgs(len(bins)), make([]float64, len(bins))
	ps := runSides(b, pairs, len(bins), func(e int) side {
		if e < 0 {
			return load()
		}
		var s side
		s.attachedRun = attach(b, bins[e], port, progs[e], func() float64 {
			s = load()
			return s.work
		})
		attStreams[e] += s.work
		return s
	})
	ratios := make([][]float64, len(bins))
	var t strings.Builder
	fmt.Fprintf(&t, "\nllmsim --pacing.disabled --usage.always, 300 streams/s of 200 tokens, %s per side, %d pairs, %d CPUs, load average %s\n", dur, pairs, nproc(), loadavg())
	fmt.Fprintf(&t, "  %-4s %-10s %8s %10s %6s | %13s %9s\n", "pair", "exporter", "streams", "us/stream", "ratio", "exp us/stream", "captured")
	for p, sides := range ps {
		det := sides[0]
		fmt.Fprintf(&t, "  %-4d %-10s %8.0f %10.1f %6s |\n", p+1, "detached", det.work, det.cpuPerStream, "")
		for i, s := range sides[1:] {
			ratios[i] = append(ratios[i], s.cpuPerStream/det.cpuPerStream)
			fmt.Fprintf(&t, "  %-4d %-10s %8.0f %10.1f %6.3f | %13.1f %8.2f%%\n", p+1, names[i], s.work, s.cpuPerStream, s.cpuPerStream/det.cpuPerStream,
				s.expUS, 100*s.counted/s.work)
		}
	}
	for i, n := range names {
		fmt.Fprintf(&t, "  median attached (%s)/detached simulator CPU per stream %.3f\n", n, median(ratios[i]))
	}
	for i, n := range names {
		fmt.Fprintf(&t, "  BPF programs of %s attached (%.0f streams):\n%s", n, attStreams[i], progTable(progs[i], attStreams[i], "stream"))
	}
	b.Log(t.String())
	fmt.Print(t.String())
	b.ReportMetric(median(ratios[len(bins)-1]), "cpu-per-stream-attached/detached")
}
