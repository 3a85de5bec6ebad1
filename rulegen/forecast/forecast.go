// Package forecast predicts request rates hours ahead and tells when a
// series is expected to cross a limit (alert_rules.qps_threshold). A
// forecast blends two seasonal views of the series: the expectation of the
// baseline model rulegen fits anyway (its seasonal shape at its current,
// refreshed level), and a robust recent profile — the median of the same
// time of day over the last two weeks, scaled by how far the last two
// hours run above or below that profile, damped with the horizon. The
// blend weight and the damping per horizon were chosen by
// leave-one-series-out cross-validation (Walk, CrossValidate, README.md).
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
	// profileDays and profileHalf are the recent profile's pool: the same
	// time of day ± an hour over the last two weeks.
	profileDays = 14
	profileHalf = time.Hour
	// recentSpan is how much of the latest data sets the level ratio.
	recentSpan = 2 * time.Hour
)

// Params steer the blend per horizon (interpolated linearly in between).
type Params struct {
	// Gamma sets how decisively the blend follows the view that forecast
	// this series better lately: the model's weight is
	// eP^γ / (eM^γ + eP^γ) with eM, eP the two views' sMAPE over the last
	// week of matured forecasts (γ = 0: half and half).
	Gamma [3]float64
	// Damp is the exponent of the recent level ratio carried to the horizon
	// (0: the profile as it is; 1: the whole deviation persists).
	Damp [3]float64
}

// DefaultParams were chosen by leave-one-series-out cross-validation over
// the development series; `autoglm-rulegen backtest --forecast` prints the
// choice made on all of them ("chosen on all inputs"), which these are.
var DefaultParams = Params{Gamma: [3]float64{8, 8, 8}, Damp: [3]float64{0.6, 0, 0.2}}

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

// Weight is the model's share at horizon h given the views' recent sMAPE
// (NaN when unknown: half and half).
func (p Params) Weight(h time.Duration, eModel, eProfile float64) float64 {
	if math.IsNaN(eModel) || math.IsNaN(eProfile) {
		return 0.5
	}
	g := interp(p.Gamma, h)
	a, b := math.Pow(eProfile+1e-9, g), math.Pow(eModel+1e-9, g)
	return a / (a + b)
}

// Combine is the forecast from the two views with model weight w; either
// view alone stands in when the other is missing.
func Combine(model, profile, w float64) float64 {
	var v float64
	switch {
	case math.IsNaN(model):
		v = profile
	case math.IsNaN(profile):
		v = model
	default:
		v = w*model + (1-w)*profile
	}
	return math.Max(v, 0)
}

func smape(f, a float64) float64 {
	if d := math.Abs(f) + math.Abs(a); d > 0 {
		return 200 * math.Abs(f-a) / d
	}
	return 0
}

// Tracker keeps a series' recent forecasts of both views, settles them
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

// Errors are the mean sMAPE of the model and the profile view at horizon h
// over the settled forecasts (NaN when there are none).
func (tr *Tracker) Errors(h time.Duration, p Params) (eModel, eProfile float64) {
	var sm, sp float64
	var n int
	for _, s := range tr.settled {
		if s.Horizon != h || math.IsNaN(s.Model) || math.IsNaN(s.Profile) {
			continue
		}
		sm += smape(s.Model, s.Actual)
		sp += smape(p.ProfileView(h, s.Profile, s.Ratio), s.Actual)
		n++
	}
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	return sm / float64(n), sp / float64(n)
}

// Forecast blends the views of s under p with the weights its past earned.
func (tr *Tracker) Forecast(s Sample, p Params) float64 {
	em, ep := tr.Errors(nearest(s.Horizon), p)
	return Combine(s.Model, p.ProfileView(s.Horizon, s.Profile, s.Ratio), p.Weight(s.Horizon, em, ep))
}

// nearest is the scored horizon closest to h (errors are tracked per scored horizon).
func nearest(h time.Duration) time.Duration {
	best := Horizons[0]
	for _, x := range Horizons {
		if (x - h).Abs() < (best - h).Abs() {
			best = x
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

// Profile is the median of the buckets at t's time of day ± an hour over
// the last two weeks, using only data before now. (Pooling weekdays and
// weekends apart was tried: it helps the weekly LLM series, which the model
// view covers anyway, and cost the road-traffic series 4 points of sMAPE.)
func (h History) Profile(t, now time.Time, buf []float64) float64 {
	buf = buf[:0]
	for k := 1; k <= profileDays; k++ {
		c := t.Add(-time.Duration(k) * day)
		from, to := c.Add(-profileHalf), c.Add(profileHalf)
		if to.After(now) {
			to = now
		}
		i := sort.Search(len(h.pts), func(i int) bool { return !h.pts[i].T.Before(from) })
		for ; i < len(h.pts) && h.pts[i].T.Before(to); i++ {
			buf = append(buf, h.pts[i].V)
		}
	}
	if len(buf) == 0 {
		return math.NaN()
	}
	slices.Sort(buf)
	if len(buf)%2 == 1 {
		return buf[len(buf)/2]
	}
	return (buf[len(buf)/2-1] + buf[len(buf)/2]) / 2
}

// Ratio is how far the last two hours before now ran above (> 1) or below
// the recent profile of those moments.
func (h History) Ratio(now time.Time, buf []float64) float64 {
	var actual, profile float64
	from := now.Add(-recentSpan)
	i := sort.Search(len(h.pts), func(i int) bool { return !h.pts[i].T.Before(from) })
	for ; i < len(h.pts) && h.pts[i].T.Before(now); i++ {
		p := h.Profile(h.pts[i].T, h.pts[i].T, buf)
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

// Views are a model's expectation and the recent profile view for t (h
// after now), the inputs of a blend.
func Views(m baseline.Model, h History, now time.Time, d time.Duration, ratio float64, buf []float64) Sample {
	t := now.Add(d)
	s := Sample{Origin: now, Horizon: d, Actual: math.NaN(), Model: math.NaN(), Profile: h.Profile(t, now, buf), Ratio: ratio, Naive: h.Naive(t, now)}
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
	ratio := h.Ratio(now, buf)
	for d := Step; d <= last; d += Step {
		s := Views(m, h, now, d, ratio, buf)
		c.Values = append(c.Values, tr.Forecast(s, p))
		for _, x := range Horizons {
			if x == d {
				tr.Add(s)
			}
		}
	}
	return c
}
