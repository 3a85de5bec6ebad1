package baseline

import "math"

// alertBudget is how many episodes per day the training data may raise.
// Real incidents in the training data use part of it, so it is generous
// for a clean series and tight for a noisy one.
const alertBudget = 0.2

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
func calibrateK(z []float64, tr transform, k0, days float64, forSteps int) float64 {
	if days <= 0 {
		return k0
	}
	limit := math.Max(1, alertBudget*days)
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
func calibrate(z []float64, tr transform, k0, days float64) (float64, int) {
	k := calibrateK(z, tr, k0, days, 1)
	if k <= 1.5*k0 {
		return k, 1
	}
	best, steps := k, 1
	for f := 2; f <= maxForSteps; f++ {
		if kf := calibrateK(z, tr, k0, days, f); kf < 0.75*best {
			best, steps = kf, f
		}
	}
	return best, steps
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
