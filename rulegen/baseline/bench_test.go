package baseline

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// peakRSS reads VmHWM (peak resident set) from /proc/self/status in bytes.
func peakRSS() float64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return math.NaN()
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "VmHWM:") {
			kb, err := strconv.ParseFloat(strings.Fields(l)[1], 64)
			if err == nil {
				return kb * 1024
			}
		}
	}
	return math.NaN()
}

// synthSeries is a 6-week 1-minute SLI with daily/weekly shape, growth and noise.
func synthSeries(i int, start time.Time, n int) Series {
	r := rand.New(rand.NewPCG(uint64(i), 7))
	kinds := []sli.Kind{sli.KindRate, sli.KindLatency, sli.KindRatio, ""}
	kind := kinds[i%len(kinds)]
	pts := make([]Point, n)
	base := 10 + r.Float64()*500
	for j := range pts {
		t := start.Add(time.Duration(j) * time.Minute)
		h := float64(t.Hour()) + float64(t.Minute())/60
		season := 1 + 0.5*math.Sin((h-6)/24*2*math.Pi)
		if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
			season *= 0.6
		}
		v := base * season * (1 + 0.01*float64(j)/1440/7) * (1 + 0.05*r.NormFloat64())
		switch kind {
		case sli.KindLatency:
			v = 0.2 + v/base
		case sli.KindRatio:
			v = math.Abs(0.01 + 0.002*r.NormFloat64())
		}
		pts[j] = Point{T: t, V: v}
	}
	return Series{Name: fmt.Sprintf("s%d", i), Points: pts, Options: Options{Kind: kind}}
}

// BenchmarkFit1000Series fits 1,000 series of 6 weeks at 1-minute
// resolution on all cores and reports wall time and peak RSS. Series are
// generated in batches so the figure is the fitting's own footprint plus
// one batch of input, as when the service streams query results.
func BenchmarkFit1000Series(b *testing.B) {
	total, batch := benchTotal(), min(50, benchTotal())
	n := 6 * 7 * 1440
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	workers := runtime.GOMAXPROCS(0)
	for it := 0; it < b.N; it++ {
		var fitTime time.Duration
		models := map[string]int{}
		fails := 0
		for off := 0; off < total; off += batch {
			series := make([]Series, batch)
			for i := range series {
				series[i] = synthSeries(off+i, start, n)
			}
			t0 := time.Now()
			res := FitAll(context.Background(), series, workers)
			fitTime += time.Since(t0)
			for _, r := range res {
				if r.Err != nil {
					fails++
					continue
				}
				models[r.Model.Name()]++
			}
		}
		rss := peakRSS()
		b.ReportMetric(fitTime.Seconds(), "fit-s")
		b.ReportMetric(rss/(1<<20), "peak-rss-MiB")
		b.ReportMetric(float64(fitTime.Microseconds())/1000/float64(total), "ms/series")
		b.Logf("\n%-8s %-10s %-8s %-12s %-14s %s\n%-8d %-10d %-8d %-12s %-14.0f %v",
			"series", "points", "workers", "fit wall", "peak RSS MiB", "models",
			total, n, workers, fitTime.Round(time.Millisecond), rss/(1<<20), models)
		if fails > 0 {
			b.Errorf("%d fits failed", fails)
		}
	}
}

// benchTotal lets a quick run use fewer series (AUTOGLM_BENCH_SERIES).
func benchTotal() int {
	if v, err := strconv.Atoi(os.Getenv("AUTOGLM_BENCH_SERIES")); err == nil && v > 0 {
		return v
	}
	return 1000
}
