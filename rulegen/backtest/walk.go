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
	Model  string
	Alerts []Episode
	// Per input point, for the report.
	Points []baseline.Point
	Signal []float64
	Bands  []baseline.Band
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

// Walk runs the walk-forward backtest on one series.
func Walk(ctx context.Context, pts []baseline.Point, cfg Config) (Result, error) {
	cfg = cfg.withDefaults()
	res := Result{Points: pts, Signal: make([]float64, len(pts)), Bands: make([]baseline.Band, len(pts))}
	if len(pts) == 0 {
		return res, nil
	}
	step := cfg.Options.Step
	if step <= 0 {
		step = 5 * time.Minute
		if rs := medianStep(pts); rs > step {
			step = rs
		}
	}
	opts := cfg.Options
	opts.Step = step
	policy := baseline.DefaultPolicy(step)
	signal(pts, step, res.Signal)
	long := make([]float64, len(pts))
	if cfg.Confirm > 0 {
		signal(pts, cfg.Confirm, long)
	}

	var model baseline.Model
	nextRefit := pts[0].T.Truncate(cfg.Refit).Add(cfg.Refit)
	nextRefresh := pts[0].T.Truncate(step).Add(step)
	from := 0
	names := map[string]int{}
	var st, stLow alertState
	var lastSample time.Time
	for i, p := range pts {
		if i%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
		// Refits happen between samples, on data strictly before them.
		if !p.T.Before(nextRefit) {
			for from < i && pts[from].T.Before(p.T.Add(-cfg.History)) {
				from++
			}
			m, pol, err := baseline.Fit(pts[from:i], opts)
			switch {
			case errors.Is(err, baseline.ErrNoHistory):
				model = nil
			case err != nil:
				return res, fmt.Errorf("fit at %s: %w", p.T.Format(time.RFC3339), err)
			default:
				model, policy = m, pol
				names[m.Name()]++
			}
			for !nextRefit.After(p.T) {
				nextRefit = nextRefit.Add(cfg.Refit)
			}
			nextRefresh = p.T.Truncate(step).Add(step)
		} else if !p.T.Before(nextRefresh) {
			if model != nil {
				model = baseline.Refresh(model, pts[from:i], opts)
			}
			for !nextRefresh.After(p.T) {
				nextRefresh = nextRefresh.Add(step)
			}
		}
		b := baseline.Band{Lower: math.NaN(), Expected: math.NaN(), Upper: math.NaN(), SpikeLower: math.NaN(), SpikeUpper: math.NaN()}
		if model != nil {
			b = envelope(model, p.T, step)
		}
		res.Bands[i] = b
		// Between a sample and the next one more than a step later the
		// signal has no value: Prometheus drops a pending alert then, so
		// two outside samples hours apart are not a deviation that lasted hours.
		if !lastSample.IsZero() && p.T.Sub(lastSample) > step {
			st.absent()
			stLow.absent()
		}
		if !math.IsNaN(p.V) {
			lastSample = p.T
		}
		v := res.Signal[i]
		up, low := judge(v, long[i], b, cfg.Confirm > 0)
		if e, ok := st.observe(p.T, up.outside, up.spike, policy); ok {
			res.Alerts = append(res.Alerts, e)
		}
		if e, ok := stLow.observe(p.T, low.outside, low.spike, policy); ok {
			res.Alerts = append(res.Alerts, e)
		}
	}
	for _, s := range []*alertState{&st, &stLow} {
		if e, ok := s.close(pts[len(pts)-1].T); ok {
			res.Alerts = append(res.Alerts, e)
		}
	}
	slices.SortFunc(res.Alerts, func(a, b Episode) int { return a.Start.Compare(b.Start) })
	best := 0
	for n, c := range names {
		if c > best || (c == best && n < res.Model) {
			res.Model, best = n, c
		}
	}
	if res.Model == "" {
		res.Model = "none"
	}
	return res, nil
}

// signal is the trailing mean over one step at each point: what a
// rate[5m]-style recording rule gives the alert to compare.
func signal(pts []baseline.Point, step time.Duration, out []float64) {
	var sum float64
	var n, j int
	for i, p := range pts {
		if !math.IsNaN(p.V) {
			sum += p.V
			n++
		}
		for pts[j].T.Add(step).Compare(p.T) <= 0 {
			if !math.IsNaN(pts[j].V) {
				sum -= pts[j].V
				n--
			}
			j++
		}
		out[i] = math.NaN()
		if n > 0 {
			out[i] = sum / float64(n)
		}
	}
}

func medianStep(pts []baseline.Point) time.Duration {
	if len(pts) < 2 {
		return 0
	}
	counts := map[time.Duration]int{}
	for i := 1; i < len(pts) && i < 2000; i++ {
		counts[pts[i].T.Sub(pts[i-1].T)]++
	}
	var best time.Duration
	for d, c := range counts {
		if c > counts[best] {
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
