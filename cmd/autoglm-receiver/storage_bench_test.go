package main

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"text/tabwriter"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// storageFigures are what one store set-up achieved.
type storageFigures struct {
	accepted float64
	p50, p99 time.Duration
}

// measureAccept drives the replicas at urls (round robin) over loopback:
// accepted webhooks/s with 64 concurrent senders and unique payloads, then
// answer latency at a steady 500/s for 4 s.
func measureAccept(b *testing.B, prefix string, urls []string) storageFigures {
	const n = 6000
	dur := burst(b, prefix, urls, n)
	p50, p99 := steady(b, prefix, urls)
	return storageFigures{accepted: n / dur.Seconds(), p50: p50, p99: p99}
}

// burst posts n unique payloads with 64 concurrent senders and returns how
// long it took until every one was answered 200.
func burst(b *testing.B, prefix string, urls []string, n int) time.Duration {
	jobs := make(chan int)
	var failed atomic.Int64
	var wg sync.WaitGroup
	t0 := time.Now()
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if code, err := post(context.Background(), urls[i%len(urls)], payload(prefix+"Bench", i, "firing", nil)); err != nil || code != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%s: %d of %d webhooks not accepted", prefix, failed.Load(), n)
	}
	return time.Since(t0)
}

// steady posts 500 unique payloads a second for 4 s and returns the answer
// latency's median and 99th percentile.
func steady(b *testing.B, prefix string, urls []string) (p50, p99 time.Duration) {
	const rate, seconds = 500, 4
	var failed atomic.Int64
	lat := make([]time.Duration, rate*seconds)
	tick := time.NewTicker(time.Second / rate)
	var wg sync.WaitGroup
	for i := 0; i < rate*seconds; i++ {
		<-tick.C
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := time.Now()
			code, err := post(context.Background(), urls[i%len(urls)], payload(prefix+"Steady", i, "firing", nil))
			lat[i] = time.Since(s)
			if err != nil || code != 200 {
				failed.Add(1)
			}
		}()
	}
	tick.Stop()
	wg.Wait()
	if failed.Load() > 0 {
		b.Fatalf("%s: %d webhooks failed at %d/s", prefix, failed.Load(), rate)
	}
	return percentile(lat, 0.5), percentile(lat, 0.99)
}

// BenchmarkStorage measures the embedded bbolt store (one replica) and the
// shared PostgreSQL store (three replicas, a local PostgreSQL) side by side
// in one run, with the same payloads, senders and fake provider.
// Run with: go test -run '^$' -bench Storage -benchtime 1x ./cmd/autoglm-receiver/
func BenchmarkStorage(b *testing.B) {
	bin := testenv.Binary(b, name)
	pg := testenv.NewPostgres(b)
	for range b.N {
		dir := b.TempDir()
		sk := newSink(b)
		cfg := writeConfig(b, dir, crashConfig(dir, sk.srv.URL))
		p := start(b, bin, cfg, testenv.FreePort(b), nil, "--log.level=warn")
		bolt := measureAccept(b, "Bolt", []string{p.url})
		p.stop(b)

		pdir := b.TempDir()
		db := pg.Database(b)
		hs := newIdemSink(b)
		pcfg := writeConfig(b, pdir, haConfig(pg.URL(db), pg.PasswordFile(b, pdir), hs.srv.URL))
		var urls []string
		var ps []*proc
		for range 3 {
			r := start(b, bin, pcfg, testenv.FreePort(b), nil, "--log.level=warn")
			ps = append(ps, r)
			urls = append(urls, r.url)
		}
		shared := measureAccept(b, "PG", urls)
		for _, r := range ps {
			r.stop(b)
		}

		tw := tabwriter.NewWriter(os.Stdout, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "store\taccepted webhooks/s (64 senders, durable)\tp50 at 500/s\tp99 at 500/s\ttarget")
		fmt.Fprintf(tw, "bbolt, 1 replica\t%.0f\t%s\t%s\t>= 5000/s, p99 <= 10ms\n", bolt.accepted, bolt.p50.Round(10*time.Microsecond), bolt.p99.Round(10*time.Microsecond))
		fmt.Fprintf(tw, "PostgreSQL, 3 replicas\t%.0f\t%s\t%s\t>= 2000/s, p99 <= 25ms\n", shared.accepted, shared.p50.Round(10*time.Microsecond), shared.p99.Round(10*time.Microsecond))
		if err := tw.Flush(); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(bolt.accepted, "bolt-accepted/s")
		b.ReportMetric(float64(bolt.p99.Microseconds())/1000, "bolt-p99-ms@500/s")
		b.ReportMetric(shared.accepted, "pg-accepted/s")
		b.ReportMetric(float64(shared.p99.Microseconds())/1000, "pg-p99-ms@500/s")
	}
}
