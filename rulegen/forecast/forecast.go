// Package forecast predicts request rates hours ahead and tells when a
// series is expected to cross a limit (alert_rules.qps_threshold). A
// forecast blends three seasonal views of the series: the expectation of
// the baseline model rulegen fits anyway (its seasonal shape at its
// current, refreshed level); a robust recent profile — the median of the
// same time of day over the last two weeks, scaled by how far the last two
// hours run above or below that profile, damped with the horizon; and the
// median of the same time of day on the same weekday over the last four
// weeks. Each view weighs by its own recent record; how decisively, the
// damping and the recent profile's pool (± 1, 2 or 3 h) per horizon were
// chosen by leave-one-series-out cross-validation (Walk, CrossValidate,
// README.md).
package forecast

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// Horizons are the lead times forecasts are published and scored for.
var Horizons = []time.Duration{time.Hour, 6 * time.Hour, 24 * time.Hour}

// Step is the resolution of a forecast curve.
const Step = 5 * time.Minute

const (
	day = 24 * time.Hour
	// profileDays is how far back the recent profile pools the same time
	// of day (± one of ProfileHalves).
	profileDays = 14
	// weekdayWeeks is the same weekday's pool: the same time of day ± an
	// hour on that weekday over the last four weeks.
	weekdayWeeks = 4
	weekdayHalf  = time.Hour
	// recentSpan is how much of the latest data sets the level ratio.
	recentSpan = 2 * time.Hour
)

// ProfileHalves are the recent profile's candidate pools: the same time of
// day ± each of these. A sparse, noisy series wants a wide pool, a smooth
// one with a sharp daily shape a narrow one; Params.Half picks per horizon.
var ProfileHalves = [...]time.Duration{time.Hour, 2 * time.Hour, 3 * time.Hour}

// NumHalves is the number of candidate profile pools.
const NumHalves = len(ProfileHalves)

// Params steer the blend per horizon (interpolated linearly in between).
type Params struct {
	// Gamma sets how decisively the blend follows the view that forecast
	// this series better lately: a view's weight is proportional to e^-γ,
	// e its sMAPE over the last week of matured forecasts (with two views,
	// the model's weight is eP^γ / (eM^γ + eP^γ); γ = 0: an even blend).
	Gamma [3]float64
	// Damp is the exponent of the recent level ratio carried to the horizon
	// (0: the profile as it is; 1: the whole deviation persists).
	Damp [3]float64
	// Half indexes ProfileHalves per horizon (the nearest scored horizon's
	// choice applies in between).
	Half [3]int
}

// DefaultParams were chosen by leave-one-series-out cross-validation over
// the development series; `autoglm-rulegen backtest --forecast` prints the
// choice made on all of them ("chosen on all inputs"), which these are.
var DefaultParams = Params{Gamma: [3]float64{8, 4, 8}, Damp: [3]float64{0.6, 0, 0.4}, Half: [3]int{0, 2, 0}}

// Window is how far back the views' errors are averaged.
const Window = 7 * day

func interp(v [3]float64, h time.Duration) float64 {
	if h <= Horizons[0] {
		return v[0]
	}
	for i := 1; i < len(Horizons); i++ {
		if h <= Horizons[i] {
			f := float64(h-Horizons[i-1]) / float64(Horizons[i]-Horizons[i-1])
			return v[i-1] + f*(v[i]-v[i-1])
		}
	}
	return v[len(v)-1]
}

// ProfileView is the recent profile scaled by the damped level ratio.
func (p Params) ProfileView(h time.Duration, profile, ratio float64) float64 {
	if !math.IsNaN(profile) && !math.IsNaN(ratio) && ratio > 0 {
		return profile * math.Pow(ratio, interp(p.Damp, h))
	}
	return profile
}

// The views a forecast blends, in the order of Views.
const (
	// ViewModel is the baseline model's expectation.
	ViewModel = iota
	// ViewProfile is the recent profile of every day, level-adjusted.
	ViewProfile
	// ViewWeekday is the recent profile of the same weekday.
	ViewWeekday
	// NumViews is the number of views.
	NumViews
)

// Values are the views of s under p (NaN where a view has no data).
func (p Params) Values(s Sample) [NumViews]float64 {
	k := p.Half[horizonIndex(s.Horizon)]
	return [NumViews]float64{s.Model, p.ProfileView(s.Horizon, s.Profile[k], s.Ratio[k]), s.Weekday}
}

// Weights are the views' shares at horizon h given their recent sMAPE:
// each present view weighs e^-γ, so γ = 0 blends them evenly and a large γ
// follows the view with the better record. A present view without a record
// yet counts with the mean error of those that have one (every view with
// none: an even blend). Absent views weigh nothing.
func (p Params) Weights(h time.Duration, errs [NumViews]float64, present [NumViews]bool) [NumViews]float64 {
	var known, n float64
	for i, e := range errs {
		if present[i] && !math.IsNaN(e) {
			known += e
			n++
		}
	}
	g := interp(p.Gamma, h)
	var w [NumViews]float64
	var sum float64
	for i, e := range errs {
		if !present[i] {
			continue
		}
		switch {
		case n == 0:
			w[i] = 1
		case math.IsNaN(e):
			w[i] = math.Pow(known/n+1e-9, -g)
		default:
			w[i] = math.Pow(e+1e-9, -g)
		}
		sum += w[i]
	}
	if sum == 0 {
		return w
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// Combine is the forecast from the views with weights w (NaN when no view
// is present).
func Combine(views, w [NumViews]float64) float64 {
	var v, sum float64
	for i, x := range views {
		if !math.IsNaN(x) && w[i] > 0 {
			v += w[i] * x
			sum += w[i]
		}
	}
	if sum == 0 {
		return math.NaN()
	}
	return math.Max(v/sum, 0)
}

func smape(f, a float64) float64 {
	if d := math.Abs(f) + math.Abs(a); d > 0 {
		return 200 * math.Abs(f-a) / d
	}
	return 0
}

// Tracker keeps a series' recent forecasts of every view, settles them
// once their time has come, and from their errors weighs the views of the
// next forecast: the service holds one per series, the backtest replays
// the same.
type Tracker struct {
	pending []Sample
	settled []Sample
}

// Add records a forecast made at s.Origin (s.Actual unused).
func (tr *Tracker) Add(s Sample) { tr.pending = append(tr.pending, s) }

// Settle gives every pending forecast whose time is at or before now its
// actual value (one without data within an hour is dropped), and forgets
// what is older than Window.
func (tr *Tracker) Settle(now time.Time, actual func(time.Time) float64) {
	kept := tr.pending[:0]
	for _, s := range tr.pending {
		t := s.Origin.Add(s.Horizon)
		if t.After(now) {
			kept = append(kept, s)
			continue
		}
		switch s.Actual = actual(t); {
		case !math.IsNaN(s.Actual):
			tr.settled = append(tr.settled, s)
		case now.Sub(t) < time.Hour:
			// Its bucket may not be complete yet (or the data is late).
			kept = append(kept, s)
		}
	}
	tr.pending = kept
	i := 0
	for i < len(tr.settled) && now.Sub(tr.settled[i].Origin.Add(tr.settled[i].Horizon)) > Window {
		i++
	}
	tr.settled = tr.settled[i:]
}

// Errors are the mean sMAPE of each view at horizon h over the settled
// forecasts in which it had a value (NaN for a view without any).
func (tr *Tracker) Errors(h time.Duration, p Params) [NumViews]float64 {
	var sum, n [NumViews]float64
	for _, s := range tr.settled {
		if s.Horizon != h {
			continue
		}
		for i, v := range p.Values(s) {
			if !math.IsNaN(v) {
				sum[i] += smape(v, s.Actual)
				n[i]++
			}
		}
	}
	var e [NumViews]float64
	for i := range e {
		e[i] = math.NaN()
		if n[i] > 0 {
			e[i] = sum[i] / n[i]
		}
	}
	return e
}

// Forecast blends the views of s under p with the weights their past earned.
func (tr *Tracker) Forecast(s Sample, p Params) float64 {
	views := p.Values(s)
	var present [NumViews]bool
	for i, v := range views {
		present[i] = !math.IsNaN(v)
	}
	return Combine(views, p.Weights(s.Horizon, tr.Errors(nearest(s.Horizon), p), present))
}

// nearest is the scored horizon closest to h (errors are tracked per scored horizon).
func nearest(h time.Duration) time.Duration { return Horizons[horizonIndex(h)] }

// horizonIndex is the index of the scored horizon closest to h.
func horizonIndex(h time.Duration) int {
	best := 0
	for i, x := range Horizons {
		if (x - h).Abs() < (Horizons[best] - h).Abs() {
			best = i
		}
	}
	return best
}

// Curve is a forecast on a Step grid: Values[i] is the expected value at
// Start + (i+1)·Step.
type Curve struct {
	Start  time.Time
	Values []float64
}

// At returns the forecast for t (NaN outside the curve), interpolating
// between grid points.
func (c Curve) At(t time.Time) float64 {
	x := float64(t.Sub(c.Start))/float64(Step) - 1
	if len(c.Values) == 0 || x < 0 || x > float64(len(c.Values)-1) {
		return math.NaN()
	}
	i := int(x)
	if i == len(c.Values)-1 {
		return c.Values[i]
	}
	f := x - float64(i)
	return c.Values[i]*(1-f) + c.Values[i+1]*f
}

// Crossing returns the first time after after at which the curve reaches
// limit (ok false when it never does).
func (c Curve) Crossing(limit float64, after time.Time) (time.Time, bool) {
	for i, v := range c.Values {
		t := c.Start.Add(time.Duration(i+1) * Step)
		if v >= limit && t.After(after) && t.Sub(after) <= Horizons[len(Horizons)-1] {
			return t, true
		}
	}
	return time.Time{}, false
}

// History is a series prepared for forecasting: Step buckets (or the
// sampling interval of sparser series), so that lookups are cheap and
// irregular sampling still has a value at most instants.
type History struct {
	pts   []baseline.Point
	width time.Duration
}

// NewHistory buckets points (ordered by time).
func NewHistory(pts []baseline.Point) History {
	w := Width(pts)
	out := make([]baseline.Point, 0, len(pts))
	for i := 0; i < len(pts); {
		start := pts[i].T.Truncate(w)
		var sum float64
		var n int
		for ; i < len(pts) && pts[i].T.Before(start.Add(w)); i++ {
			if v := pts[i].V; !math.IsNaN(v) && !math.IsInf(v, 0) {
				sum += v
				n++
			}
		}
		if n > 0 {
			out = append(out, baseline.Point{T: start, V: sum / float64(n)})
		}
	}
	return History{pts: out, width: w}
}

// Width is Step, or the median sampling interval of sparser series.
func Width(pts []baseline.Point) time.Duration {
	if len(pts) < 3 {
		return Step
	}
	stride := 1 + len(pts)/512
	gaps := make([]time.Duration, 0, len(pts)/stride+1)
	for i := stride; i < len(pts); i += stride {
		gaps = append(gaps, pts[i].T.Sub(pts[i-1].T))
	}
	slices.Sort(gaps)
	return max(Step, gaps[len(gaps)/2])
}

// mean is the mean of the buckets in [from, to) (NaN when none).
func (h History) mean(from, to time.Time) float64 {
	i := sort.Search(len(h.pts), func(i int) bool { return !h.pts[i].T.Before(from) })
	var sum float64
	var n int
	for ; i < len(h.pts) && h.pts[i].T.Before(to); i++ {
		sum += h.pts[i].V
		n++
	}
	if n == 0 {
		return math.NaN()
	}
	return sum / float64(n)
}

// At is the value of the bucket holding t.
func (h History) At(t time.Time) float64 {
	return h.mean(t.Truncate(h.width), t.Truncate(h.width).Add(h.width))
}

// Naive is the seasonal-naive forecast for t: the value one week earlier
// when the history (ending at now) holds two weeks, else one day earlier.
func (h History) Naive(t, now time.Time) float64 {
	season := day
	if len(h.pts) > 0 && now.Sub(h.pts[0].T) >= 14*day {
		season = 7 * day
	}
	return h.At(t.Add(-season))
}

// Profile is the median of the buckets at t's time of day ± half over the
// last two weeks, using only data before now.
func (h History) Profile(t, now time.Time, half time.Duration, buf []float64) float64 {
	return h.pool(t, now, 1, profileDays, half, buf)
}

// WeekdayProfile is the median of the buckets at t's time of day ± an hour
// on t's weekday over the last four weeks, using only data before now (NaN
// before a week of history).
func (h History) WeekdayProfile(t, now time.Time, buf []float64) float64 {
	return h.pool(t, now, 7, 7*weekdayWeeks, weekdayHalf, buf)
}

// pool is the median of the buckets within half of t minus every stride
// days up to days, before now.
func (h History) pool(t, now time.Time, stride, days int, half time.Duration, buf []float64) float64 {
	buf = buf[:0]
	for k := stride; k <= days; k += stride {
		c := t.Add(-time.Duration(k) * day)
		from, to := c.Add(-half), c.Add(half)
		if to.After(now) {
			to = now
		}
		i := sort.Search(len(h.pts), func(i int) bool { return !h.pts[i].T.Before(from) })
		for ; i < len(h.pts) && h.pts[i].T.Before(to); i++ {
			buf = append(buf, h.pts[i].V)
		}
	}
	return median(buf)
}

// median is the median of buf (NaN when empty), reordering buf. It
// selects rather than sorts: the pools are gathered afresh for every step
// of a curve, and sorting them was most of a forecast's cost.
func median(buf []float64) float64 {
	n := len(buf)
	if n == 0 {
		return math.NaN()
	}
	hi := nth(buf, n/2)
	if n%2 == 1 {
		return hi
	}
	// nth leaves the n/2 smallest values before index n/2.
	return (slices.Max(buf[:n/2]) + hi) / 2
}

// nth reorders a so that a[k] is its k-th smallest value, every value
// before it no larger and every value after it no smaller, and returns it
// (quickselect with a three-way partition, so runs of equal values — an
// idle route's zeros — cost no more than distinct ones).
func nth(a []float64, k int) float64 {
	lo, hi := 0, len(a)
	for hi-lo > 1 {
		x, y, z := a[lo], a[lo+(hi-lo)/2], a[hi-1]
		p := max(min(x, y), min(max(x, y), z))
		lt, i, gt := lo, lo, hi
		for i < gt {
			switch {
			case a[i] < p:
				a[lt], a[i] = a[i], a[lt]
				lt++
				i++
			case a[i] > p:
				gt--
				a[i], a[gt] = a[gt], a[i]
			default:
				i++
			}
		}
		switch {
		case k < lt:
			hi = lt
		case k >= gt:
			lo = gt
		default:
			return a[k]
		}
	}
	return a[k]
}

// Ratio is how far the last two hours before now ran above (> 1) or below
// the recent profile (± half) of those moments.
func (h History) Ratio(now time.Time, half time.Duration, buf []float64) float64 {
	var actual, profile float64
	from := now.Add(-recentSpan)
	i := sort.Search(len(h.pts), func(i int) bool { return !h.pts[i].T.Before(from) })
	for ; i < len(h.pts) && h.pts[i].T.Before(now); i++ {
		p := h.Profile(h.pts[i].T, h.pts[i].T, half, buf)
		if !math.IsNaN(p) {
			actual += h.pts[i].V
			profile += p
		}
	}
	if !(actual > 0 && profile > 0) {
		return math.NaN()
	}
	return actual / profile
}

// Pools says which pools of ProfileHalves a computation needs.
type Pools [NumHalves]bool

// AllPools are every pool (the backtest scores them all).
var AllPools = Pools{true, true, true}

// Pools are the pools p uses at horizon d.
func (p Params) Pools(d time.Duration) Pools {
	var u Pools
	u[p.Half[horizonIndex(d)]] = true
	return u
}

// Ratios are Ratio for the pools of ProfileHalves in use (NaN for the rest).
func (h History) Ratios(now time.Time, use Pools, buf []float64) [NumHalves]float64 {
	var r [NumHalves]float64
	for k, half := range ProfileHalves {
		r[k] = math.NaN()
		if use[k] {
			r[k] = h.Ratio(now, half, buf)
		}
	}
	return r
}

// Views are a model's expectation and the recent profiles (of the pools in
// use) for t (d after now), the inputs of a blend.
func Views(m baseline.Model, h History, now time.Time, d time.Duration, ratios [NumHalves]float64, use Pools, buf []float64) Sample {
	t := now.Add(d)
	s := Sample{Origin: now, Horizon: d, Actual: math.NaN(), Model: math.NaN(), Weekday: h.WeekdayProfile(t, now, buf), Ratio: ratios, Naive: h.Naive(t, now)}
	for k, half := range ProfileHalves {
		s.Profile[k] = math.NaN()
		if use[k] {
			s.Profile[k] = h.Profile(t, now, half, buf)
		}
	}
	if m != nil {
		s.Model = math.Max(m.Band(t).Expected, 0)
	}
	return s
}

// Predict is the forecast curve of the 24 hours after now, from a model
// fitted (and refreshed) on history, which ends at now. The tracker (nil:
// no past forecasts) weighs the views, and records this forecast's views
// at the scored horizons for the next time.
func Predict(m baseline.Model, history []baseline.Point, now time.Time, p Params, tr *Tracker) Curve {
	return PredictFor(m, history, now, p, tr, 0)
}

// PredictFor is Predict with a curve longer than 24 hours by extra, so the
// gauges of every horizon stay published until the next forecast (the
// service passes its refit interval).
func PredictFor(m baseline.Model, history []baseline.Point, now time.Time, p Params, tr *Tracker, extra time.Duration) Curve {
	h := NewHistory(history)
	if tr == nil {
		tr = &Tracker{}
	}
	tr.Settle(now, h.At)
	last := Horizons[len(Horizons)-1] + max(extra, 0)
	c := Curve{Start: now, Values: make([]float64, 0, int(last/Step))}
	buf := make([]float64, 0, 1024)
	// Only the pools p uses are worth their cost: the service runs this per
	// series at every refit.
	var used Pools
	for _, x := range Horizons {
		for k, u := range p.Pools(x) {
			used[k] = used[k] || u
		}
	}
	ratios := h.Ratios(now, used, buf)
	for d := Step; d <= last; d += Step {
		s := Views(m, h, now, d, ratios, p.Pools(d), buf)
		c.Values = append(c.Values, tr.Forecast(s, p))
		for _, x := range Horizons {
			if x == d {
				tr.Add(s)
			}
		}
	}
	return c
}
