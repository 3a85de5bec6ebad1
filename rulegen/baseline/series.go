package baseline

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// series is history downsampled to fixed buckets in transformed space.
type series struct {
	step    time.Duration
	stepSec int64
	t0      int64     // unix seconds of the start of bucket 0 (aligned to step)
	y       []float64 // transformed bucket means; NaN where missing or excluded
	tr      transform
	k       float64
	budget  float64   // Options.Budget
	end     time.Time // last sample
	// noise is a robust scale of bucket-to-bucket changes, common to all
	// candidates so their held-out errors can be capped alike.
	noise float64
	// spread is the 1st–99th percentile range in transformed space.
	spread float64
}

func spread(y []float64) float64 {
	v := make([]float64, 0, len(y))
	for _, x := range y {
		if !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	if len(v) < 2 {
		return 0
	}
	sort.Float64s(v)
	return v[int(0.99*float64(len(v)-1))] - v[int(0.01*float64(len(v)-1))]
}

func (s *series) timeOf(i int) time.Time { return time.Unix(s.t0+int64(i)*s.stepSec, 0).UTC() }

func rawStep(h []Point) time.Duration {
	n := len(h)
	if n < 2 {
		return 0
	}
	// The median gap over a sample of the series is robust to gaps and jitter.
	stride := 1 + n/512
	gaps := make([]float64, 0, n/stride+1)
	for i := stride; i < n; i += stride {
		gaps = append(gaps, float64(h[i].T.Sub(h[i-1].T)))
	}
	sort.Float64s(gaps)
	return time.Duration(gaps[len(gaps)/2])
}

// prepare buckets the history (mean of raw values per bucket), applies the
// exclusion windows and transforms.
func prepare(history []Point, opts Options) (*series, error) {
	if len(history) < 2 {
		return nil, ErrNoHistory
	}
	step := opts.Step
	if step <= 0 {
		step = defaultStep
		if rs := rawStep(history); rs > step {
			step = rs
		}
	}
	stepSec := int64(step / time.Second)
	if stepSec <= 0 {
		return nil, fmt.Errorf("step %s shorter than a second", step)
	}
	first, last := history[0].T.Unix(), history[len(history)-1].T.Unix()
	if last < first {
		return nil, fmt.Errorf("history not ordered by time: %s before %s", history[len(history)-1].T, history[0].T)
	}
	t0 := floorDiv(first, stepSec) * stepSec
	n := int((last-t0)/stepSec) + 1
	if n < minBuckets {
		return nil, ErrNoHistory
	}
	sum := make([]float64, n)
	cnt := make([]float64, n)
	traffic := trafficLookup(opts.Traffic)
	for _, p := range history {
		if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
			continue
		}
		i := int((p.T.Unix() - t0) / stepSec)
		if i < 0 || i >= n {
			continue
		}
		if opts.MinTraffic > 0 && traffic != nil && traffic(p.T) < opts.MinTraffic {
			continue
		}
		sum[i] += p.V
		cnt[i]++
	}
	vals := sum // reuse: becomes raw bucket means
	have := 0
	for i := range vals {
		if cnt[i] == 0 {
			vals[i] = math.NaN()
			continue
		}
		vals[i] /= cnt[i]
		have++
	}
	if have < minBuckets {
		return nil, ErrNoHistory
	}
	for _, w := range opts.Exclude {
		a := int(floorDiv(w.Start.Unix()-t0, stepSec))
		b := int(floorDiv(w.End.Unix()-t0, stepSec))
		for i := max(a, 0); i <= b && i < n; i++ {
			vals[i] = math.NaN()
		}
	}
	tr := newTransform(opts.Kind, vals)
	for i, v := range vals {
		if !math.IsNaN(v) {
			vals[i] = tr.fwd(v)
		}
	}
	k := opts.K
	if k <= 0 {
		k = defaultK
	}
	budget := opts.Budget
	if budget <= 0 {
		budget = DefaultBudget(opts.Kind)
	}
	s := &series{step: step, stepSec: stepSec, t0: t0, y: vals, tr: tr, k: k, budget: budget, end: history[len(history)-1].T}
	s.noise = diffScale(vals)
	// Quantised or mostly-constant series have a near-zero noise estimate;
	// a band narrower than 1% of the observed range only ever pages on rounding.
	s.spread = spread(vals)
	return s, nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}

// trafficLookup returns the traffic value in effect at t (last sample at or before t).
func trafficLookup(tr []Point) func(time.Time) float64 {
	if len(tr) == 0 {
		return nil
	}
	return func(t time.Time) float64 {
		i := sort.Search(len(tr), func(i int) bool { return tr[i].T.After(t) }) - 1
		if i < 0 {
			return tr[0].V
		}
		return tr[i].V
	}
}

// diffScale is the MAD of first differences / √2: the noise level of a
// series regardless of its shape.
func diffScale(y []float64) float64 {
	d := make([]float64, 0, len(y))
	prev := math.NaN()
	for _, v := range y {
		if !math.IsNaN(v) && !math.IsNaN(prev) {
			d = append(d, math.Abs(v-prev))
		}
		prev = v
	}
	if len(d) == 0 {
		return 0
	}
	return 1.4826 * median(d) / math.Sqrt2
}

// median reorders buf and returns its median (NaN when empty) in linear
// expected time: medians are the inner loop of every fit.
func median(buf []float64) float64 {
	n := len(buf)
	if n == 0 {
		return math.NaN()
	}
	if n <= 16 {
		sort.Float64s(buf)
		if n%2 == 1 {
			return buf[n/2]
		}
		return (buf[n/2-1] + buf[n/2]) / 2
	}
	hi := nth(buf, n/2)
	if n%2 == 1 {
		return hi
	}
	// The lower middle is the largest value left of n/2 after partitioning.
	lo := buf[0]
	for _, v := range buf[1 : n/2] {
		if v > lo {
			lo = v
		}
	}
	return (lo + hi) / 2
}

// nth partially orders a so that a[k] is the k-th smallest, everything left
// of it is <= and everything right >= (Hoare quickselect, median-of-three pivot).
func nth(a []float64, k int) float64 {
	lo, hi := 0, len(a)-1
	for hi > lo {
		mid := lo + (hi-lo)/2
		if a[mid] < a[lo] {
			a[mid], a[lo] = a[lo], a[mid]
		}
		if a[hi] < a[lo] {
			a[hi], a[lo] = a[lo], a[hi]
		}
		if a[hi] < a[mid] {
			a[hi], a[mid] = a[mid], a[hi]
		}
		pivot := a[mid]
		i, j := lo, hi
		for i <= j {
			for a[i] < pivot {
				i++
			}
			for a[j] > pivot {
				j--
			}
			if i <= j {
				a[i], a[j] = a[j], a[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return a[k]
		}
	}
	return a[k]
}

// mad is the scaled median absolute deviation around c (buf is clobbered).
func mad(buf []float64, c float64) float64 {
	for i, v := range buf {
		buf[i] = math.Abs(v - c)
	}
	return 1.4826 * median(buf)
}
