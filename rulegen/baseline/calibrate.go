package baseline

import "math"

// DefaultBudget is how many alert episodes per day of data the band may
// raise on its own training residuals (Options.Budget). Real incidents in
// the training data use part of it, so it is generous for a clean series
// and tight for a noisy one.
const DefaultBudget = 0.2

// maxKFactor bounds the widening: a band more than this many times K wide
// (in robust σ) only catches what a static threshold would.
const maxKFactor = 40

// calibrateK returns the smallest k ≥ k0 for which z (residuals in units of
// the band scale, NaN = missing) would raise at most alertBudget episodes
// per day when forSteps+1 consecutive buckets outside fire and twelve inside
// resolve, to within k0/8. Heavy-tailed series (spiky CPU, bursty traffic)
// whose robust σ says little about their spikes are searched up to
// maxKFactor·k0, so the band follows the empirical tail rather than a
// normal one.
func calibrateK(z []float64, tr transform, k0, days, budget float64, forSteps int) float64 {
	if days <= 0 {
		return k0
	}
	limit := math.Max(1, budget*days)
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
// band lies. Training residuals are in-sample (against the day's level), so
// live ones are somewhat wider; a budget of one training episode (as for the
// main band) put the band between the two largest residuals and fired on
// every new record of heavy-tailed series (+37 false episodes on nab-dev).
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
func calibrateSpike(z []float64, tr transform, k, days float64) float64 {
	if days < minSpikeDays {
		return 0
	}
	var largest float64
	for _, x := range z {
		if !math.IsNaN(x) {
			largest = math.Max(largest, excess(x, tr))
		}
	}
	return spikeWidth(largest, k)
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
