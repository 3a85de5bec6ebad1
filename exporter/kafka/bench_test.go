package kafka

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// The benchmark's broker runs in a child process (this test binary again),
// so that the CPU the benchmark reports is the output's own.
const brokerChildEnv = "AUTOGLM_KAFKA_BENCH_BROKER"

func TestMain(m *testing.M) {
	if os.Getenv(brokerChildEnv) != "" {
		runBrokerChild()
		return
	}
	os.Exit(m.Run())
}

// runBrokerChild serves a kfake broker that acknowledges produce requests
// after validating them (sequence numbers included) without storing the
// records, prints its address and stops when stdin closes.
func runBrokerChild() {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, topic), kfake.BlackholeProduce())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(c.ListenAddrs()[0])
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	c.Close()
}

func startBrokerChild(b *testing.B) string {
	b.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), brokerChildEnv+"=1")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	addr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("broker child: %v", err)
	}
	return strings.TrimSpace(addr)
}

// threadCPU is the CPU time of the calling OS thread (the scheduler's own
// account, to the nanosecond, not sampled at ticks).
func threadCPU() time.Duration { return clockCPU(unix.CLOCK_THREAD_CPUTIME_ID) }

func processCPU() time.Duration { return clockCPU(unix.CLOCK_PROCESS_CPUTIME_ID) }

func clockCPU(clock int32) time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(clock, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// benchRequests vary like real traffic: routes, models, clients, streams.
func benchRequests() []traffic.Request {
	paths := []string{"/v1/chat/completions", "/v1/chat/completions", "/v1/chat/completions", "/v1/embeddings", "/v1/completions", "/health"}
	models := []string{"glm-4-9b-chat", "qwen2.5-7b-instruct", "llama-3.1-8b", "bge-m3"}
	w := &traffic.Workload{ServiceName: "vllm", K8sNamespace: "llm", K8sPod: "vllm-7d9f8-abcde", K8sContainer: "server"}
	out := make([]traffic.Request, 1024)
	for i := range out {
		start := t0.Add(time.Duration(i) * time.Millisecond)
		r := traffic.Request{
			Start: start, FirstByte: start.Add(80 * time.Millisecond), End: start.Add(time.Duration(200+i%1800) * time.Millisecond),
			Method: "POST", Path: paths[i%len(paths)], Status: 200, RequestBodySize: int64(300 + i), ResponseBodySize: int64(2000 + 7*i),
			Model: models[i%len(models)], InputTokens: int64(64 + i%500), OutputTokens: int64(16 + i%300),
			Client: netip.AddrFrom4([4]byte{10, byte(i % 7), byte(i % 31), byte(i)}), ServerPort: 8000,
			Protocol: traffic.ProtocolHTTP1, Workload: w,
		}
		if i%10 < 3 {
			r.Streaming, r.FirstToken = true, start.Add(120*time.Millisecond)
		}
		if i%50 == 0 {
			r.Status = 503
		}
		out[i] = r
	}
	return out
}

type benchResult struct {
	events  int
	elapsed time.Duration
	// enqueueCPU is the publishing thread's CPU inside Publish; pacingCPU
	// the rest of that thread's CPU (the benchmark's loop and sleeps, which
	// stand for the capture's own work); procCPU the whole process's.
	enqueueCPU, pacingCPU, procCPU time.Duration
	dropped                        float64
	batches, sentBytes             float64
	producedBytes                  float64
}

// extra is the exporter's extra CPU: the whole process but the harness's
// publishing thread outside Publish. The broker is in another process.
func (r benchResult) extra() time.Duration { return r.procCPU - r.pacingCPU }

// runBench publishes n events from one locked OS thread (the capture's
// goroutine), as fast as the buffer takes them (rate 0) or at rate events
// per second, and waits until Kafka has acknowledged them all. The
// publisher thread's CPU inside Publish is the enqueue path; the rest of
// the process CPU but that thread's is the producer (encoding, franz-go,
// compression, network, garbage collection) plus the benchmark's own
// waiting for the acknowledgements, which is small.
func runBench(b *testing.B, addr string, o Options, n, rate int) benchResult {
	o.Brokers = []string{addr}
	out, err := New(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx) }()
	// Warm up: connection, metadata, producer id.
	reqs := benchRequests()
	out.Publish(&reqs[0])
	waitProducedB(b, out, 1)

	runtime.GC()
	type threadCPUs struct{ enqueue, pacing time.Duration }
	pubCPU := make(chan threadCPUs, 1)
	var start time.Time
	var cpu0 time.Duration
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		t0 := threadCPU()
		start, cpu0 = time.Now(), processCPU()
		close(ready)
		var spent time.Duration
		if rate > 0 {
			spent = publishPaced(out, reqs, n, rate, start)
		} else {
			spent = publishFast(out, reqs, n)
		}
		pubCPU <- threadCPUs{enqueue: spent, pacing: threadCPU() - t0 - spent}
	}()
	<-ready
	th := <-pubCPU
	waitSettled(b, out, float64(n+1), rate > 0)
	elapsed, cpu := time.Since(start), processCPU()-cpu0
	res := benchResult{
		events: n, elapsed: elapsed, enqueueCPU: th.enqueue, pacingCPU: th.pacing, procCPU: cpu, dropped: droppedNow(out),
		batches: counterValue(out.m.batches), sentBytes: counterValue(out.m.sentBytes), producedBytes: counterValue(out.m.producedBytes),
	}
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
	return res
}

// publishFast publishes in bursts into room that is there, timing only the
// bursts: the benchmark waits for room so that the producer's sustained
// rate is measured without drops (the exporter never waits), and that
// waiting is not the enqueue path's cost.
func publishFast(out *Output, reqs []traffic.Request, n int) (spent time.Duration) {
	const burst = 256
	for i := 0; i < n; i += burst {
		for out.queue.len() > out.o.BufferEvents-burst {
			time.Sleep(time.Millisecond)
		}
		c0 := threadCPU()
		for j := i; j < min(i+burst, n); j++ {
			out.Publish(&reqs[j%len(reqs)])
		}
		spent += threadCPU() - c0
	}
	return spent
}

// publishPaced publishes event i at start + i/rate: every millisecond the
// events that are due, as a capture seeing rate requests per second would.
func publishPaced(out *Output, reqs []traffic.Request, n, rate int, start time.Time) (spent time.Duration) {
	for i := 0; i < n; {
		due := min(n, int(time.Since(start).Seconds()*float64(rate))+1)
		if due > i {
			c0 := threadCPU()
			for ; i < due; i++ {
				out.Publish(&reqs[i%len(reqs)])
			}
			spent += threadCPU() - c0
		}
		time.Sleep(time.Millisecond)
	}
	return spent
}

// waitProducedB waits until n events are acknowledged, reading the
// counters directly: gathering the metrics every few milliseconds would
// cost the benchmark more CPU than it measures at low rates.
func waitProducedB(b *testing.B, out *Output, n float64) { waitSettled(b, out, n, false) }

// waitSettled waits until n events are acknowledged or, with drops
// allowed (paced rows: the rate does not wait for room), acknowledged or
// dropped.
func waitSettled(b *testing.B, out *Output, n float64, allowDrops bool) {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		produced, dropped := counterValue(out.m.produced), droppedNow(out)
		if produced >= n || allowDrops && produced+dropped >= n {
			return
		}
		if time.Now().After(deadline) || dropped > 0 && !allowDrops {
			b.Fatalf("produced %g of %g events, dropped %g", produced, n, dropped)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func droppedNow(out *Output) float64 {
	total := 0.0
	for _, r := range dropReasons {
		total += counterValue(out.m.dropped.WithLabelValues(r))
	}
	return total
}

// BenchmarkKafkaOutput prints the output's throughput to a broker in
// another process and its CPU per event, enqueue path and producer apart,
// for the default settings and a few variants, as fast as it goes and
// paced at the 50k events/s the budget is set for (batches are smaller
// and linger timers fire more often per event than at full speed).
//
//	go test -run '^$' -bench BenchmarkKafkaOutput -benchtime 1x ./exporter/kafka/
//
// AUTOGLM_BENCH_EVENTS (default 500000) sets the events per full-speed
// row, AUTOGLM_BENCH_PACED_EVENTS (default 250000, 5 s) per paced row,
// AUTOGLM_BENCH_ROUNDS (default 3) the rounds of every row;
// AUTOGLM_BENCH_ROWS runs only the rows whose name contains it.
func BenchmarkKafkaOutput(b *testing.B) {
	n := envInt("AUTOGLM_BENCH_EVENTS", 500_000)
	paced := envInt("AUTOGLM_BENCH_PACED_EVENTS", 250_000)
	rounds := envInt("AUTOGLM_BENCH_ROUNDS", 3)
	const rate = 50_000
	addr := startBrokerChild(b)
	base := Options{
		Topic: topic, ClientID: "bench", Key: "route", Compression: "zstd", BatchMaxBytes: 1_000_000,
		Linger: 20 * time.Millisecond, Idempotent: true, Acks: "all", DeliveryTimeout: 30 * time.Second, BufferEvents: 16384,
		Encoder: EncoderOptions{Endpoints: []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings"},
			Source: SourceEBPF, Host: "node-1", PrefixV4: 24, PrefixV6: 64},
	}
	rows := []struct {
		name string
		rate int
		edit func(*Options)
	}{
		{"defaults (zstd, key route, linger 20ms)", 0, func(*Options) {}},
		{"defaults, paced 50k/s", rate, func(*Options) {}},
		{"zstd default level", 0, func(o *Options) { o.ZstdLevel = 2 }},
		{"lz4", 0, func(o *Options) { o.Compression = "lz4" }},
		{"lz4, paced 50k/s", rate, func(o *Options) { o.Compression = "lz4" }},
		{"no compression", 0, func(o *Options) { o.Compression = "none" }},
		{"no compression, paced 50k/s", rate, func(o *Options) { o.Compression = "none" }},
		{"zstd, key client", 0, func(o *Options) { o.Key = "client" }},
		{"zstd, linger 100ms", 0, func(o *Options) { o.Linger = 100 * time.Millisecond }},
		{"zstd, linger 100ms, paced 50k/s", rate, func(o *Options) { o.Linger = 100 * time.Millisecond }},
		{"zstd, buffer_events 4096", 0, func(o *Options) { o.BufferEvents = 4096 }},
	}
	// Warm up the process (heap, pools, encoders) so the first row is not penalised.
	runBench(b, addr, base, n/5, 0)
	only := os.Getenv("AUTOGLM_BENCH_ROWS")
	// Rows run in turn, rounds times, so that a burst of load on the
	// shared machine hits one round of every row, not every round of one;
	// each row prints its median round.
	results := make([][]benchResult, len(rows))
	for range b.N * rounds {
		for i, row := range rows {
			if only != "" && !strings.Contains(row.name, only) {
				continue
			}
			o := base
			row.edit(&o)
			events := n
			if row.rate > 0 {
				events = paced
			}
			results[i] = append(results[i], runBench(b, addr, o, events, row.rate))
		}
	}
	var t strings.Builder
	fmt.Fprintf(&t, "kafka output benchmark, %d events per row (%d when paced), median of %d rounds, broker (kfake, validating, not storing) in another process, %d CPUs, load average %s\n",
		n, paced, b.N*rounds, runtime.NumCPU(), loadavg())
	fmt.Fprintf(&t, "%-40s %10s %9s %10s %12s %11s %9s %8s %7s %s\n", "settings", "events/s", "dropped", "enqueue", "producer", "total", "B/event", "ratio", "batch", "total, every round")
	for i, row := range rows {
		rs := results[i]
		if len(rs) == 0 {
			continue
		}
		perEvent := func(r benchResult, d time.Duration) float64 {
			return float64(d.Nanoseconds()) / 1000 / float64(r.events)
		}
		slices.SortFunc(rs, func(x, y benchResult) int { return cmp.Compare(perEvent(x, x.extra()), perEvent(y, y.extra())) })
		var every []string
		for _, r := range rs {
			every = append(every, fmt.Sprintf("%.2f", perEvent(r, r.extra())))
		}
		r := rs[len(rs)/2]
		per := func(d time.Duration) float64 { return perEvent(r, d) }
		fmt.Fprintf(&t, "%-40s %10.0f %9.0f %7.3f us %9.3f us %8.3f us %9.0f %8.2f %7.0f %s\n", row.name,
			float64(r.events)/r.elapsed.Seconds(), r.dropped, per(r.enqueueCPU), per(r.extra()-r.enqueueCPU), per(r.extra()),
			r.producedBytes/float64(r.events+1), r.producedBytes/max(r.sentBytes, 1), float64(r.events)/max(r.batches, 1), strings.Join(every, " "))
		switch i {
		case 0:
			b.ReportMetric(float64(r.events)/r.elapsed.Seconds(), "events/s")
			b.ReportMetric(per(r.enqueueCPU), "enqueue-us/event")
			b.ReportMetric(per(r.extra()), "total-us/event")
		case 1:
			b.ReportMetric(per(r.extra()), "paced-total-us/event")
		}
	}
	fmt.Fprintf(&t, "enqueue: CPU of the capture's thread in Publish; producer: the rest of the process but the publishing thread (encoding, franz-go, compression, syscalls, GC, the benchmark waiting for acks); ratio: event bytes / compressed batch bytes; batch: events per batch; load average at the end %s\n", loadavg())
	b.Log(t.String())
	fmt.Print(t.String())
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// BenchmarkEncoder is the cost of turning one request into its JSON event.
func BenchmarkEncoder(b *testing.B) {
	e := testEncoder(SourceEBPF, false)
	reqs := benchRequests()
	buf := make([]byte, 0, 2048)
	b.ReportAllocs()
	size := 0
	for i := 0; b.Loop(); i++ {
		buf = e.Append(buf[:0], &reqs[i%len(reqs)])
		size += len(buf)
	}
	b.ReportMetric(float64(size)/float64(b.N), "B/event")
}

// BenchmarkPublish is the capture's side: one Publish into a buffer with room.
func BenchmarkPublish(b *testing.B) {
	out := &Output{queue: newEventQueue(1 << 16), m: newSelfMetrics()}
	reqs := benchRequests()
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if out.queue.len() == 1<<16 {
			b.StopTimer()
			out.queue.discard()
			b.StartTimer()
		}
		out.Publish(&reqs[i%len(reqs)])
	}
}
