package main

import (
	"context"
	"fmt"
	"os"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// BenchmarkReceiver measures the real binary over loopback HTTP: accepted
// webhooks per second with durable writes, answer latency at a steady 500/s,
// end-to-end delivery rate to a fake provider, and the crash scenario's counts.
// Run with: go test -run '^$' -bench Receiver -benchtime 1x ./cmd/autoglm-receiver/
func BenchmarkReceiver(b *testing.B) {
	bin := testenv.Binary(b, name)
	for range b.N {
		dir := b.TempDir()
		sk := newSink(b)
		cfg := writeConfig(b, dir, crashConfig(dir, sk.srv.URL))
		// Per-delivery info lines are not what is measured here.
		p := start(b, bin, cfg, testenv.FreePort(b), nil, "--log.level=warn")

		// 1. Throughput: as many unique payloads as 64 concurrent senders manage.
		const burstN = 6000
		t0 := time.Now()
		acceptDur := burst(b, "", []string{p.url}, burstN)
		waitUntil(b, "burst delivered", 120*time.Second, func() bool {
			c, _ := sk.snapshot()
			return len(c) >= burstN
		})
		deliverDur := time.Since(t0)

		// 2. Latency at a steady 500 requests per second for 4 seconds.
		const rate, seconds = 500, 4
		p50, p99 := steady(b, "", []string{p.url})
		c, _ := sk.snapshot()
		dups := 0
		for _, n := range c {
			dups += n - 1
		}
		// Re-send 500 identical payloads: all must be recognised as duplicates.
		for i := 0; i < 500; i++ {
			if code, err := post(context.Background(), p.url, payload("Bench", i, "firing", nil)); err != nil || code != 200 {
				b.Fatalf("re-send: %d %v", code, err)
			}
		}
		time.Sleep(500 * time.Millisecond)
		c2, _ := sk.snapshot()
		resentDups := 0
		for _, n := range c2 {
			resentDups += n - 1
		}
		p.stop(b)

		// 3. Crash scenario.
		cr := runCrash(b, 1500, 16, 600)

		acceptRate := float64(burstN) / acceptDur.Seconds()
		deliverRate := float64(burstN) / deliverDur.Seconds()
		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "figure\tvalue\ttarget")
		fmt.Fprintf(tw, "accepted webhooks/s (64 senders, fsync'd)\t%.0f\t>= 2000\n", acceptRate)
		fmt.Fprintf(tw, "answer latency p50 at %d/s\t%s\t\n", rate, p50.Round(10*time.Microsecond))
		fmt.Fprintf(tw, "answer latency p99 at %d/s\t%s\t<= 25ms\n", rate, p99.Round(10*time.Microsecond))
		fmt.Fprintf(tw, "end-to-end deliveries/s to fake webhook\t%.0f\t\n", deliverRate)
		fmt.Fprintf(tw, "duplicates in %d+%d deliveries\t%d\t0\n", burstN, rate*seconds, dups)
		fmt.Fprintf(tw, "duplicates after 500 identical re-sends\t%d\t0\n", resentDups)
		fmt.Fprintf(tw, "crash: sent / answered 200 / re-sent after restart\t%d / %d / %d\t\n", cr.Sent, cr.Acked, cr.Resent)
		fmt.Fprintf(tw, "crash: lost (answered 200, never delivered)\t%d\t0\n", cr.Lost)
		fmt.Fprintf(tw, "crash: duplicates (all interrupted sends)\t%d (%d uncertain, %d unexplained)\t0 unexplained\n", cr.Dups, cr.Uncertain, cr.UnexplainedDups)
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(acceptRate, "accepted/s")
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms@500/s")
		b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms@500/s")
		b.ReportMetric(deliverRate, "delivered/s")
		b.ReportMetric(float64(cr.Lost), "crash-lost")
		b.ReportMetric(float64(cr.UnexplainedDups), "crash-unexplained-dups")
		b.ReportMetric(float64(resentDups), "resend-dups")
	}
}
