package baseline

import (
	"math"
	"time"

	"gonum.org/v1/gonum/optimize"
)

// hwModel is additive Holt-Winters on the transformed series (so
// multiplicative on the original scale for log-transformed kinds), run on
// 15-minute buckets with a daily or weekly season. Points far from the
// one-step forecast are treated as missing, so incidents do not enter the state.
type hwModel struct {
	name               string
	tr                 transform
	k                  float64
	step               time.Duration // of the Holt-Winters buckets
	alpha, beta, gamma float64
	level, trend       float64
	season             []float64
	next               time.Time // start of the next bucket to consume
	sigma, floor, clip float64
	// forSteps is how many alerting buckets a value must stay outside before firing.
	forSteps int
	// spikeK is the half-width of the spike band, in robust σ like k (0: none).
	spikeK float64
}

const hwStep = 15 * time.Minute

func (m *hwModel) Name() string { return m.name }

func (m *hwModel) expected(t time.Time) float64 {
	h := int(t.Sub(m.next)/m.step) + 1
	if h < 1 {
		h = 1
	}
	slot := int(floorDiv(t.Unix(), int64(m.step/time.Second)) % int64(len(m.season)))
	// Trend is damped to a few hours: it is there to follow ramps, not to extrapolate.
	return m.level + float64(min(h, 8))*m.trend + m.season[slot]
}

func (m *hwModel) Band(t time.Time) Band {
	exp, scale := m.expected(t), math.Max(m.sigma, m.floor)
	return m.tr.withSpike(m.tr.band(exp, m.k*scale), exp, m.spikeK*scale)
}

// hwRun runs the recursions over y (bucket i has epoch slot (phase+i) % len(season)),
// returning the Huber-clipped one-step squared error.
func hwRun(y []float64, phase int, a, b, g float64, level, trend *float64, season []float64, clip float64, resid []float64) float64 {
	m := len(season)
	var sse float64
	l, tr := *level, *trend
	for i, x := range y {
		si := (phase + i) % m
		f := l + tr + season[si]
		if math.IsNaN(x) {
			l += tr
			if resid != nil {
				resid[i] = math.NaN()
			}
			continue
		}
		e := x - f
		if resid != nil {
			resid[i] = e
		}
		if math.Abs(e) > clip {
			// Self-exclusion: an outlier advances time but teaches nothing.
			sse += clip * clip
			l += tr
			continue
		}
		sse += e * e
		nl := a*(x-season[si]) + (1-a)*(l+tr)
		tr = b*(nl-l) + (1-b)*tr
		season[si] = g*(x-nl) + (1-g)*season[si]
		l = nl
	}
	*level, *trend = l, tr
	return sse
}

func downsample(s *series, upto int, step time.Duration) ([]float64, time.Time) {
	f := int(int64(step/time.Second) / s.stepSec)
	if f < 1 {
		f = 1
	}
	stepSec := int64(f) * s.stepSec
	start := floorDiv(s.t0, stepSec) * stepSec
	off := int((s.t0 - start) / s.stepSec)
	total := off + upto
	n := total / f // complete buckets only
	out := make([]float64, n)
	for i := range out {
		var sum float64
		var c int
		for j := i*f - off; j < (i+1)*f-off; j++ {
			if j >= 0 && j < upto && !math.IsNaN(s.y[j]) {
				sum += s.y[j]
				c++
			}
		}
		out[i] = math.NaN()
		if c > 0 {
			out[i] = sum / float64(c)
		}
	}
	return out, time.Unix(start, 0).UTC()
}

func fitHoltWinters(s *series, upto int) Model {
	step := hwStep
	if s.step > step {
		step = s.step
	}
	y, start := downsample(s, upto, step)
	perDay := int(day / step)
	period := perDay
	if time.Duration(len(y))*step >= 21*day {
		period = 7 * perDay
	}
	if len(y) < 2*period {
		return nil
	}
	stepSec := int64(step / time.Second)
	phase := int(floorDiv(start.Unix(), stepSec) % int64(period))
	noise := diffScale(y)
	clip := 6 * math.Max(noise, 1e-9)
	init := func() (float64, []float64) {
		season := make([]float64, period)
		buf := make([]float64, 0, period)
		for i := 0; i < period; i++ {
			if !math.IsNaN(y[i]) {
				buf = append(buf, y[i])
			}
		}
		l0 := median(buf)
		for i := 0; i < period; i++ {
			si := (phase + i) % period
			if !math.IsNaN(y[i]) {
				season[si] = y[i] - l0
			}
		}
		return l0, season
	}
	// Fit on at most the last four seasons: enough to learn the dynamics, cheap to evaluate.
	from := max(0, len(y)-4*period)
	from -= from % period
	train := y[from:]
	tphase := (phase + from) % period
	season := make([]float64, period)
	obj := func(x []float64) float64 {
		a, b, g := logistic(x[0]), logistic(x[1])*0.2, logistic(x[2])
		l0, s0 := init()
		copy(season, s0)
		tr := 0.0
		return hwRun(train, tphase, a, b, g, &l0, &tr, season, clip, nil)
	}
	res, err := optimize.Minimize(optimize.Problem{Func: obj}, []float64{logit(0.3), logit(0.05), logit(0.2)},
		&optimize.Settings{FuncEvaluations: 120, Converger: &optimize.FunctionConverge{Absolute: 1e-6, Iterations: 30}},
		&optimize.NelderMead{})
	x := []float64{logit(0.3), logit(0.05), logit(0.2)}
	if err == nil && res != nil {
		x = res.X
	}
	m := &hwModel{name: NameHWAdditive, tr: s.tr, k: s.k, step: step,
		alpha: logistic(x[0]), beta: logistic(x[1]) * 0.2, gamma: logistic(x[2]), clip: clip}
	if s.tr.fn == trLog {
		m.name = NameHWMultiplicat
	}
	l0, s0 := init()
	m.season = s0
	resid := make([]float64, len(y))
	hwRun(y, phase, m.alpha, m.beta, m.gamma, &l0, &m.trend, m.season, clip, resid)
	m.level = l0
	buf := make([]float64, 0, len(resid))
	for _, e := range resid[period:] {
		if !math.IsNaN(e) && math.Abs(e) < clip {
			buf = append(buf, e)
		}
	}
	m.sigma = mad(buf, 0)
	m.floor = math.Max(math.Max(0.5*noise, 0.01*s.spread), 1e-9)
	m.next = start.Add(time.Duration(len(y)) * step)
	m.k, m.forSteps, m.spikeK = calibrateHW(s, upto, y, resid, period, m.k, math.Max(m.sigma, m.floor), start, step)
	return m
}

// calibrateHW sizes the band on the alerting buckets (finer than the
// Holt-Winters ones): each is compared with the one-step forecast of the
// bucket it falls in, as the rule compares the recent signal with the band.
func calibrateHW(s *series, upto int, y, resid []float64, period int, k0, scale float64, start time.Time, step time.Duration) (k float64, forSteps int, spikeK float64) {
	f := int64(step/time.Second) / s.stepSec
	off := (s.t0 - start.Unix()) / s.stepSec
	z := make([]float64, upto)
	seen := 0
	for j := range z {
		z[j] = math.NaN()
		i := int((int64(j) + off) / f)
		if i < period || i >= len(y) || math.IsNaN(y[i]) || math.IsNaN(s.y[j]) {
			continue
		}
		z[j] = (s.y[j] - (y[i] - resid[i])) / scale
		seen++
	}
	days := float64(seen) * s.step.Hours() / 24
	k, forSteps = calibrate(z, s.tr, k0, days, s.budget)
	return k, forSteps, calibrateSpike(z, s.tr, k, days, s.budget)
}

// advance consumes complete buckets of recent that the model has not seen.
func (m *hwModel) advance(recent []Point, opts Options) Model {
	s := recentSeries(recent, m.step, m.tr, opts)
	if s == nil {
		return m
	}
	c := *m
	c.season = append([]float64(nil), m.season...)
	var ys []float64
	first := -1
	for j := range s.y {
		t := s.timeOf(j)
		if t.Before(m.next) || !t.Add(m.step).Before(s.end) {
			continue
		}
		if first < 0 {
			first = j
		}
		ys = append(ys, s.y[j])
	}
	if first < 0 {
		return m
	}
	start := s.timeOf(first)
	phase := int(floorDiv(start.Unix(), int64(m.step/time.Second)) % int64(len(m.season)))
	hwRun(ys, phase, c.alpha, c.beta, c.gamma, &c.level, &c.trend, c.season, c.clip, nil)
	c.next = start.Add(time.Duration(len(ys)) * m.step)
	return &c
}

func logistic(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
func logit(p float64) float64    { return math.Log(p / (1 - p)) }
