package baseline

import (
	"math"
	"time"
)

// rollingModel is the floor every other model must beat: mean ± k·σ of the
// recent window, with points beyond k·σ dropped once so an ongoing incident
// does not widen its own band.
type rollingModel struct {
	tr     transform
	k      float64
	window time.Duration
	step   time.Duration
	mean   float64
	sd     float64
	floor  float64
	// spikeK is the half-width of the spike band in units of sd (0: none).
	spikeK float64
}

func (m *rollingModel) Name() string { return NameRolling }

func (m *rollingModel) Band(time.Time) Band {
	scale := math.Max(m.sd, m.floor)
	return m.tr.withSpike(m.tr.band(m.mean, m.k*scale), m.mean, m.spikeK*scale)
}

func fitRolling(s *series, upto int, window time.Duration) *rollingModel {
	m := &rollingModel{tr: s.tr, k: s.k, window: window, step: s.step, floor: math.Max(math.Max(0.5*s.noise, 0.01*s.spread), 1e-9)}
	m.refreshFrom(s, upto)
	return m
}

func (m *rollingModel) refreshFrom(s *series, upto int) {
	from := upto - int(int64(m.window/time.Second)/s.stepSec)
	if from < 0 {
		from = 0
	}
	y := s.y[from:upto]
	mean, sd := meanSD(y, math.NaN(), 0)
	if !math.IsNaN(mean) && sd > 0 {
		mean, sd = meanSD(y, mean, m.k*sd)
	}
	if math.IsNaN(mean) {
		return
	}
	m.mean, m.sd = mean, sd
	// The spike band lies beyond everything the last day did, as for the
	// calibrated models. It is refreshed with the mean, so its one day of
	// data is always the most recent one (no minSpikeDays: the rolling
	// model is what short histories get, and a drop far below a whole day's
	// range is an incident whatever came before).
	scale := math.Max(sd, m.floor)
	var largest float64
	for _, v := range y {
		if !math.IsNaN(v) {
			largest = math.Max(largest, excess((v-mean)/scale, m.tr))
		}
	}
	m.spikeK = spikeWidth(largest, m.k)
}

// meanSD of the finite values of y, restricted to |v-center| <= tol when center is a number.
func meanSD(y []float64, center, tol float64) (float64, float64) {
	var n, sum, sq float64
	for _, v := range y {
		if math.IsNaN(v) || (!math.IsNaN(center) && math.Abs(v-center) > tol) {
			continue
		}
		n++
		sum += v
		sq += v * v
	}
	if n == 0 {
		return math.NaN(), 0
	}
	mean := sum / n
	v := sq/n - mean*mean
	if v < 0 {
		v = 0
	}
	return mean, math.Sqrt(v)
}
