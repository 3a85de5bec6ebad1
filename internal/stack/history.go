package stack

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
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
	// Noise is the relative standard deviation of the noise. It is
	// autocorrelated from minute to minute like the 5-minute windows of a
	// recording rule, so 5-minute means keep most of it, as live ones do.
	Noise float64
}

// noiseCorrelation is the minute-to-minute correlation of the noise: rate
// windows of 5 minutes that overlap by 4.
const noiseCorrelation = 0.8

// seasonal is 1 on average, higher in the working day and lower at night and on weekends.
func seasonal(t time.Time, amplitude float64) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	daily := 1 + amplitude*math.Sin(2*math.Pi*(h-8)/24)
	if wd := t.Weekday(); wd == time.Saturday || wd == time.Sunday {
		daily *= 1 - amplitude/2
	}
	return daily
}

// WriteHistory writes OpenMetrics text of series over [from, to) for
// promtool tsdb create-blocks-from openmetrics; end is the moment the series
// equal their Now values.
func WriteHistory(w io.Writer, series []HistorySeries, from, to, end time.Time, step time.Duration, rng *rand.Rand) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	byName := map[string][]HistorySeries{}
	var names []string
	for _, s := range series {
		if _, ok := byName[s.Name]; !ok {
			names = append(names, s.Name)
		}
		byName[s.Name] = append(byName[s.Name], s)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, err := fmt.Fprintf(bw, "# TYPE %s gauge\n", name); err != nil {
			return fmt.Errorf("write history: %w", err)
		}
		for _, s := range byName[name] {
			labels := formatLabels(s.Labels)
			ref := seasonal(end, s.Amplitude)
			e := rng.NormFloat64()
			for t := from; t.Before(to); t = t.Add(step) {
				e = noiseCorrelation*e + math.Sqrt(1-noiseCorrelation*noiseCorrelation)*rng.NormFloat64()
				v := s.Now * seasonal(t, s.Amplitude) / ref
				v = math.Max(v*(1+s.Noise*e), 0)
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

// BackfillHistory writes span of history ending at end into TSDB blocks in
// out, using promtool. promtool 2.x re-reads its whole input once per
// two-hour block it creates (a week took minutes on two cores), so the
// history is cut into one input file per two-hour window and converted with
// two promtool processes at a time.
func BackfillHistory(ctx context.Context, promtool, out string, series []HistorySeries, end time.Time, span, step time.Duration, seed uint64) (int, error) {
	if len(series) == 0 {
		return 0, fmt.Errorf("no series to backfill")
	}
	if step <= 0 || span < step {
		return 0, fmt.Errorf("backfill span %s must be at least one step %s", span, step)
	}
	src := out + ".om"
	for _, d := range []string{out, src} {
		if err := os.RemoveAll(d); err != nil {
			return 0, fmt.Errorf("clear %s: %w", d, err)
		}
		if err := os.MkdirAll(d, 0o755); err != nil {
			return 0, fmt.Errorf("create %s: %w", d, err)
		}
	}
	const window = 2 * time.Hour
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	start := end.Add(-span).Truncate(step)
	var files []string
	for from := start.Truncate(window); from.Before(end); from = from.Add(window) {
		lo, hi := from, from.Add(window)
		if lo.Before(start) {
			lo = start
		}
		if hi.After(end) {
			hi = end
		}
		path := filepath.Join(src, fmt.Sprintf("%d.om", from.Unix()))
		f, err := os.Create(path)
		if err != nil {
			return 0, fmt.Errorf("create history file: %w", err)
		}
		err = WriteHistory(f, series, lo, hi, end, step, rng)
		if cerr := f.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close history file: %w", cerr)
		}
		if err != nil {
			return 0, err
		}
		files = append(files, path)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	sem := make(chan struct{}, 2)
	for _, f := range files {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", "--quiet", f, out)
			if b, err := cmd.CombinedOutput(); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("promtool tsdb create-blocks-from openmetrics %s: %w\n%s", f, err, b))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	if err := os.RemoveAll(src); err != nil {
		return 0, fmt.Errorf("remove history files: %w", err)
	}
	blocks, err := os.ReadDir(out)
	if err != nil {
		return 0, fmt.Errorf("read backfilled blocks: %w", err)
	}
	return len(blocks), nil
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
