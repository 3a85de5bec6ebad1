package ebpf

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cebpf "github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// BenchmarkCaptureOverhead measures a loopback net/http server's throughput
// with the capture detached and attached, alternating rounds, and reports
// the ratio, the events per request and the losses.
func BenchmarkCaptureOverhead(b *testing.B) {
	testenv.Root(b)
	const (
		rounds  = 3
		window  = 2 * time.Second
		clients = 8
	)
	body := []byte(`{"id":"x","choices":[{"message":{"content":"hello"}}],"usage":{"prompt_tokens":5,"completion_tokens":1}}`)
	port := testenv.FreePort(b)
	addr := testenv.Addr(port)
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})}
	go func() { _ = srv.ListenAndServe() }()
	defer srv.Close()
	url := "http://" + addr + "/v1/chat/completions"
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	waitUp(b, client, url)

	// load returns requests per second and process CPU time per request;
	// CPU time holds up better than throughput on a busy machine.
	load := func() (float64, float64) {
		cpu0 := cpuTime(b)
		var n atomic.Int64
		stop := time.Now().Add(window)
		var wg sync.WaitGroup
		for range clients {
			wg.Go(func() {
				for time.Now().Before(stop) {
					resp, err := client.Get(url)
					if err != nil {
						b.Error(err)
						return
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					n.Add(1)
				}
			})
		}
		wg.Wait()
		return float64(n.Load()) / window.Seconds(), float64((cpuTime(b) - cpu0).Microseconds()) / float64(n.Load())
	}

	// Kernel accounting of the programs' own run time (all processes on
	// the machine run them, so per request this is an upper bound).
	statsOff, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer statsOff.Close()

	var detached, attached, detachedCPU, attachedCPU, events, requests float64
	var bpfTime, idleTime time.Duration
	var bpfRuns uint64
	var lost uint64
	perProg := map[string]progCost{}
	for b.Loop() {
		for r := range rounds {
			d, dc := load()
			src, err := New(Options{Ports: []uint16{uint16(port)}})
			if err != nil {
				b.Fatal(err)
			}
			var seen atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- src.Run(ctx, func(*traffic.Event) { seen.Add(1) }) }()
			a, ac := load()
			time.Sleep(100 * time.Millisecond) // let the reader drain
			// The programs run for every process on the machine: an idle
			// window as long as the load shows what the rest of the
			// machine costs, which the net figure leaves out.
			t, n := progRuntime(b, src)
			time.Sleep(window)
			t2, _ := progRuntime(b, src)
			idleTime += t2 - t
			cancel()
			if err := <-done; err != nil {
				b.Fatal(err)
			}
			bpfTime += t
			bpfRuns += n
			for _, p := range src.objs.programs() {
				t, n := progRuntime(b, src, p)
				info, err := p.Info()
				if err != nil {
					b.Fatal(err)
				}
				c := perProg[info.Name]
				c.time += t
				c.runs += n
				perProg[info.Name] = c
			}
			st, err := src.Stats()
			if err != nil {
				b.Fatal(err)
			}
			if err := src.Close(); err != nil {
				b.Fatal(err)
			}
			detached += d
			attached += a
			detachedCPU += dc
			attachedCPU += ac
			events += float64(seen.Load())
			requests += a * window.Seconds()
			lost += st.RingbufFull + st.MapFull
			b.Logf("round %d: detached %.0f req/s %.1f µs CPU/req, attached %.0f req/s %.1f µs CPU/req, ratio %.3f, %d events, lost %d",
				r, d, dc, a, ac, a/d, seen.Load(), st.RingbufFull+st.MapFull)
		}
	}
	b.ReportMetric(detached/rounds, "detached_req/s")
	b.ReportMetric(attached/rounds, "attached_req/s")
	b.ReportMetric(attached/detached, "ratio")
	b.ReportMetric(detachedCPU/rounds, "detached_cpu_us/req")
	b.ReportMetric(attachedCPU/rounds, "attached_cpu_us/req")
	b.ReportMetric(events/requests, "events/req")
	b.ReportMetric(float64(bpfTime.Nanoseconds())/float64(bpfRuns), "bpf_ns/run")
	b.ReportMetric(float64(bpfTime.Nanoseconds())/requests, "bpf_ns/req")
	b.ReportMetric(float64((bpfTime-idleTime).Nanoseconds())/requests, "bpf_net_ns/req")
	b.ReportMetric(float64(lost), "lost")
	fmt.Printf("load average %s\n", loadAverage())
	fmt.Printf("%-15s %-15s %-7s %-20s %-20s %-10s %-11s %-11s %-15s %s\n", "detached req/s", "attached req/s", "ratio",
		"detached µs CPU/req", "attached µs CPU/req", "events/req", "bpf ns/run", "bpf ns/req", "net bpf ns/req", "lost")
	fmt.Printf("%-15.0f %-15.0f %-7.3f %-20.1f %-20.1f %-10.2f %-11.0f %-11.0f %-15.0f %d\n", detached/rounds, attached/rounds, attached/detached,
		detachedCPU/rounds, attachedCPU/rounds, events/requests,
		float64(bpfTime.Nanoseconds())/float64(bpfRuns), float64(bpfTime.Nanoseconds())/requests,
		float64((bpfTime-idleTime).Nanoseconds())/requests, lost)
	printProgCosts(perProg, requests)
}

// progCost is a program's accumulated kernel run time accounting.
type progCost struct {
	time time.Duration
	runs uint64
}

// printProgCosts prints each program's mean run time, which, unlike
// throughput, hardly depends on the machine's load.
func printProgCosts(perProg map[string]progCost, requests float64) {
	names := slices.Sorted(maps.Keys(perProg))
	fmt.Printf("%-18s %-12s %-10s %s\n", "program", "runs", "ns/run", "ns/req")
	for _, name := range names {
		c := perProg[name]
		if c.runs == 0 {
			continue
		}
		fmt.Printf("%-18s %-12d %-10.0f %.0f\n", name, c.runs, float64(c.time.Nanoseconds())/float64(c.runs), float64(c.time.Nanoseconds())/requests)
	}
}

// cpuTime is the user plus system CPU time of this process so far.
func cpuTime(b *testing.B) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func waitUp(b *testing.B, c *http.Client, url string) {
	for range 100 {
		resp, err := c.Get(url)
		if err == nil {
			_ = resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.Fatalf("server at %s did not come up", url)
}

// BenchmarkUnrelatedSyscall measures what the attached programs cost a
// process that is not observed: write(2) of one byte to /dev/null, detached
// and attached.
func BenchmarkUnrelatedSyscall(b *testing.B) {
	testenv.Root(b)
	const calls = 200_000
	f, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	fd := int(f.Fd())
	one := []byte{1}
	measure := func() float64 {
		start := time.Now()
		for range calls {
			if _, err := unix.Write(fd, one); err != nil {
				b.Fatal(err)
			}
		}
		return float64(time.Since(start).Nanoseconds()) / calls
	}
	statsOff, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer statsOff.Close()
	var detached, attached, bpfPerWrite float64
	for b.Loop() {
		detached = measure()
		src, err := New(Options{Ports: []uint16{uint16(testenv.FreePort(b))}})
		if err != nil {
			b.Fatal(err)
		}
		tx0, nx0 := progRuntime(b, src, src.objs.ExitWrite)
		attached = measure()
		tx1, nx1 := progRuntime(b, src, src.objs.ExitWrite)
		// exit_write runs once per write(2) anywhere on the machine: its
		// mean run time is what one unrelated write pays.
		bpfPerWrite = float64((tx1 - tx0).Nanoseconds()) / float64(max(nx1-nx0, 1))
		if err := src.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(detached, "detached_ns/write")
	b.ReportMetric(attached, "attached_ns/write")
	b.ReportMetric(bpfPerWrite, "bpf_ns/write")
	fmt.Printf("%-20s %-20s %-10s %s\n", "detached ns/write", "attached ns/write", "added ns", "bpf ns/write")
	fmt.Printf("%-20.0f %-20.0f %-10.0f %.0f\n", detached, attached, attached-detached, bpfPerWrite)
}

// progRuntime sums the kernel's run time accounting of the given programs
// (all when none are given).
func progRuntime(b *testing.B, src *Source, progs ...*cebpf.Program) (time.Duration, uint64) {
	var (
		total time.Duration
		runs  uint64
	)
	if len(progs) == 0 {
		progs = src.objs.programs()
	}
	for _, p := range progs {
		ps, err := p.Stats()
		if err != nil {
			b.Fatal(err)
		}
		total += ps.Runtime
		runs += ps.RunCount
	}
	return total, runs
}

// loadAverage is /proc/loadavg's first three fields.
func loadAverage() string {
	raw, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(raw))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// BenchmarkStreamWrite measures the kernel side's run time for a 4 KiB
// write of a chunked response body, as a fast server writes an event
// stream: once for an event stream (followed chunk by chunk, the middle of
// each write left out) and once for a body that is not one (copied up to
// capture_bytes), with the same bytes otherwise, alternated.
func BenchmarkStreamWrite(b *testing.B) {
	testenv.Root(b)
	const writes, size, rounds = 40, 4096, 6
	// A chunked body of 2 KiB chunks cut into 4 KiB writes, as net/http
	// sends an unpaced stream.
	var body strings.Builder
	for body.Len() < writes*size {
		body.WriteString(`data: {"id":"c","object":"chat.completion.chunk","model":"glm-4","choices":[{"index":0,"delta":{"content":"tok"},"finish_reason":null}]}` + "\n\n")
	}
	var chunked strings.Builder
	for rest := body.String(); len(rest) > 0; {
		n := min(len(rest), 2048)
		fmt.Fprintf(&chunked, "%x\r\n%s\r\n", n, rest[:n])
		rest = rest[n:]
	}
	wire := []byte(chunked.String()[:writes*size])
	first := strings.Index(chunked.String(), "\n\n") + 2
	answer := func(ct string, firstByte byte) [][]byte {
		head := append([]byte("HTTP/1.1 200 OK\r\nContent-Type: "+ct+"\r\nTransfer-Encoding: chunked\r\n\r\n"), wire[:first]...)
		head[bytes.Index(head, []byte("\r\n\r\n"))+4+len("800\r\n")] = firstByte
		out := [][]byte{head}
		for off := first; off+size <= len(wire); off += size {
			out = append(out, wire[off:off+size])
		}
		return out
	}
	// Not a valid end of the body: the connection closes after each answer.
	variants := map[string][][]byte{
		"event stream": answer("text/event-stream", 'd'),
		"other body":   answer("application/jsonl", '{'),
	}
	var mode atomic.Value
	serve := func(fd int) error {
		buf := make([]byte, 512)
		if _, err := unix.Read(fd, buf); err != nil {
			return err
		}
		for _, w := range variants[mode.Load().(string)] {
			if _, err := unix.Write(fd, w); err != nil {
				return err
			}
		}
		return nil
	}
	// A client may hang up mid-write as the benchmark ends; only the BPF
	// time of the writes matters here, so the server's errors are not failures.
	port, addr := rawServer(b, func(fd int) error { _ = serve(fd); return nil })
	statsOff, err := cebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
	if err != nil {
		b.Fatal(err)
	}
	defer statsOff.Close()
	src, err := New(Options{Ports: []uint16{port}})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = src.Run(ctx, func(*traffic.Event) {}) }()
	one := func() {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, "GET /v1/stream HTTP/1.1\r\nHost: b\r\n\r\n"); err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil {
			b.Fatal(err)
		}
	}
	// The source arms itself at the first event stream it sees.
	mode.Store("event stream")
	for range 20 {
		one()
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	per := map[string][]float64{}
	for b.Loop() {
		for r := range rounds {
			for i, name := range []string{"event stream", "other body"} {
				if r%2 == 1 {
					name = []string{"other body", "event stream"}[i]
				}
				mode.Store(name)
				t0, _ := progRuntime(b, src, src.objs.ExitWrite)
				const answers = 50
				for range answers {
					one()
				}
				t1, _ := progRuntime(b, src, src.objs.ExitWrite)
				per[name] = append(per[name], float64((t1-t0).Nanoseconds())/float64(answers*(writes)))
			}
		}
	}
	st, err := src.Stats()
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("4 KiB chunked-body writes, exit_write ns per write (all writes on the machine in the window), %d rounds, load average %s\n", rounds, loadAverage())
	for _, name := range []string{"event stream", "other body"} {
		slices.Sort(per[name])
		fmt.Printf("  %-13s median %6.0f  (%v)\n", name, per[name][len(per[name])/2], per[name])
	}
	fmt.Printf("  stream bytes not copied: %d\n", st.StreamBytesSkipped)
	b.ReportMetric(per["event stream"][len(per["event stream"])/2], "stream_ns/write")
	b.ReportMetric(per["other body"][len(per["other body"])/2], "whole_ns/write")
	if st.StreamBytesSkipped == 0 {
		b.Fatal("no event-stream write had its middle left out")
	}
}
