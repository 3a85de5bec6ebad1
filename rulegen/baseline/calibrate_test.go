package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func TestCalibrate(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	const n = 14 * 288 // two weeks of 5-minute buckets
	gauss := make([]float64, n)
	spiky := make([]float64, n)
	for i := range gauss {
		gauss[i] = r.NormFloat64()
		spiky[i] = r.NormFloat64()
		// Short bursts of one or two buckets, a few per hour: far beyond any
		// normal band, but never lasting.
		if i%17 == 0 || i%17 == 1 && r.IntN(2) == 0 {
			spiky[i] = 60 + 20*r.Float64()
		}
	}
	tr := transform{upper: true, lower: true}
	for _, tc := range []struct {
		name            string
		z               []float64
		wantK           func(float64) bool
		wantFor, maxFor int
	}{
		{"normal noise keeps k and one bucket", gauss, func(k float64) bool { return k == defaultK }, 1, 1},
		{"short spikes are filtered by time", spiky, func(k float64) bool { return k < 1.5*defaultK }, 2, maxForSteps},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, f := calibrate(tc.z, tr, defaultK, 14, DefaultBudget(""))
			if !tc.wantK(k) || f < tc.wantFor || f > tc.maxFor {
				t.Fatalf("calibrate = k %.2f, for %d buckets", k, f)
			}
			if e := episodes(tc.z, tr, k, f); float64(e) > math.Max(1, DefaultBudget("")*14) {
				t.Fatalf("%d episodes at k %.2f for %d, over the budget", e, k, f)
			}
		})
	}
	// Without the longer confirmation the same spikes need a band far beyond
	// the old 6·K cap, which the bisection must still find.
	if k := calibrateK(spiky, tr, defaultK, 14, DefaultBudget(""), 1); k <= 6*defaultK || float64(episodes(spiky, tr, k, 1)) > DefaultBudget("")*14 {
		t.Fatalf("calibrateK with one bucket = %.2f", k)
	}
}

// Fit hands the calibrated confirmation time to the caller for every model
// kind that calibrates: the rule and the backtest must wait as long.
func TestFitPolicyFollowsSpikes(t *testing.T) {
	spiky := func(t time.Time, r *rand.Rand) float64 {
		v := daily(t, r)
		// A 10-minute burst every 100 minutes: far outside, never lasting.
		if (t.Hour()*60+t.Minute())%100 < 10 {
			v *= 3
		}
		return v
	}
	for _, model := range []string{NameHWAdditive, NameSeasonalDaily} {
		t.Run(model, func(t *testing.T) {
			opts := Options{Models: []string{model}}
			_, clean, err := Fit(series1m(14, daily), opts)
			if err != nil {
				t.Fatal(err)
			}
			if clean != DefaultPolicy(5*time.Minute) {
				t.Errorf("clean series: policy %+v, want the default", clean)
			}
			_, p, err := Fit(series1m(14, spiky), opts)
			if err != nil {
				t.Fatal(err)
			}
			if p.For < 2*5*time.Minute || p.For > maxForSteps*5*time.Minute {
				t.Errorf("spiky series: for %s, want at least the 10-minute bursts (two buckets, so three must be outside) and at most %d buckets", p.For, maxForSteps)
			}
		})
	}
}

// The spike band lies beyond everything the training did, never inside the
// main band, and is absent on too little history.
func TestCalibrateSpike(t *testing.T) {
	tr := transform{upper: true}
	z := []float64{1, -30, 2, math.NaN(), 9, 3}
	if got := calibrateSpike(z, tr, 4, 14, DefaultBudget("")); got != spikeMargin*9 {
		t.Errorf("upper-only spike band %.2f, want %.2f (the −30 is not alerted on)", got, spikeMargin*9)
	}
	if got := calibrateSpike([]float64{1, 2}, tr, 4, 14, DefaultBudget("")); got != minSpikeFactor*4 {
		t.Errorf("clean series: spike band %.2f, want %.2f", got, minSpikeFactor*4)
	}
	if got := calibrateSpike(z, tr, 4, minSpikeDays/2, DefaultBudget("")); got != 0 {
		t.Errorf("short history: spike band %.2f, want none", got)
	}
}

// The Pareto level brings the spike band inside the largest residual of a
// long history (a rarer event than the budget allows: a clear spike fires
// at once), follows the tail (far wider for a heavy one), and is exceeded
// at the rate it was asked for.
func TestSpikeLevel(t *testing.T) {
	tr := transform{upper: true, lower: true}
	r := rand.New(rand.NewPCG(3, 4))
	const days = 42
	gauss := make([]float64, days*288)
	pareto := make([]float64, days*288)
	for i := range gauss {
		gauss[i] = r.NormFloat64()
		// Student-like tail: |z| has a Pareto tail of index 2 (ξ = 0.5).
		pareto[i] = r.NormFloat64() / math.Sqrt(r.ExpFloat64()/2)
	}
	largest := func(z []float64) float64 {
		m := 0.0
		for _, x := range z {
			m = math.Max(m, math.Abs(x))
		}
		return m
	}
	g := calibrateSpike(gauss, tr, 2, days, DefaultBudget(""))
	if !(g < spikeMargin*largest(gauss) && g >= minSpikeFactor*2) {
		t.Errorf("six weeks of normal residuals: spike band %.2f, largest residual %.2f", g, largest(gauss))
	}
	if h := calibrateSpike(pareto, tr, 2, days, DefaultBudget("")); h < 3*g || h > spikeMargin*largest(pareto) {
		t.Errorf("heavy tail: spike band %.2f, want far beyond the normal one (%.2f), at most %.2f", h, g, spikeMargin*largest(pareto))
	}
	// The return level is exceeded about rate times a day on the data it
	// was fitted to (peaks declustered, as the fit counts them).
	for _, rate := range []float64{0.5, 2} {
		lvl, ok := spikeLevel(gauss, tr, days, rate)
		if !ok {
			t.Fatal("no level fitted")
		}
		n := 0
		for i, x := range gauss {
			if math.Abs(x) > lvl && (i == 0 || math.Abs(gauss[i-1]) <= lvl) {
				n++
			}
		}
		if got := float64(n) / days; got < rate/2 || got > rate*2 {
			t.Errorf("level %.2f at %g/day is exceeded %.2f times a day", lvl, rate, got)
		}
	}
}
