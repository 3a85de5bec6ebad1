package forecast

import (
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// Sample is one forecast of the walk-forward backtest: made at Origin for
// Origin + Horizon with the data before Origin only, it keeps the views
// the blend combines, the seasonal-naive value and what happened.
type Sample struct {
	Origin  time.Time
	Horizon time.Duration
	Actual  float64
	Model   float64
	// Profile and Ratio hold the recent profile and the level ratio for
	// each pool of ProfileHalves.
	Profile [NumHalves]float64
	Weekday float64
	Ratio   [NumHalves]float64
	Naive   float64
}

// WalkConfig steers a walk-forward forecast backtest.
type WalkConfig struct {
	// Every is the time between forecast origins (default 1h).
	Every time.Duration
	// Refit is how often the model is fitted from scratch; in between it
	// is refreshed at each origin, as the service does (default 24h).
	Refit time.Duration
	// MinHistory is the history needed before the first origin (default 3d).
	MinHistory time.Duration
	// History caps each fit (default 6 weeks).
	History time.Duration
	Options baseline.Options
}

func (c WalkConfig) withDefaults() WalkConfig {
	if c.Every <= 0 {
		c.Every = time.Hour
	}
	if c.Refit <= 0 {
		c.Refit = 24 * time.Hour
	}
	if c.MinHistory <= 0 {
		c.MinHistory = 3 * day
	}
	if c.History <= 0 {
		c.History = 6 * 7 * day
	}
	return c
}

// Walk forecasts pts from every origin with the data before it only. It
// returns one sample per origin and horizon where the actual value, the
// seasonal-naive value and at least one view exist, so every method is
// scored on the same points.
func Walk(ctx context.Context, pts []baseline.Point, cfg WalkConfig) ([]Sample, error) {
	cfg = cfg.withDefaults()
	if len(pts) < 2 {
		return nil, nil
	}
	all := NewHistory(pts)
	first, end := pts[0].T, pts[len(pts)-1].T
	var out []Sample
	var m baseline.Model
	var fitted time.Time
	buf := make([]float64, 0, 1024)
	for origin := first.Add(cfg.MinHistory).Truncate(cfg.Every); !origin.After(end); origin = origin.Add(cfg.Every) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		hi, _ := slices.BinarySearchFunc(pts, origin, func(p baseline.Point, t time.Time) int { return p.T.Compare(t) })
		lo, _ := slices.BinarySearchFunc(pts, origin.Add(-cfg.History), func(p baseline.Point, t time.Time) int { return p.T.Compare(t) })
		hist := pts[lo:hi]
		if len(hist) < 2 {
			continue
		}
		if m == nil || origin.Sub(fitted) >= cfg.Refit {
			fm, _, err := baseline.Fit(hist, cfg.Options)
			switch {
			case errors.Is(err, baseline.ErrNoHistory):
				fm = nil
			case err != nil:
				return nil, err
			}
			m, fitted = fm, origin
		} else {
			m = baseline.Refresh(m, hist, cfg.Options)
		}
		// The past as of origin: lookups never see origin or later.
		past := History{pts: all.pts[:sortSearch(all.pts, origin)], width: all.width}
		ratios := past.Ratios(origin, AllPools, buf)
		for _, h := range Horizons {
			s := Views(m, past, origin, h, ratios, AllPools, buf)
			s.Actual = all.At(origin.Add(h))
			if math.IsNaN(s.Actual) || math.IsNaN(s.Naive) || !s.hasView() {
				continue
			}
			out = append(out, s)
		}
	}
	return out, nil
}

func sortSearch(pts []baseline.Point, t time.Time) int {
	i, _ := slices.BinarySearchFunc(pts, t, func(p baseline.Point, t time.Time) int { return p.T.Compare(t) })
	return i
}

// SMAPE is the symmetric mean absolute percentage error (0–200) of
// forecast f over the samples at horizon h.
func SMAPE(samples []Sample, h time.Duration, f func(Sample) float64) (float64, int) {
	var sum float64
	var n int
	for _, s := range samples {
		if s.Horizon != h {
			continue
		}
		v := f(s)
		if d := math.Abs(v) + math.Abs(s.Actual); d > 0 {
			sum += 200 * math.Abs(v-s.Actual) / d
		}
		n++
	}
	if n == 0 {
		return math.NaN(), 0
	}
	return sum / float64(n), n
}

// Replay runs the blend over a series' samples (ordered by origin) as the
// service would have: each forecast weighs the views by the errors of the
// forecasts that had come true by its origin. It returns the blended
// forecast of every sample.
func Replay(samples []Sample, p Params) []float64 {
	out := make([]float64, len(samples))
	var tr Tracker
	byTime := make(map[time.Time]float64, len(samples))
	for _, s := range samples {
		byTime[s.Origin.Add(s.Horizon)] = s.Actual
	}
	actual := func(t time.Time) float64 {
		if v, ok := byTime[t]; ok {
			return v
		}
		return math.NaN()
	}
	for i, s := range samples {
		if i == 0 || s.Origin != samples[i-1].Origin {
			tr.Settle(s.Origin, actual)
		}
		out[i] = tr.Forecast(s, p)
		tr.Add(s)
	}
	return out
}

// NaiveOf is the seasonal-naive forecast of a sample.
func NaiveOf(s Sample) float64 { return s.Naive }

// hasView reports whether any view has a value.
func (s Sample) hasView() bool {
	if !math.IsNaN(s.Model) || !math.IsNaN(s.Weekday) {
		return true
	}
	for _, v := range s.Profile {
		if !math.IsNaN(v) {
			return true
		}
	}
	return false
}
