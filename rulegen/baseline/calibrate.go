package baseline

import (
	"math"
	"slices"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// DefaultBudget is how many alert episodes per day of data the band may
// raise on its own training residuals (Options.Budget) when nothing else is
// said: the setting cross-validation chooses on the development series
// (rulegen/score TestQualityReport). Real incidents in the training data
// use part of it, so it must exceed their rate: the LLM API SLIs (request
// rate, latency, error ratio) choose 0.2 per day, series of unknown kind
// (machines, sensors, business metrics) 0.1.
func DefaultBudget(kind sli.Kind) float64 {
	if kind == "" {
		return 0.1
	}
	return 0.2
}

// maxKFactor bounds the widening: a band more than this many times K wide
// (in robust σ) only catches what a static threshold would.
const maxKFactor = 40

// calibrateK returns the smallest k ≥ k0 for which z (residuals in units of
// the band scale, NaN = missing) would raise at most budget episodes per
// day of data when forSteps+1 consecutive buckets outside fire and twelve
// inside resolve, to within k0/8: the band is the empirical quantile of
// the series' own alert episodes at the stated false-alert rate, not a
// normal one, so heavy-tailed series (spiky CPU, bursty traffic) whose
// robust σ says little about their spikes get the width their tail needs
// (searched up to maxKFactor·k0). The budget is a rate: d days of data may
// raise budget·d episodes, so a history shorter than 1/budget days may
// raise none (its band covers everything it saw).
func calibrateK(z []float64, tr transform, k0, days, budget float64, forSteps int) float64 {
	if days <= 0 {
		return k0
	}
	limit := budget * days
	ok := func(k float64) bool { return float64(episodes(z, tr, k, forSteps)) <= limit }
	if ok(k0) {
		return k0
	}
	// Episodes fall (almost) monotonically with k, so bisection to k0/8
	// finds the edge in a few passes over the residuals.
	lo, hi := k0, 6*k0
	if !ok(hi) {
		lo, hi = hi, maxKFactor*k0
		if !ok(hi) {
			return hi
		}
	}
	for i := 0; i < 20 && hi-lo > k0/8; i++ {
		mid := (lo + hi) / 2
		if ok(mid) {
			hi = mid
		} else {
			lo = mid
		}
	}
	return hi
}

// calibrate picks the band width and the confirmation time together. A
// clean series keeps one bucket of confirmation. A spiky one, whose band
// would have to be far wider than k0 to stay within the budget, waits up to
// maxForSteps buckets when that lets the band be clearly narrower: short
// spikes are then filtered by time instead of by width, and lasting shifts
// of moderate size are still caught.
func calibrate(z []float64, tr transform, k0, days, budget float64) (float64, int) {
	k := calibrateK(z, tr, k0, days, budget, 1)
	if k <= 1.5*k0 {
		return k, 1
	}
	best, steps := k, 1
	for f := 2; f <= maxForSteps; f++ {
		if kf := calibrateK(z, tr, k0, days, budget, f); kf < 0.75*best {
			best, steps = kf, f
		}
	}
	return best, steps
}

// minSpikeFactor keeps the spike band clearly outside the main band: a
// value just past the main band must still wait for confirmation.
const minSpikeFactor = 1.5

// spikeMargin is how far beyond the largest training residual the spike
// band lies at most: a value beyond everything seen, by a margin, fires at
// once. Training residuals are in-sample (against the day's level), so
// live ones are somewhat wider.
const spikeMargin = 1.1

// minSpikeDays is the least training (days of data seen) a spike band is
// set from: the largest residual of a shorter history says little about
// the tail (on llm-sli-dev the first week's spike bands fired on ordinary
// peaks).
const minSpikeDays = 3

// calibrateSpike returns the half-width (in the units of z) of the spike
// band, 0 (none) on less than minSpikeDays of data. A value beyond it fires
// at once, without the confirmation time of the main band, because `for`
// cannot catch an anomaly that lasts a single bucket (a drop to near zero,
// a sensor glitch) however extreme it is.
//
// The width is the nearer of two bounds on the series' own tail: just
// beyond the largest residual seen (the empirical bound: one chance in n
// per bucket of being exceeded by chance), and the level its peaks exceed
// at half the false-alert budget according to a generalised Pareto fit of
// its peaks over a threshold (spikeLevel). Over weeks of history the
// largest residual is a rarer event than the budget allows, so the Pareto
// level lies inside it and a clear spike fires at the first bucket instead
// of waiting for `for`; over a few days of a heavy tail the Pareto level
// lies beyond it, and the empirical bound still catches any value beyond
// everything seen.
func calibrateSpike(z []float64, tr transform, k, days, budget float64) float64 {
	if days < minSpikeDays {
		return 0
	}
	var largest float64
	for _, x := range z {
		if !math.IsNaN(x) {
			largest = math.Max(largest, excess(x, tr))
		}
	}
	w := spikeWidth(largest, k)
	if evt, ok := spikeLevel(z, tr, days, budget/2); ok {
		w = math.Max(minSpikeFactor*k, math.Min(w, evt))
	}
	return w
}

// Peaks over threshold: the threshold is the spikeQuantile of the
// excesses, at least minPeaks declustered peaks must lie beyond it.
const (
	spikeQuantile = 0.97
	minPeaks      = 10
)

// spikeLevel is the excess that the series' peaks exceed rate times per
// day: runs of buckets beyond the spikeQuantile of z's excesses are
// declustered to their maxima, a generalised Pareto distribution is fitted
// to the peaks' overshoot by probability-weighted moments (Hosking &
// Wallis 1987), and its return level at that rate is returned. ok is false
// with fewer than minPeaks peaks.
func spikeLevel(z []float64, tr transform, days, rate float64) (float64, bool) {
	ex := make([]float64, 0, len(z))
	for _, x := range z {
		if !math.IsNaN(x) {
			ex = append(ex, excess(x, tr))
		}
	}
	if len(ex) < minPeaks || days <= 0 || rate <= 0 {
		return 0, false
	}
	sorted := slices.Clone(ex)
	slices.Sort(sorted)
	u := sorted[int(spikeQuantile*float64(len(sorted)-1))]
	if u <= 0 {
		return 0, false
	}
	var peaks []float64
	run := 0.0
	for _, e := range ex {
		if e > u {
			run = math.Max(run, e)
			continue
		}
		if run > 0 {
			peaks = append(peaks, run-u)
			run = 0
		}
	}
	if run > 0 {
		peaks = append(peaks, run-u)
	}
	if len(peaks) < minPeaks {
		return 0, false
	}
	slices.Sort(peaks)
	n := float64(len(peaks))
	var a0, a1 float64
	for i, y := range peaks {
		a0 += y
		a1 += (1 - (float64(i+1)-0.35)/n) * y
	}
	a0, a1 = a0/n, a1/n
	if a0-2*a1 <= 0 {
		return 0, false
	}
	// Shape ξ (> 0: heavy tail), bounded to where the fit is stable.
	xi := math.Max(-0.5, math.Min(0.9, 2-a0/(a0-2*a1)))
	sigma := 2 * a0 * a1 / (a0 - 2*a1)
	lambda := n / days
	if lambda <= rate {
		return u, true
	}
	if math.Abs(xi) < 1e-6 {
		return u + sigma*math.Log(lambda/rate), true
	}
	return u + sigma/xi*(math.Pow(lambda/rate, xi)-1), true
}

// excess is how far z lies outside in the directions tr alerts on (0 inside).
func excess(z float64, tr transform) float64 {
	switch {
	case tr.upper && z > 0:
		return z
	case tr.lower && z < 0:
		return -z
	}
	return 0
}

// spikeWidth lies beyond the largest training residual, and at least
// minSpikeFactor times the main band's k.
func spikeWidth(largest, k float64) float64 {
	return math.Max(minSpikeFactor*k, spikeMargin*largest)
}

// maxForSteps bounds the confirmation time (in buckets) of spiky series.
const maxForSteps = 6

func episodes(z []float64, tr transform, k float64, forSteps int) int {
	count, run, quiet := 0, 0, 1<<30
	firing := false
	for _, v := range z {
		out := !math.IsNaN(v) && ((tr.upper && v > k) || (tr.lower && v < -k))
		if out {
			run++
			quiet = 0
			if !firing && run > forSteps {
				firing = true
				count++
			}
			continue
		}
		run = 0
		quiet++
		if firing && quiet >= 12 {
			firing = false
		}
	}
	return count
}
