package baseline

import (
	"math"
	"slices"
	"time"
)

type candidate struct {
	name string
	// need is the least history the candidate is fitted on.
	need time.Duration
	// penalty makes a more complex model win only when clearly better.
	penalty float64
	fit     func(s *series, upto int) Model
}

func candidates() []candidate {
	return []candidate{
		{NameSeasonalWeekly, 13 * day, 0.9, func(s *series, upto int) Model {
			return fitProfile(s, upto, int(int64(week/time.Second)/s.stepSec), NameSeasonalWeekly)
		}},
		{NameSeasonalDaily, 2 * day, 1.0, func(s *series, upto int) Model {
			return fitProfile(s, upto, int(int64(day/time.Second)/s.stepSec), NameSeasonalDaily)
		}},
		{NameHWAdditive, 3 * day, 1.05, func(s *series, upto int) Model { return fitHoltWinters(s, upto) }},
		{NameRobustLevel, 0, 1.0, func(s *series, upto int) Model { return fitProfile(s, upto, 1, NameRobustLevel) }},
		{NameRolling, 0, 1.0, func(s *series, upto int) Model { return fitRolling(s, upto, day) }},
	}
}

// expectedT is the expectation of m at t in transformed space.
func expectedT(m Model, tr transform, t time.Time) float64 {
	switch x := m.(type) {
	case *profileModel:
		return x.expected(t)
	case *rollingModel:
		return x.mean
	case *hwModel:
		return x.expected(t)
	}
	return tr.fwd(m.Band(t).Expected)
}

// selectModel fits the candidates on all but the most recent day (or fifth
// of the history), scores their forecasts on it with outlier-capped absolute
// error, and refits the best on everything.
func (s *series) selectModel(opts Options) Model {
	n := len(s.y)
	span := time.Duration(n) * s.step
	hold := min(int(int64(day/time.Second)/s.stepSec), n/5)
	train := n - hold
	cap := 6 * math.Max(s.noise, 1e-12)
	var best candidate
	var bestModel Model
	bestScore := math.Inf(1)
	var allowed []candidate
	for _, c := range candidates() {
		if len(opts.Models) > 0 && !slices.Contains(opts.Models, c.name) {
			continue
		}
		if span < c.need {
			continue
		}
		allowed = append(allowed, c)
	}
	if len(allowed) == 0 {
		return nil
	}
	// A series with a clear daily rhythm must keep a seasonal model even
	// when the held-out day happens to be flat (a weekend of latency): a
	// flat baseline chosen on Sunday pages on Monday's first peak.
	if len(allowed) > 1 && allowed[0].need > 0 && s.seasonalStrength(train) >= minSeasonalStrength {
		allowed = slices.DeleteFunc(allowed, func(c candidate) bool { return c.name == NameRobustLevel || c.name == NameRolling })
	}
	if len(allowed) == 1 || hold < minBuckets/2 {
		return allowed[0].fit(s, n)
	}
	type scored struct {
		c    candidate
		m    Model
		errs []float64 // per held-out bucket, capped; NaN where missing
	}
	var fitted []scored
	hourBuckets := max(1, int(int64(time.Hour/time.Second)/s.stepSec))
	for _, c := range allowed {
		if time.Duration(train)*s.step < c.need {
			continue
		}
		m := c.fit(s, train)
		if m == nil {
			continue
		}
		errs := make([]float64, n-train)
		pm, isProfile := m.(*profileModel)
		for j := train; j < n; j++ {
			if isProfile && (j-train)%hourBuckets == 0 && j > train {
				// Production refreshes the level between refits; score it that way.
				pm.refreshFrom(s, j)
			}
			errs[j-train] = math.NaN()
			if math.IsNaN(s.y[j]) {
				continue
			}
			e := math.Abs(s.y[j] - expectedT(m, s.tr, s.timeOf(j)))
			if math.IsNaN(e) {
				e = cap
			}
			errs[j-train] = math.Min(e, cap)
		}
		fitted = append(fitted, scored{c, m, errs})
	}
	// Buckets that most candidates find far off are an incident in the
	// held-out day, not evidence of fit: a model that happens to adopt the
	// incident as its level must not win by it.
	skip := make([]bool, n-train)
	for i := range skip {
		capped := 0
		for _, f := range fitted {
			if f.errs[i] >= cap {
				capped++
			}
		}
		skip[i] = len(fitted) >= 3 && capped >= len(fitted)-1
	}
	for _, f := range fitted {
		var sum float64
		var cnt int
		for i, e := range f.errs {
			if !math.IsNaN(e) && !skip[i] {
				sum += e
				cnt++
			}
		}
		if cnt == 0 {
			continue
		}
		penalty := f.c.penalty
		if f.c.name == NameHWAdditive && s.tr.kind == "" {
			// The seasonal profiles are built for traffic-driven SLIs; a
			// metric of unknown kind (CPU, disk, sensors) has dynamics of its
			// own, which the fitted smoothing of Holt-Winters follows better.
			penalty = 0.95
		}
		score := sum / float64(cnt) * penalty
		if score < bestScore {
			best, bestScore, bestModel = f.c, score, f.m
		}
	}
	if best.fit == nil {
		best = allowed[len(allowed)-1]
	}
	// A seasonal shape learned up to a day ago is as good as a fresh one;
	// bringing its level up to date halves the cost of a fit.
	if pm, ok := bestModel.(*profileModel); ok && pm.period > 1 {
		pm.refreshFrom(s, n)
		return pm
	}
	return best.fit(s, n)
}

// Refresh brings a fitted model up to date with observations newer than its
// training data without refitting its shape: the recent level and the day
// type of seasonal profiles, the mean of the rolling floor, the state of
// Holt-Winters. It is cheap enough to run at every rule evaluation step;
// only the last days of history are read.
func Refresh(m Model, history []Point, opts Options) Model {
	if len(history) == 0 {
		return m
	}
	end := history[len(history)-1].T
	from := end.Add(-2 * day)
	i, _ := slices.BinarySearchFunc(history, from, func(p Point, t time.Time) int { return p.T.Compare(t) })
	recent := history[i:]
	switch x := m.(type) {
	case *profileModel:
		s := recentSeries(recent, x.step, x.tr, opts)
		if s == nil {
			return m
		}
		c := *x
		c.refreshFrom(s, len(s.y))
		return &c
	case *rollingModel:
		s := recentSeries(recent, x.step, x.tr, opts)
		if s == nil {
			return m
		}
		c := *x
		c.refreshFrom(s, len(s.y))
		return &c
	case *hwModel:
		return x.advance(recent, opts)
	}
	return m
}

// recentSeries buckets a short stretch of history with a known transform.
func recentSeries(h []Point, step time.Duration, tr transform, opts Options) *series {
	stepSec := int64(step / time.Second)
	if len(h) == 0 || stepSec <= 0 {
		return nil
	}
	t0 := floorDiv(h[0].T.Unix(), stepSec) * stepSec
	n := int((h[len(h)-1].T.Unix()-t0)/stepSec) + 1
	sum := make([]float64, n)
	cnt := make([]int, n)
	for _, p := range h {
		if math.IsNaN(p.V) || math.IsInf(p.V, 0) {
			continue
		}
		j := int((p.T.Unix() - t0) / stepSec)
		sum[j] += p.V
		cnt[j]++
	}
	for j := range sum {
		if cnt[j] == 0 {
			sum[j] = math.NaN()
		} else {
			sum[j] = tr.fwd(sum[j] / float64(cnt[j]))
		}
	}
	for _, w := range opts.Exclude {
		a := int(floorDiv(w.Start.Unix()-t0, stepSec))
		b := int(floorDiv(w.End.Unix()-t0, stepSec))
		for j := max(a, 0); j <= b && j < n; j++ {
			sum[j] = math.NaN()
		}
	}
	return &series{step: step, stepSec: stepSec, t0: t0, y: sum, tr: tr, end: h[len(h)-1].T}
}

// minSeasonalStrength is the share of within-day variance a time-of-day
// profile must explain for a series to count as seasonal.
const minSeasonalStrength = 0.5

// seasonalStrength is how much of the within-day variation of s.y[:upto]
// an hour-of-day profile explains (Hyndman's strength of seasonality,
// 1 − Var(remainder)/Var(season+remainder)): near 1 for traffic with a daily
// rhythm, near 0 for noise around a level. Day levels are removed first, so
// growth and weekday/weekend differences in level do not count as season.
func (s *series) seasonalStrength(upto int) float64 {
	spd := int(int64(day/time.Second) / s.stepSec)
	if spd < 24 || upto < 2*spd {
		return 0
	}
	day0 := floorDiv(s.t0, 86400)
	dayOf := func(j int) int { return int(floorDiv(s.t0+int64(j)*s.stepSec, 86400) - day0) }
	hourOf := func(j int) int { return int((s.t0+int64(j)*s.stepSec)%86400+86400) % 86400 / 3600 }
	byDay := make([][]float64, dayOf(upto-1)+1)
	for j, x := range s.y[:upto] {
		if !math.IsNaN(x) {
			byDay[dayOf(j)] = append(byDay[dayOf(j)], x)
		}
	}
	levels := make([]float64, len(byDay))
	for d, v := range byDay {
		levels[d] = median(v)
	}
	var byHour [24][]float64
	for j, x := range s.y[:upto] {
		if lv := levels[dayOf(j)]; !math.IsNaN(x) && !math.IsNaN(lv) {
			byHour[hourOf(j)] = append(byHour[hourOf(j)], x-lv)
		}
	}
	var season [24]float64
	r := make([]float64, 0, upto)
	for h, vs := range byHour {
		if len(vs) == 0 {
			// An hour of day never seen: too gappy to call the series
			// seasonal, so every candidate stays allowed.
			return 0
		}
		season[h] = median(slices.Clone(vs))
		for _, v := range vs {
			r = append(r, v-season[h])
		}
	}
	// Variances, not MADs: a peak of a few hours is most of the season
	// and a median-based scale would ignore it. The remainder is clipped so
	// an incident in the history does not make a rhythm look like noise.
	clip := 5 * mad(slices.Clone(r), median(slices.Clone(r)))
	// Both variances are about the seasonal mean (the remainder's own mean
	// is noise, not season).
	var mean, sq, rest float64
	for h, vs := range byHour {
		for _, v := range vs {
			e := math.Max(-clip, math.Min(clip, v-season[h]))
			rest += e * e
			mean += season[h]
			sq += (season[h] + e) * (season[h] + e)
		}
	}
	n := float64(len(r))
	total := sq/n - (mean/n)*(mean/n)
	if !(total > 0) {
		return 0
	}
	return math.Max(0, 1-rest/n/total)
}
