package llmsim

import (
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkSimulatorThroughput measures what the simulator sustains without
// pacing on loopback, with the load generator in the same process (so both
// share the machine's cores, as in the exporter benchmarks).
func BenchmarkSimulatorThroughput(b *testing.B) {
	scenarios := []struct {
		name      string
		o         LoadOptions
		accessLog bool
	}{
		{"chat-json-keepalive", LoadOptions{Concurrency: 32, KeepAlive: true, Routes: []RouteWeight{{RouteChat, 1}}, MaxTokens: 16}, false},
		{"chat-sse-keepalive", LoadOptions{Concurrency: 32, KeepAlive: true, Routes: []RouteWeight{{RouteChat, 1}}, MaxTokens: 16, StreamRatio: 1}, false},
		{"mix-keepalive", LoadOptions{Concurrency: 32, KeepAlive: true, MaxTokens: 16, StreamRatio: 0.5}, false},
		// The same with --access-log: the cost of one JSON line per request.
		{"mix-keepalive-log", LoadOptions{Concurrency: 32, KeepAlive: true, MaxTokens: 16, StreamRatio: 0.5}, true},
		{"chat-json-new-conn", LoadOptions{Concurrency: 32, Routes: []RouteWeight{{RouteChat, 1}}, MaxTokens: 16}, false},
	}
	type row struct {
		name string
		s    *Summary
	}
	var rows []row
	for _, sc := range scenarios {
		b.Run(sc.name, func(b *testing.B) {
			so := Options{NoPacing: true, Seed: 1}
			if sc.accessLog {
				so.AccessLog = filepath.Join(b.TempDir(), "access.log")
			}
			s, err := NewServer(so)
			if err != nil {
				b.Fatal(err)
			}
			defer func() {
				if err := s.Close(); err != nil {
					b.Error(err)
				}
			}()
			hs := httptest.NewServer(s.Handler())
			defer hs.Close()
			o := sc.o
			o.Target, o.Mode, o.Duration, o.Seed, o.Timeout = hs.URL, ModeClosed, 3*time.Second, 1, 10*time.Second
			var sum *Summary
			for range b.N {
				if sum, err = Run(context.Background(), o); err != nil {
					b.Fatal(err)
				}
			}
			if len(sum.Errors) > 0 {
				b.Fatalf("errors: %v", sum.Errors)
			}
			b.ReportMetric(sum.AchievedRate, "req/s")
			b.ReportMetric(sum.Latency.P99*1e3, "p99-ms")
			rows = append(rows, row{sc.name, sum})
		})
	}
	fmt.Fprintf(os.Stdout, "\n%-22s %10s %10s %10s\n", "scenario", "req/s", "p50 ms", "p99 ms")
	for _, r := range rows {
		fmt.Fprintf(os.Stdout, "%-22s %10.0f %10.2f %10.2f\n", r.name, r.s.AchievedRate, r.s.Latency.P50*1e3, r.s.Latency.P99*1e3)
	}
}
