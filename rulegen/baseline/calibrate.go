package baseline

import "math"

// alertBudget is how many episodes per day the training data may raise.
// Real incidents in the training data use part of it, so it is generous
// for a clean series and tight for a noisy one.
const alertBudget = 0.2

// calibrateK returns the smallest multiple of k0/8 in [k0, 6·k0] for which
// z (residuals in units of the band scale, NaN = missing) would raise at
// most alertBudget episodes per day under the default policy (two
// consecutive buckets outside to fire, twelve inside to resolve).
func calibrateK(z []float64, tr transform, k0, days float64) float64 {
	if days <= 0 {
		return k0
	}
	limit := math.Max(1, alertBudget*days)
	for k := k0; k <= 6*k0; k += k0 / 8 {
		if float64(episodes(z, tr, k)) <= limit {
			return k
		}
	}
	return 6 * k0
}

func episodes(z []float64, tr transform, k float64) int {
	count, run, quiet := 0, 0, 1<<30
	firing := false
	for _, v := range z {
		out := !math.IsNaN(v) && ((tr.upper && v > k) || (tr.lower && v < -k))
		if out {
			run++
			quiet = 0
			if !firing && run >= 2 {
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
