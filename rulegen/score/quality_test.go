package score_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
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

// variant is one setting of the parameters cross-validation chooses among.
type variant struct {
	name string
	// budget is the false-alert budget (baseline.Options.Budget).
	budget float64
}

// variants are the candidate parameter settings of rulegen. Cross-validation
// picks one on the training folds; the in-sample figure picks one on all files.
var variants = selected([]variant{
	{"budget0.05", 0.05},
	{"budget0.1", 0.1},
	{"budget0.2", 0.2},
	{"budget0.4", 0.4},
})

// selected keeps the variants named in AUTOGLM_QUALITY_VARIANTS (all when
// unset), to look at one setting quickly.
func selected(vs []variant) []variant {
	only := os.Getenv("AUTOGLM_QUALITY_VARIANTS")
	if only == "" {
		return vs
	}
	names := strings.Split(only, ",")
	return slices.DeleteFunc(vs, func(v variant) bool { return !slices.Contains(names, v.name) })
}

func rulegenDetector(ds dataset, v variant) func(t *testing.T, file string, pts []baseline.Point) []time.Time {
	return func(t *testing.T, file string, pts []baseline.Point) []time.Time {
		cfg := backtest.Config{Options: baseline.Options{Kind: ds.kind(file, pts), Budget: v.budget}}
		res, err := backtest.Walk(context.Background(), pts, cfg)
		if err != nil {
			t.Errorf("%s: %v", file, err)
			return nil
		}
		on := make([]time.Time, len(res.Alerts))
		for i, a := range res.Alerts {
			on[i] = a.Start
		}
		return on
	}
}

// sliKind is the kind the service knows for each SLI of llm-sli-dev (the
// folders are the SLIs); series of unknown meaning are judged by their values.
func sliKind(file string, _ []baseline.Point) sli.Kind {
	switch category(file) {
	case "llm_rate":
		return sli.KindRate
	case "llm_latency":
		return sli.KindLatency
	case "llm_errors":
		return sli.KindRatio
	}
	return ""
}

func detectKind(_ string, pts []baseline.Point) sli.Kind { return baseline.DetectKind(pts).Kind }

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
		if c >= 12 && !math.IsNaN(pts[i].V) {
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
	names   []string // sorted file names (NAB's, without .gz)
	// kind is what the backtest is told about a series.
	kind func(file string, pts []baseline.Point) sli.Kind
	// resample, when set, averages the series into buckets of that width
	// first: the same labels at another sampling rate.
	resample time.Duration
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
	names := make([]string, 0, len(ws))
	for n := range ws {
		names = append(names, n)
	}
	sort.Strings(names)
	return dataset{name: name, dir: dir, windows: ws, names: names, kind: detectKind}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// category is the NAB category of a file (its folder).
func category(file string) string { return path.Dir(file) }

// evaluate scores every detector on every file of ds, two series at a time
// (the machine is shared), and returns the files per detector in ds.names order.
func evaluate(t *testing.T, ds dataset, dets []detector) map[string][]score.File {
	out := make(map[string][]score.File, len(dets))
	for _, d := range dets {
		out[d.name] = make([]score.File, len(ds.names))
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, n := range ds.names {
		// The repository keeps the series gzipped; window names are NAB's.
		pts, err := backtest.ReadCSV(filepath.Join(ds.dir, "data", n+".gz"))
		if err != nil {
			t.Fatal(err)
		}
		if ds.resample > 0 {
			pts = resample(pts, ds.resample)
		}
		ts := make([]time.Time, len(pts))
		for k, p := range pts {
			ts[k] = p.T
		}
		for _, d := range dets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				out[d.name][i] = score.ScoreFile(n, ts, d.run(t, n, pts), ds.windows[n], score.Standard)
			}()
		}
	}
	wg.Wait()
	return out
}

// resample averages pts into buckets of width d (timestamp: bucket start).
func resample(pts []baseline.Point, d time.Duration) []baseline.Point {
	var out []baseline.Point
	var sum float64
	var n int
	var cur time.Time
	flush := func() {
		if n > 0 {
			out = append(out, baseline.Point{T: cur, V: sum / float64(n)})
		}
	}
	for _, p := range pts {
		if b := p.T.Truncate(d); !b.Equal(cur) {
			flush()
			cur, sum, n = b, 0, 0
		}
		if !math.IsNaN(p.V) {
			sum += p.V
			n++
		}
	}
	flush()
	return out
}

// selectVariant is the variant with the best NAB score on the files keep
// accepts (ties: the earlier variant).
func selectVariant(ds dataset, byVariant map[string][]score.File, keep func(file string) bool) string {
	best, bestNAB := "", math.Inf(-1)
	for _, v := range variants {
		var fs []score.File
		for i, n := range ds.names {
			if keep(n) {
				fs = append(fs, byVariant[v.name][i])
			}
		}
		if s := score.Summarise(fs); s.NAB > bestNAB+1e-9 {
			best, bestNAB = v.name, s.NAB
		}
	}
	return best
}

// crossValidate scores every file with the variant chosen on the files
// outside its fold (fold names the fold of a file).
func crossValidate(ds dataset, byVariant map[string][]score.File, fold func(file string) string) ([]score.File, map[string]string) {
	chosen := map[string]string{}
	out := make([]score.File, len(ds.names))
	for i, n := range ds.names {
		f := fold(n)
		v, ok := chosen[f]
		if !ok {
			v = selectVariant(ds, byVariant, func(m string) bool { return fold(m) != f })
			chosen[f] = v
		}
		out[i] = byVariant[v][i]
	}
	return out, chosen
}

// figures are the four numbers the report prints for a set of files.
func figures(s score.Summary) string {
	nab := "    –"
	if s.Windows > 0 {
		nab = fmt.Sprintf("%5.1f", s.NAB)
	}
	rec := "   –"
	if s.Windows > 0 {
		rec = fmt.Sprintf("%4.2f", s.Recall)
	}
	return fmt.Sprintf("%s %s %6.3f %8s", nab, rec, s.FalsePerDay, s.MedianDelay.Round(time.Second))
}

func pick(ds dataset, files []score.File, keep func(string) bool) []score.File {
	var out []score.File
	for i, n := range ds.names {
		if keep(n) {
			out = append(out, files[i])
		}
	}
	return out
}

// quality is one data set's report: per category and in total, the
// cross-validated figures (leave one category out, leave one file out)
// beside the in-sample ones.
type quality struct {
	inSample, loco, lofo score.Summary
	inFiles, locoFiles   []score.File
	// chosen is the variant chosen on all files.
	chosen variant
}

func report(t *testing.T, b *strings.Builder, ds dataset, byVariant map[string][]score.File) quality {
	all := func(string) bool { return true }
	inV := selectVariant(ds, byVariant, all)
	in := byVariant[inV]
	loco, locoChosen := crossValidate(ds, byVariant, category)
	lofo, _ := crossValidate(ds, byVariant, func(f string) string { return f })
	var cats []string
	seen := map[string]bool{}
	for _, n := range ds.names {
		if c := category(n); !seen[c] {
			seen[c] = true
			cats = append(cats, c)
		}
	}
	fmt.Fprintf(b, "\n%s (in-sample variant %q; leave-one-category-out chose %v)\n", ds.name, inV, locoChosen)
	fmt.Fprintf(b, "%-24s | %-30s | %-30s | %-30s\n", "", "in-sample", "cross-validated: category out", "cross-validated: file out")
	fmt.Fprintf(b, "%-24s | %-30s | %-30s | %-30s\n", "category", "  NAB recall false/d    delay", "  NAB recall false/d    delay", "  NAB recall false/d    delay")
	row := func(name string, keep func(string) bool) {
		fmt.Fprintf(b, "%-24s | %s | %s | %s\n", name,
			figures(score.Summarise(pick(ds, in, keep))),
			figures(score.Summarise(pick(ds, loco, keep))),
			figures(score.Summarise(pick(ds, lofo, keep))))
	}
	for _, c := range cats {
		row(c, func(f string) bool { return category(f) == c })
	}
	row("all", all)
	for _, v := range variants {
		fmt.Fprintf(b, "%-24s | %s   (every file, this setting)\n", "  "+v.name, figures(score.Summarise(byVariant[v.name])))
	}
	q := quality{inSample: score.Summarise(in), loco: score.Summarise(loco), lofo: score.Summarise(lofo), inFiles: in, locoFiles: loco}
	for _, v := range variants {
		if v.name == inV {
			q.chosen = v
		}
	}
	return q
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

// TestQualityReport prints, per data set and category, rulegen's
// cross-validated figures beside the in-sample ones, and two reference
// detectors, and asserts the targets on the cross-validated figures.
func TestQualityReport(t *testing.T) {
	if testing.Short() {
		t.Skip("walk-forward over all development series")
	}
	var b strings.Builder
	q := map[string]quality{}
	refs := map[string]map[string]score.Summary{}
	llm := loadDataset(t, "llm-sli-dev")
	llm.kind = sliKind
	nab := loadDataset(t, "nab-dev")
	nabHourly := nab
	nabHourly.name, nabHourly.resample = "nab-dev@1h", time.Hour
	for _, ds := range []dataset{llm, nab, nabHourly} {
		if only := os.Getenv("AUTOGLM_QUALITY_SETS"); only != "" && !slices.Contains(strings.Split(only, ","), ds.name) {
			continue
		}
		dets := []detector{{"static 3σ", staticDetector}, {"rolling z-score", zscoreDetector}}
		for _, v := range variants {
			dets = append(dets, detector{"rulegen/" + v.name, rulegenDetector(ds, v)})
		}
		res := evaluate(t, ds, dets)
		byVariant := map[string][]score.File{}
		for _, v := range variants {
			byVariant[v.name] = res["rulegen/"+v.name]
		}
		q[ds.name] = report(t, &b, ds, byVariant)
		refs[ds.name] = map[string]score.Summary{}
		for _, d := range dets[:2] {
			refs[ds.name][d.name] = score.Summarise(res[d.name])
			fmt.Fprintf(&b, "%-24s | %s (no parameters: in-sample = cross-validated)\n", d.name, figures(refs[ds.name][d.name]))
		}
		if os.Getenv("AUTOGLM_QUALITY_FILES") != "" {
			for _, v := range variants {
				for i, n := range ds.names {
					f := byVariant[v.name][i]
					fmt.Fprintf(&b, "  %-10s %-48s windows %d detected %d delays %v false %d %s\n", v.name, n, f.Windows, f.Detected, f.Delays, f.FalseEpisodes, fmtTimes(f.FalseOnsets))
				}
			}
		}
	}
	t.Log(b.String())
	t.Logf("rulegen false alerts on the holiday / planned ramp (category out): %v", benignFalse(q["llm-sli-dev"].locoFiles))
	if len(variants) < 4 || len(q) < 3 {
		return // a partial run (AUTOGLM_QUALITY_*) checks nothing
	}
	// The product's default budget is the setting chosen on all files of
	// the development set of its kind: change one, change the other.
	for name, kind := range map[string]sli.Kind{"llm-sli-dev": sli.KindRate, "nab-dev": ""} {
		if c, d := q[name].chosen.budget, baseline.DefaultBudget(kind); c != d {
			t.Errorf("%s chooses budget %g, but baseline.DefaultBudget(%q) is %g", name, c, kind, d)
		}
	}
	// Targets on the cross-validated figures, as measured minus a margin
	// (see rulegen/baseline/README.md), and cross-validated within 5 points
	// of in-sample on both development sets.
	llmCV, nabCV := q["llm-sli-dev"].loco, q["nab-dev"].loco
	if llmCV.NAB < 96 || llmCV.Recall < 0.95 || llmCV.FalsePerDay > 0.04 || llmCV.MedianDelay > 5*time.Minute {
		t.Errorf("llm-sli-dev cross-validated below target: %+v", llmCV)
	}
	if n := len(benignFalse(q["llm-sli-dev"].locoFiles)); n > 1 {
		t.Errorf("%d false alerts on the holiday and planned ramps, want at most 1", n)
	}
	if nabCV.NAB < 66 || nabCV.Recall < 0.75 || nabCV.FalsePerDay > 0.1 {
		t.Errorf("nab-dev cross-validated below the asserted floor: %+v", nabCV)
	}
	for name, x := range q {
		if d := x.inSample.NAB - x.loco.NAB; d > 5 && name != "nab-dev@1h" {
			t.Errorf("%s: cross-validated NAB %.1f is %.1f below in-sample %.1f (want within 5)", name, x.loco.NAB, d, x.inSample.NAB)
		}
		for ref, s := range refs[name] {
			if s.NAB >= x.loco.NAB {
				t.Errorf("%s: %s (%.1f) not beaten by rulegen (%.1f cross-validated)", name, ref, s.NAB, x.loco.NAB)
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
