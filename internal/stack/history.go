package stack

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"
)

// HistorySeries is one synthetic SLI series to backfill: its value follows a
// daily and weekly shape scaled so that it equals Now at the present moment,
// which lets baselines fitted on it agree with the live traffic from the first minute.
type HistorySeries struct {
	Name   string
	Labels map[string]string
	// Now is the value the series has at the end of the history.
	Now float64
	// Amplitude is the relative daily swing (0.3 = ±30%).
	Amplitude float64
	// Noise is the relative standard deviation of the point-to-point noise.
	Noise float64
}

// seasonal is 1 on average, higher in the working day and lower at night and on weekends.
func seasonal(t time.Time, amplitude float64) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	daily := 1 + amplitude*math.Sin(2*math.Pi*(h-8)/24)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		daily *= 1 - amplitude/2
	}
	return daily
}

// WriteHistory writes OpenMetrics text for promtool tsdb create-blocks-from openmetrics.
func WriteHistory(w io.Writer, series []HistorySeries, end time.Time, span, step time.Duration, seed uint64) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	byName := map[string][]HistorySeries{}
	var names []string
	for _, s := range series {
		if _, ok := byName[s.Name]; !ok {
			names = append(names, s.Name)
		}
		byName[s.Name] = append(byName[s.Name], s)
	}
	sort.Strings(names)
	start := end.Add(-span).Truncate(step)
	for _, name := range names {
		if _, err := fmt.Fprintf(bw, "# TYPE %s gauge\n", name); err != nil {
			return fmt.Errorf("write history: %w", err)
		}
		for _, s := range byName[name] {
			labels := formatLabels(s.Labels)
			ref := seasonal(end, s.Amplitude)
			for t := start; !t.After(end); t = t.Add(step) {
				v := s.Now * seasonal(t, s.Amplitude) / ref
				v *= 1 + s.Noise*rng.NormFloat64()
				if v < 0 {
					v = 0
				}
				if _, err := fmt.Fprintf(bw, "%s%s %g %d\n", name, labels, v, t.Unix()); err != nil {
					return fmt.Errorf("write history: %w", err)
				}
			}
		}
	}
	if _, err := io.WriteString(bw, "# EOF\n"); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("write history: %w", err)
	}
	return nil
}

func formatLabels(l map[string]string) string {
	if len(l) == 0 {
		return ""
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%s=%q", k, l[k])
	}
	b.WriteByte('}')
	return b.String()
}
