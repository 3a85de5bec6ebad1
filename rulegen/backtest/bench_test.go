package backtest

import (
	"bufio"
	"compress/gzip"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// peakRSS reads VmHWM (peak resident set) from /proc/self/status in bytes.
func peakRSS(b *testing.B) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) == 3 && f[0] == "VmHWM:" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb * 1024
		}
	}
	b.Fatal("no VmHWM in /proc/self/status")
	return 0
}

// BenchmarkBacktestLongInput streams one long gzipped CSV (1-minute rows,
// daily shape and noise; 10,000,000 rows unless AUTOGLM_BENCH_ROWS says
// otherwise) through the backtest and reports wall time and peak RSS: the
// walk holds the fit history and a condensed trace, never the input.
//
//	go test ./rulegen/backtest -run '^$' -bench BenchmarkBacktestLongInput -benchtime 1x
func BenchmarkBacktestLongInput(b *testing.B) {
	rows := 10_000_000
	if s := os.Getenv("AUTOGLM_BENCH_ROWS"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil {
			b.Fatal(err)
		}
		rows = n
	}
	path := filepath.Join(b.TempDir(), "long.csv.gz")
	if err := writeLong(path, rows); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		out, res := backtestFile(b.Context(), path, "rate")
		if out.Error != "" {
			b.Fatal(out.Error)
		}
		b.ReportMetric(time.Since(start).Seconds(), "walk-s")
		b.ReportMetric(peakRSS(b)/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(res.Points), "rows")
		b.ReportMetric(float64(len(res.Trace)), "trace-buckets")
	}
}

func writeLong(path string, rows int) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	zw, _ := gzip.NewWriterLevel(f, gzip.BestSpeed)
	w := bufio.NewWriterSize(zw, 1<<20)
	r := rand.New(rand.NewPCG(5, 6))
	t0 := time.Date(2000, 1, 3, 0, 0, 0, 0, time.UTC)
	if _, err := w.WriteString("timestamp,value\n"); err != nil {
		return err
	}
	for i := range rows {
		ts := t0.Add(time.Duration(i) * time.Minute)
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		v := 100 * (1.5 + math.Sin((h-6)/24*2*math.Pi)) * (1 + 0.03*r.NormFloat64())
		if _, err := fmt.Fprintf(w, "%s,%.3f\n", ts.Format("2006-01-02 15:04:05"), v); err != nil {
			return err
		}
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// The walk keeps only the fit history and a bounded trace, however long
// the input: twelve weeks through a one-week history.
func TestWalkerMemoryIsBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("walks twelve weeks")
	}
	const week = 7 * 24 * time.Hour
	w := NewWalker(Config{History: week, Options: baseline.Options{Kind: "rate"}})
	r := rand.New(rand.NewPCG(1, 1))
	t0 := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	maxHist, maxCap := 0, 0
	for i := range 12 * 7 * 1440 {
		ts := t0.Add(time.Duration(i) * time.Minute)
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		if err := w.Push(baseline.Point{T: ts, V: 100 * (1.5 + math.Sin(h/24*2*math.Pi)) * (1 + 0.03*r.NormFloat64())}); err != nil {
			t.Fatal(err)
		}
		maxHist, maxCap = max(maxHist, len(w.hist)), max(maxCap, cap(w.hist))
	}
	res, err := w.Finish()
	if err != nil {
		t.Fatal(err)
	}
	// A week of minutes plus the refit interval between trims.
	if limit := 7*1440 + 6*60 + 1; maxHist > limit || maxCap > 3*limit {
		t.Errorf("history held %d points (capacity %d), want at most %d", maxHist, maxCap, limit)
	}
	if len(res.Trace) > traceBuckets || len(res.Trace) < traceBuckets/4 {
		t.Errorf("trace of %d buckets, want ≤ %d and enough to draw", len(res.Trace), traceBuckets)
	}
	if res.Points != 12*7*1440 {
		t.Errorf("walked %d points", res.Points)
	}
}
