package forecast

import (
	"context"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/backtest"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// Series is the walk-forward samples of one input.
type Series struct {
	Name, Group string
	Samples     []Sample
}

// The parameter grid searched per horizon.
var (
	gammaGrid = []float64{0, 1, 2, 4, 8}
	dampGrid  = []float64{0, 0.2, 0.4, 0.6, 0.8, 1}
)

// grid is every parameter set searched (ties go to the first: the
// narrowest pool, the least damping, the smallest γ).
func grid() []Params {
	out := make([]Params, 0, len(gammaGrid)*len(dampGrid)*NumHalves)
	for _, g := range gammaGrid {
		for _, d := range dampGrid {
			for k := range NumHalves {
				out = append(out, Params{Gamma: [3]float64{g, g, g}, Damp: [3]float64{d, d, d}, Half: [3]int{k, k, k}})
			}
		}
	}
	return out
}

// scores are a series' sMAPE per horizon under every grid point (NaN
// where the series has no forecast at that horizon): one replay per grid
// point scores every horizon.
func scores(s Series, ps []Params) [3][]float64 {
	var out [3][]float64
	for hi := range Horizons {
		out[hi] = make([]float64, len(ps))
	}
	for pi, p := range ps {
		f := Replay(s.Samples, p)
		var sum [3]float64
		var n [3]int
		for i, x := range s.Samples {
			if hi := slices.Index(Horizons, x.Horizon); hi >= 0 {
				sum[hi] += smape(f[i], x.Actual)
				n[hi]++
			}
		}
		for hi := range Horizons {
			out[hi][pi] = math.NaN()
			if n[hi] > 0 {
				out[hi][pi] = sum[hi] / float64(n[hi])
			}
		}
	}
	return out
}

// pick chooses, per horizon, the grid point that minimises the mean
// per-series sMAPE over every series but skip (each series counts once,
// however long; skip < 0 leaves none out).
func pick(table [][3][]float64, ps []Params, skip int) Params {
	var p Params
	for hi := range Horizons {
		best := math.Inf(1)
		for pi, q := range ps {
			var sum float64
			var n int
			for si, t := range table {
				if si != skip && !math.IsNaN(t[hi][pi]) {
					sum += t[hi][pi]
					n++
				}
			}
			if n > 0 && sum/float64(n) < best-1e-9 {
				best = sum / float64(n)
				p.Gamma[hi], p.Damp[hi], p.Half[hi] = q.Gamma[hi], q.Damp[hi], q.Half[hi]
			}
		}
	}
	return p
}

func scoreAll(series []Series, ps []Params, workers int) [][3][]float64 {
	table := make([][3][]float64, len(series))
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, s := range series {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			table[i] = scores(s, ps)
		}()
	}
	wg.Wait()
	return table
}

// Choose picks, per horizon, the γ, damping and profile pool that minimise the mean
// per-series sMAPE over series (each series counts once, however long).
func Choose(series []Series) Params {
	ps := grid()
	return pick(scoreAll(series, ps, 1), ps, -1)
}

// Row is one series' cross-validated score.
type Row struct {
	Name, Group string
	// Params were chosen without this series.
	Params      Params
	Ours, Naive [3]float64
	N           [3]int
}

// CrossValidate scores every series with parameters chosen on all the
// others (leave one series out), so no series reports a score it helped
// tune. Each series is replayed once per grid point; the folds only
// differ in which series' scores they sum.
func CrossValidate(series []Series) []Row {
	return crossValidate(series, 1)
}

func crossValidate(series []Series, workers int) []Row {
	ps := grid()
	table := scoreAll(series, ps, workers)
	rows := make([]Row, len(series))
	for i, s := range series {
		p := pick(table, ps, i)
		r := Row{Name: s.Name, Group: s.Group, Params: p}
		for hi, h := range Horizons {
			r.Naive[hi], r.N[hi] = SMAPE(s.Samples, h, NaiveOf)
			r.Ours[hi] = math.NaN()
			if r.N[hi] > 0 {
				r.Ours[hi] = scores(Series{Samples: s.Samples}, []Params{p})[hi][0]
			}
		}
		rows[i] = r
	}
	return rows
}

// Backtest reads inputs, walks each forward and cross-validates.
func Backtest(ctx context.Context, inputs []string, kind sli.Kind, auto bool, workers int) ([]Series, []Row, error) {
	if len(inputs) < 2 {
		return nil, nil, fmt.Errorf("--forecast needs at least two --input series: parameters are chosen on the others of each")
	}
	if workers < 1 {
		workers = 1
	}
	series := make([]Series, len(inputs))
	errs := make([]error, len(inputs))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pts, err := backtest.ReadCSV(in)
			if err != nil {
				errs[i] = err
				return
			}
			k := kind
			if auto {
				k = baseline.DetectKind(pts).Kind
			}
			ss, err := Walk(ctx, pts, WalkConfig{Options: baseline.Options{Kind: k}})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", in, err)
				return
			}
			series[i] = Series{Name: strings.TrimSuffix(strings.TrimSuffix(filepath.Base(in), ".gz"), ".csv"),
				Group: filepath.Base(filepath.Dir(in)), Samples: ss}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	return series, crossValidate(series, workers), nil
}

// Summary is the mean of rows' per-series sMAPE per horizon.
func Summary(rows []Row) (ours, naive [3]float64) {
	for hi := range Horizons {
		var n int
		for _, r := range rows {
			if r.N[hi] == 0 {
				continue
			}
			ours[hi] += r.Ours[hi]
			naive[hi] += r.Naive[hi]
			n++
		}
		if n > 0 {
			ours[hi] /= float64(n)
			naive[hi] /= float64(n)
		} else {
			ours[hi], naive[hi] = math.NaN(), math.NaN()
		}
	}
	return ours, naive
}

func gain(ours, naive float64) string {
	if math.IsNaN(ours) || math.IsNaN(naive) || naive == 0 {
		return "–"
	}
	return fmt.Sprintf("%+.0f %%", 100*(naive-ours)/naive)
}

// WriteTable prints the cross-validated sMAPE per series, per group and
// over all series, ours against seasonal-naive, and the parameters chosen
// on all inputs.
func WriteTable(w io.Writer, series []Series, rows []Row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	head := "series\tgroup\t"
	for _, h := range Horizons {
		head += fmt.Sprintf("%s ours\t%s naive\tbetter\t", short(h), short(h))
	}
	fmt.Fprintln(tw, head+"forecasts\t")
	line := func(name, group string, ours, naive [3]float64, n int) {
		s := name + "\t" + group + "\t"
		for hi := range Horizons {
			s += fmt.Sprintf("%.2f\t%.2f\t%s\t", ours[hi], naive[hi], gain(ours[hi], naive[hi]))
		}
		fmt.Fprintf(tw, "%s%d\t\n", s, n)
	}
	var groups []string
	byGroup := map[string][]Row{}
	for _, r := range rows {
		if _, ok := byGroup[r.Group]; !ok {
			groups = append(groups, r.Group)
		}
		byGroup[r.Group] = append(byGroup[r.Group], r)
		line(r.Name, r.Group, r.Ours, r.Naive, r.N[0]+r.N[1]+r.N[2])
	}
	for _, g := range groups {
		o, n := Summary(byGroup[g])
		line("mean", g, o, n, len(byGroup[g]))
	}
	o, n := Summary(rows)
	line("mean", "all", o, n, len(rows))
	if err := tw.Flush(); err != nil {
		return err
	}
	p := Choose(series)
	_, err := fmt.Fprintf(w, "\nsMAPE (%%) per series, leave-one-series-out: each series is scored with the weights chosen on the others.\n"+
		"chosen on all inputs: gamma %v, level damping %v, profile ± %v (horizons %s)\n", p.Gamma, p.Damp, halves(p), horizonList())
	return err
}

func short(h time.Duration) string { return fmt.Sprintf("%dh", int(h.Hours())) }

func horizonList() string {
	parts := make([]string, len(Horizons))
	for i, h := range Horizons {
		parts[i] = short(h)
	}
	return strings.Join(parts, ", ")
}

func halves(p Params) []time.Duration {
	out := make([]time.Duration, len(p.Half))
	for i, k := range p.Half {
		out[i] = ProfileHalves[k]
	}
	return out
}
