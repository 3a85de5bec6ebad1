// Package backtest replays history through the baselines exactly as the
// service would run them: refit at fixed times on the data before them,
// refresh the recent level at every step, and apply the bands with the same
// for/keep_firing_for semantics as the generated alerting rules.
package backtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// Episode is one firing alert.
type Episode struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Config steers a walk-forward run.
type Config struct {
	// Refit is how often (in data time) the model is refitted from scratch (default 6h).
	Refit time.Duration
	// History caps how far back each fit looks (default 6 weeks).
	History time.Duration
	// Confirm is the long window of the rules' multi-window confirmation
	// (default 1h, as rulegen.confirm_window): the main band fires only
	// while the signal's mean over it is on the same side of the expected
	// value. Negative turns the confirmation off.
	Confirm time.Duration
	Options baseline.Options
}

// Result is the outcome for one series.
type Result struct {
	// Model is the model most refits chose ("none" without any fit).
	Model  string
	Alerts []Episode
	// Points is the number of samples walked.
	Points int
	// Trace is the signal and band, condensed to at most traceBuckets
	// buckets for the report whatever the length of the series.
	Trace []TracePoint
}

// TracePoint is one bucket of the trace: the range of the signal over it
// and the band at its last sample.
type TracePoint struct {
	T                    time.Time
	SignalMin, SignalMax float64
	Band                 baseline.Band
}

func (c Config) withDefaults() Config {
	if c.Refit <= 0 {
		c.Refit = 6 * time.Hour
	}
	if c.History <= 0 {
		c.History = 6 * 7 * 24 * time.Hour
	}
	if c.Confirm == 0 {
		c.Confirm = time.Hour
	}
	return c
}

// Walk runs the walk-forward backtest on one series held in memory.
func Walk(ctx context.Context, pts []baseline.Point, cfg Config) (Result, error) {
	w := NewWalker(cfg)
	for i, p := range pts {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return Result{}, err
			}
		}
		if err := w.Push(p); err != nil {
			return Result{}, err
		}
	}
	return w.Finish()
}

// stepSample is how many leading samples decide the sampling step.
const stepSample = 2000

// Walker is the walk-forward backtest of one series fed point by point in
// time order. It holds the fit history (Config.History) and a condensed
// trace, never the whole series, so its memory does not grow with the input.
type Walker struct {
	cfg     Config
	opts    baseline.Options
	step    time.Duration
	started bool
	// head holds the first samples until the step is known.
	head []baseline.Point
	// hist is the history the next fit and refresh read (≤ cfg.History).
	hist        []baseline.Point
	model       baseline.Model
	policy      baseline.Policy
	nextRefit   time.Time
	nextRefresh time.Time
	names       map[string]int
	up, low     alertState
	lastSample  time.Time
	last        time.Time
	signal      meanWindow
	long        meanWindow
	alerts      []Episode
	trace       tracer
	n           int
	err         error
}

// NewWalker starts a walk-forward backtest.
func NewWalker(cfg Config) *Walker {
	cfg = cfg.withDefaults()
	return &Walker{cfg: cfg, names: map[string]int{}}
}

// Push walks one more sample; samples must come in time order.
func (w *Walker) Push(p baseline.Point) error {
	if w.err != nil {
		return w.err
	}
	if w.n > 0 && p.T.Before(w.last) {
		return fmt.Errorf("sample at %s before the previous one (%s): samples must be in time order", p.T.Format(time.RFC3339), w.last.Format(time.RFC3339))
	}
	w.n++
	w.last = p.T
	if !w.started {
		w.head = append(w.head, p)
		if len(w.head) >= stepSample {
			w.start()
		}
		return w.err
	}
	w.observe(p)
	return w.err
}

// start fixes the step from the leading samples and walks them.
func (w *Walker) start() {
	w.started = true
	w.step = w.cfg.Options.Step
	if w.step <= 0 {
		w.step = 5 * time.Minute
		if rs := medianStep(w.head); rs > w.step {
			w.step = rs
		}
	}
	w.opts = w.cfg.Options
	w.opts.Step = w.step
	w.policy = baseline.DefaultPolicy(w.step)
	w.signal = meanWindow{d: w.step}
	w.long = meanWindow{d: w.cfg.Confirm}
	if len(w.head) > 0 {
		w.nextRefit = w.head[0].T.Truncate(w.cfg.Refit).Add(w.cfg.Refit)
		w.nextRefresh = w.head[0].T.Truncate(w.step).Add(w.step)
	}
	head := w.head
	w.head = nil
	for _, p := range head {
		w.observe(p)
	}
}

func (w *Walker) observe(p baseline.Point) {
	// Refits happen between samples, on data strictly before them.
	if !p.T.Before(w.nextRefit) {
		w.trim(p.T)
		m, pol, err := baseline.Fit(w.hist, w.opts)
		switch {
		case errors.Is(err, baseline.ErrNoHistory):
			w.model = nil
		case err != nil:
			w.err = fmt.Errorf("fit at %s: %w", p.T.Format(time.RFC3339), err)
			return
		default:
			w.model, w.policy = m, pol
			w.names[m.Name()]++
		}
		for !w.nextRefit.After(p.T) {
			w.nextRefit = w.nextRefit.Add(w.cfg.Refit)
		}
		w.nextRefresh = p.T.Truncate(w.step).Add(w.step)
	} else if !p.T.Before(w.nextRefresh) {
		if w.model != nil {
			w.model = baseline.Refresh(w.model, w.hist, w.opts)
		}
		for !w.nextRefresh.After(p.T) {
			w.nextRefresh = w.nextRefresh.Add(w.step)
		}
	}
	b := baseline.Band{Lower: math.NaN(), Expected: math.NaN(), Upper: math.NaN(), SpikeLower: math.NaN(), SpikeUpper: math.NaN()}
	if w.model != nil {
		b = envelope(w.model, p.T, w.step)
	}
	// Between a sample and the next one more than a step later the
	// signal has no value: Prometheus drops a pending alert then, so
	// two outside samples hours apart are not a deviation that lasted hours.
	if !w.lastSample.IsZero() && p.T.Sub(w.lastSample) > w.step {
		w.up.absent()
		w.low.absent()
	}
	if !math.IsNaN(p.V) {
		w.lastSample = p.T
	}
	v := w.signal.push(p)
	long := math.NaN()
	if w.cfg.Confirm > 0 {
		long = w.long.push(p)
	}
	w.trace.add(p.T, v, b)
	up, low := judge(v, long, b, w.cfg.Confirm > 0)
	if e, ok := w.up.observe(p.T, up.outside, up.spike, w.policy); ok {
		w.alerts = append(w.alerts, e)
	}
	if e, ok := w.low.observe(p.T, low.outside, low.spike, w.policy); ok {
		w.alerts = append(w.alerts, e)
	}
	w.hist = append(w.hist, p)
}

// trim drops history older than the fit window; appends reallocate the
// slice once its spare capacity is used, so memory stays near the window.
func (w *Walker) trim(now time.Time) {
	from := now.Add(-w.cfg.History)
	i := sort.Search(len(w.hist), func(i int) bool { return !w.hist[i].T.Before(from) })
	w.hist = w.hist[i:]
}

// Finish closes open alerts and returns the result.
func (w *Walker) Finish() (Result, error) {
	if !w.started {
		w.start()
	}
	if w.err != nil {
		return Result{}, w.err
	}
	res := Result{Alerts: w.alerts, Points: w.n, Trace: w.trace.points()}
	if w.n > 0 {
		for _, s := range []*alertState{&w.up, &w.low} {
			if e, ok := s.close(w.last); ok {
				res.Alerts = append(res.Alerts, e)
			}
		}
	}
	slices.SortFunc(res.Alerts, func(a, b Episode) int { return a.Start.Compare(b.Start) })
	best := 0
	for n, c := range w.names {
		if c > best || (c == best && n < res.Model) {
			res.Model, best = n, c
		}
	}
	if res.Model == "" {
		res.Model = "none"
	}
	return res, nil
}

// meanWindow is the trailing mean over d at each sample: what a
// rate[5m]-style recording rule gives the alert to compare. The running sum
// is compensated (Neumaier), so one huge value leaving the window does not
// take the small ones' digits with it.
type meanWindow struct {
	d       time.Duration
	pts     []baseline.Point
	sum, c  float64
	n, head int
}

func (m *meanWindow) add(v float64) {
	t := m.sum + v
	if math.Abs(m.sum) >= math.Abs(v) {
		m.c += (m.sum - t) + v
	} else {
		m.c += (v - t) + m.sum
	}
	m.sum = t
}

// push adds p and returns the mean of the finite values within d before it (NaN when none).
func (m *meanWindow) push(p baseline.Point) float64 {
	if !math.IsNaN(p.V) {
		m.pts = append(m.pts, p)
		m.add(p.V)
		m.n++
	}
	for m.head < len(m.pts) && m.pts[m.head].T.Add(m.d).Compare(p.T) <= 0 {
		m.add(-m.pts[m.head].V)
		m.n--
		m.head++
	}
	if m.head > 64 && m.head > len(m.pts)/2 {
		m.pts = append(m.pts[:0], m.pts[m.head:]...)
		m.head = 0
	}
	if m.n == 0 {
		// Start afresh: nothing left for rounding errors to hide in.
		m.sum, m.c = 0, 0
		return math.NaN()
	}
	return (m.sum + m.c) / float64(m.n)
}

// traceBuckets bounds the trace; the report draws 1,300 pixel columns.
const traceBuckets = 4096

// tracer condenses the trace into buckets whose width doubles whenever
// they would exceed traceBuckets.
type tracer struct {
	t0    time.Time
	width time.Duration
	b     []TracePoint
}

func (tr *tracer) add(t time.Time, v float64, band baseline.Band) {
	if tr.width == 0 {
		tr.t0, tr.width = t, time.Second
	}
	for int(t.Sub(tr.t0)/tr.width) >= traceBuckets {
		tr.halve()
	}
	start := tr.t0.Add(t.Sub(tr.t0) / tr.width * tr.width)
	if n := len(tr.b); n == 0 || !tr.b[n-1].T.Equal(start) {
		tr.b = append(tr.b, TracePoint{T: start, SignalMin: math.NaN(), SignalMax: math.NaN()})
	}
	p := &tr.b[len(tr.b)-1]
	if !math.IsNaN(v) {
		if math.IsNaN(p.SignalMin) || v < p.SignalMin {
			p.SignalMin = v
		}
		if math.IsNaN(p.SignalMax) || v > p.SignalMax {
			p.SignalMax = v
		}
	}
	p.Band = band
}

// halve doubles the bucket width, merging neighbours.
func (tr *tracer) halve() {
	tr.width *= 2
	out := tr.b[:0]
	for _, p := range tr.b {
		start := tr.t0.Add(p.T.Sub(tr.t0) / tr.width * tr.width)
		if n := len(out); n > 0 && out[n-1].T.Equal(start) {
			q := &out[n-1]
			q.SignalMin = nanMin(q.SignalMin, p.SignalMin)
			q.SignalMax = nanMax(q.SignalMax, p.SignalMax)
			q.Band = p.Band
			continue
		}
		p.T = start
		out = append(out, p)
	}
	tr.b = out
}

func (tr *tracer) points() []TracePoint { return tr.b }

func nanMin(a, b float64) float64 {
	if math.IsNaN(a) || b < a {
		return b
	}
	return a
}

func nanMax(a, b float64) float64 {
	if math.IsNaN(a) || b > a {
		return b
	}
	return a
}

func medianStep(pts []baseline.Point) time.Duration {
	if len(pts) < 2 {
		return 0
	}
	counts := map[time.Duration]int{}
	for i := 1; i < len(pts) && i < stepSample; i++ {
		counts[pts[i].T.Sub(pts[i-1].T)]++
	}
	var best time.Duration
	for d, c := range counts {
		if c > counts[best] || (c == counts[best] && d < best) {
			best = d
		}
	}
	return best
}

// alertState is the pending → firing → resolved machine of a Prometheus
// alerting rule with for and keep_firing_for.
type alertState struct {
	pendingSince time.Time
	pending      bool
	firing       bool
	start        time.Time
	lastOutside  time.Time
}

// spike is a value beyond the spike band: the second rule (for: 0) fires at
// once, and both rules share one alert, so keep_firing_for merges them.
func (s *alertState) observe(t time.Time, outside, spike bool, p baseline.Policy) (Episode, bool) {
	if outside {
		s.lastOutside = t
		if s.firing {
			return Episode{}, false
		}
		if !s.pending {
			s.pending, s.pendingSince = true, t
		}
		if spike || t.Sub(s.pendingSince) >= p.For {
			s.firing, s.pending, s.start = true, false, t
		}
		return Episode{}, false
	}
	s.pending = false
	if s.firing && t.Sub(s.lastOutside) >= p.KeepFiringFor {
		s.firing = false
		return Episode{Start: s.start, End: t}, true
	}
	return Episode{}, false
}

// verdict is what the rules of one bound see at an evaluation: outside is
// either rule's condition, spike the one of the spike twin (for: 0).
type verdict struct{ outside, spike bool }

// judge applies the generated rules of both bounds to the signal v: the
// main rule needs v beyond the band and, with confirm, the long-window mean
// on the same side of the expected value (unknown expectation: no
// condition); the spike twin needs v beyond the spike band only. Upper and
// lower are separate alerts, as in the rule files.
func judge(v, long float64, b baseline.Band, confirm bool) (up, low verdict) {
	if math.IsNaN(v) {
		return verdict{}, verdict{}
	}
	above, below := true, true
	if confirm && !math.IsNaN(b.Expected) {
		above, below = long > b.Expected, long < b.Expected
	}
	up.spike = !math.IsNaN(b.SpikeUpper) && v > b.SpikeUpper
	low.spike = !math.IsNaN(b.SpikeLower) && v < b.SpikeLower
	up.outside = up.spike || (!math.IsNaN(b.Upper) && v > b.Upper && above)
	low.outside = low.spike || (!math.IsNaN(b.Lower) && v < b.Lower && below)
	return up, low
}

// absent is an evaluation at which the signal has no sample in its
// window: Prometheus drops a pending alert whose series vanished, while a
// firing one stays firing through keep_firing_for.
func (s *alertState) absent() { s.pending = false }

func (s *alertState) close(t time.Time) (Episode, bool) {
	if !s.firing {
		return Episode{}, false
	}
	s.firing = false
	return Episode{Start: s.start, End: t}, true
}

// envelope is the widest band over the signal's averaging window: a
// trailing mean lags a step in the baseline (midnight, weekend start), so
// it is compared with max_over_time of the upper and min_over_time of the
// lower bound over the same window, as the generated rules do.
func envelope(m baseline.Model, t time.Time, step time.Duration) baseline.Band {
	b := m.Band(t)
	p := m.Band(t.Add(-step))
	if !math.IsNaN(b.Upper) && !math.IsNaN(p.Upper) {
		b.Upper = math.Max(b.Upper, p.Upper)
	}
	if !math.IsNaN(b.Lower) && !math.IsNaN(p.Lower) {
		b.Lower = math.Min(b.Lower, p.Lower)
	}
	if !math.IsNaN(b.SpikeUpper) && !math.IsNaN(p.SpikeUpper) {
		b.SpikeUpper = math.Max(b.SpikeUpper, p.SpikeUpper)
	}
	if !math.IsNaN(b.SpikeLower) && !math.IsNaN(p.SpikeLower) {
		b.SpikeLower = math.Min(b.SpikeLower, p.SpikeLower)
	}
	return b
}
