package rules

import (
	"fmt"
	"math"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// cpuTime is the process' user+system CPU time: on a shared machine wall
// time says more about the neighbours than about the code.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// input1000 spreads 1,000 series over the SLIs (200 each).
func input1000(mode string) Input {
	in := fixture(mode)
	in.MaxSeries = 1000
	for i := range in.SLIs {
		in.SLIs[i].Series = nil
		for j := 0; j < 200; j++ {
			l := map[string]string{"job": "autoglm-exporter", sli.LabelRoute: "/v1/route/" + strconv.Itoa(j)}
			if len(in.SLIs[i].By) == 3 {
				l[sli.LabelModel] = "model-" + strconv.Itoa(j%7)
			}
			v := 1 + float64(j)
			in.SLIs[i].Series = append(in.SLIs[i].Series, Series{Labels: l, Fitted: j%10 != 0,
				Lower: v * 0.5, Expected: v, Upper: v*1.5 + math.Pi/1000,
				Policy: Policy{For: 5 * time.Minute, KeepFiringFor: 10 * time.Minute}})
		}
	}
	return in
}

// BenchmarkBuild1000Series: generate, render and validate (rulefmt + PromQL
// parser) the rules for 1,000 series. Target: ≤ 5 s.
func BenchmarkBuild1000Series(b *testing.B) {
	type row struct {
		mode         string
		rules, bytes int
		perBuild     time.Duration
		cpu          time.Duration
	}
	var rows []row
	for _, mode := range []string{ModeSeries, ModeLiteral} {
		in := input1000(mode)
		b.Run(mode, func(b *testing.B) {
			var set *Set
			var err error
			cpu0 := cpuTime()
			start := time.Now()
			for i := 0; i < b.N; i++ {
				if set, err = Build(in); err != nil {
					b.Fatal(err)
				}
			}
			per := time.Since(start) / time.Duration(b.N)
			cpu := (cpuTime() - cpu0) / time.Duration(b.N)
			n, size := 0, 0
			for _, g := range set.Groups() {
				n += len(g.Rules)
			}
			for _, r := range set.Rendered {
				size += len(r)
			}
			b.ReportMetric(per.Seconds(), "s/build")
			b.ReportMetric(cpu.Seconds(), "cpu-s/build")
			b.ReportMetric(float64(n), "rules")
			rows = append(rows, row{mode, n, size, per, cpu})
		})
	}
	fmt.Printf("\n1,000 series: generate + render + validate (rulefmt, PromQL, templates)\n")
	fmt.Printf("%-8s %8s %10s %12s %10s %8s\n", "mode", "rules", "bytes", "wall", "cpu", "target")
	for _, r := range rows {
		fmt.Printf("%-8s %8d %10d %12s %10s %8s\n", r.mode, r.rules, r.bytes, r.perBuild.Round(time.Millisecond), r.cpu.Round(time.Millisecond), "5s")
	}
}
