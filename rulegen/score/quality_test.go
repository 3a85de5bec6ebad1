package score_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
	"github.com/open-autoglm/autoglm-monitor/rulegen/backtest"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/score"
)

// detector turns a series into alert onsets.
type detector struct {
	name string
	run  func(t *testing.T, file string, pts []baseline.Point) []time.Time
}

func rulegenDetector(t *testing.T, file string, pts []baseline.Point) []time.Time {
	res, err := backtest.Walk(context.Background(), pts, backtest.Config{Options: baseline.Options{Kind: baseline.GuessKind(file)}})
	if err != nil {
		t.Errorf("%s: %v", file, err)
		return nil
	}
	if testing.Verbose() {
		t.Logf("%s model %s", file, res.Model)
	}
	on := make([]time.Time, len(res.Alerts))
	for i, a := range res.Alerts {
		on[i] = a.Start
	}
	return on
}

// staticDetector alerts outside mean ± 3σ of the probationary period, the
// way a hand-set threshold is usually chosen.
func staticDetector(t *testing.T, file string, pts []baseline.Point) []time.Time {
	n := int(math.Min(math.Floor(0.15*float64(len(pts))), 750))
	var sum, sq, c float64
	for _, p := range pts[:n] {
		if !math.IsNaN(p.V) {
			sum += p.V
			sq += p.V * p.V
			c++
		}
	}
	mean := sum / c
	sd := math.Sqrt(math.Max(sq/c-mean*mean, 0))
	return onsets(pts, func(i int) bool { return math.Abs(pts[i].V-mean) > 3*sd })
}

// zscoreDetector is the rolling mean ± 3σ of the previous day.
func zscoreDetector(t *testing.T, file string, pts []baseline.Point) []time.Time {
	var sum, sq float64
	var c, j int
	return onsets(pts, func(i int) bool {
		for pts[j].T.Before(pts[i].T.Add(-24 * time.Hour)) {
			if !math.IsNaN(pts[j].V) {
				sum -= pts[j].V
				sq -= pts[j].V * pts[j].V
				c--
			}
			j++
		}
		out := false
		if c > 30 && !math.IsNaN(pts[i].V) {
			mean := sum / float64(c)
			sd := math.Sqrt(math.Max(sq/float64(c)-mean*mean, 0))
			out = math.Abs(pts[i].V-mean) > 3*sd
		}
		if !math.IsNaN(pts[i].V) {
			sum += pts[i].V
			sq += pts[i].V * pts[i].V
			c++
		}
		return out
	})
}

// onsets applies the default policy of the series' step to a per-point test.
func onsets(pts []baseline.Point, outside func(i int) bool) []time.Time {
	p := baseline.DefaultPolicy(5 * time.Minute)
	var on []time.Time
	var firing, pending bool
	var since, last time.Time
	for i, pt := range pts {
		if outside(i) {
			last = pt.T
			if !firing {
				if !pending {
					pending, since = true, pt.T
				}
				if pt.T.Sub(since) >= p.For {
					firing, pending = true, false
					on = append(on, pt.T)
				}
			}
			continue
		}
		pending = false
		if firing && pt.T.Sub(last) >= p.KeepFiringFor {
			firing = false
		}
	}
	return on
}

type dataset struct {
	name    string
	dir     string
	windows map[string][]score.Window
}

func loadDataset(t *testing.T, name string) dataset {
	dir := testenv.Dataset(t, name)
	ws, err := score.LoadWindows(filepath.Join(dir, "combined_windows.json"))
	if err != nil {
		t.Fatal(err)
	}
	if inc := filepath.Join(dir, "incidents.json"); fileExists(inc) {
		if err := score.AttachOnsets(ws, inc); err != nil {
			t.Fatal(err)
		}
	}
	return dataset{name: name, dir: dir, windows: ws}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

type run struct {
	files   []score.File
	summary score.Summary
}

func evaluate(t *testing.T, ds dataset, d detector) run {
	names := make([]string, 0, len(ds.windows))
	for n := range ds.windows {
		names = append(names, n)
	}
	sort.Strings(names)
	files := make([]score.File, len(names))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, n := range names {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			// The repository keeps the series gzipped; window names are NAB's.
			pts, err := backtest.ReadCSV(filepath.Join(ds.dir, "data", n+".gz"))
			if err != nil {
				t.Error(err)
				return
			}
			ts := make([]time.Time, len(pts))
			for k, p := range pts {
				ts[k] = p.T
			}
			files[i] = score.ScoreFile(n, ts, d.run(t, n, pts), ds.windows[n], score.Standard)
		}()
	}
	wg.Wait()
	return run{files: files, summary: score.Summarise(files)}
}

// benign are the unlabelled benign events of llm-sli-dev, found by
// inspecting daily and hourly means: a holiday (a weekday at weekend level
// and shape) and a planned ramp (a lasting +45% step in traffic, and the
// matching rise of peak latency), each with the day after it.
var benign = map[string][][2]string{
	"llm_rate/rate_0.csv":       {{"2026-09-18", "2026-09-19"}, {"2026-09-27", "2026-09-29"}},
	"llm_rate/rate_1.csv":       {{"2026-10-07", "2026-10-09"}},
	"llm_rate/rate_2.csv":       {{"2026-10-04", "2026-10-06"}, {"2026-10-09", "2026-10-10"}},
	"llm_latency/latency_0.csv": {{"2026-09-27", "2026-09-29"}},
	"llm_latency/latency_1.csv": {{"2026-09-29", "2026-10-01"}},
	"llm_latency/latency_2.csv": {{"2026-10-04", "2026-10-06"}},
}

// benignFalse lists false onsets that fall on a benign event.
func benignFalse(files []score.File) []string {
	var out []string
	for _, f := range files {
		for _, iv := range benign[f.Name] {
			from, _ := time.Parse(time.DateOnly, iv[0])
			to, _ := time.Parse(time.DateOnly, iv[1])
			for _, o := range f.FalseOnsets {
				if !o.Before(from) && o.Before(to) {
					out = append(out, f.Name+"@"+o.Format("01-02T15:04"))
				}
			}
		}
	}
	return out
}

// TestQualityReport prints rulegen next to a static threshold and a rolling
// z-score on both development sets and asserts the targets reached.
func TestQualityReport(t *testing.T) {
	if testing.Short() {
		t.Skip("walk-forward over all development series")
	}
	dets := []detector{{"rulegen", rulegenDetector}, {"static 3σ", staticDetector}, {"rolling z-score", zscoreDetector}}
	results := map[string]map[string]run{}
	var b strings.Builder
	fmt.Fprintf(&b, "\n%-12s %-16s %8s %7s %9s %8s %10s %7s\n", "dataset", "detector", "NAB std", "recall", "false/day", "false", "med delay", "benign")
	for _, name := range []string{"llm-sli-dev", "nab-dev"} {
		ds := loadDataset(t, name)
		results[name] = map[string]run{}
		for _, d := range dets {
			r := evaluate(t, ds, d)
			results[name][d.name] = r
			s := r.summary
			fmt.Fprintf(&b, "%-12s %-16s %8.1f %7.2f %9.3f %8d %10s %7d\n", name, d.name, s.NAB, s.Recall, s.FalsePerDay, s.FalseEpisodes, s.MedianDelay, len(benignFalse(r.files)))
		}
	}
	t.Log(b.String())
	t.Logf("rulegen false alerts on the holiday / planned ramp: %v", benignFalse(results["llm-sli-dev"]["rulegen"].files))
	// Targets as measured minus a margin (see rulegen/baseline/README.md).
	// nab-dev measures about 72 and moves by about ±2 with the model-selection
	// priors; the holiday/ramp count is asserted at its measured level (one
	// latency alert on the ramp), not at zero.
	llm := results["llm-sli-dev"]["rulegen"].summary
	if llm.NAB < 96 || llm.Recall < 0.95 || llm.FalsePerDay > 0.045 || llm.MedianDelay > 10*time.Minute {
		t.Errorf("llm-sli-dev below target: %+v", llm)
	}
	if n := len(benignFalse(results["llm-sli-dev"]["rulegen"].files)); n > 1 {
		t.Errorf("%d false alerts on the holiday and planned ramps, want at most 1", n)
	}
	nab := results["nab-dev"]["rulegen"].summary
	if nab.NAB < 66 || nab.Recall < 0.8 || nab.FalsePerDay > 0.15 {
		t.Errorf("nab-dev below asserted floor: %+v", nab)
	}
	for _, ds := range []string{"llm-sli-dev", "nab-dev"} {
		me := results[ds]["rulegen"].summary.NAB
		for _, other := range []string{"static 3σ", "rolling z-score"} {
			if o := results[ds][other].summary.NAB; o >= me {
				t.Errorf("%s: %s (%.1f) not beaten by rulegen (%.1f)", ds, other, o, me)
			}
		}
	}
}

func fmtTimes(ts []time.Time) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.Format("01-02T15:04")
	}
	return strings.Join(s, " ")
}
