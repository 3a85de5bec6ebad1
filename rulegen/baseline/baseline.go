// Package baseline learns the normal shape of an SLI series and turns it
// into bands that alerts compare against.
//
// Fitting works on a downsampled copy of the history (Options.Step buckets,
// 5 minutes by default) in a per-SLI transformed space (log for latency and
// rates, arcsine-square-root for error ratios) where noise is roughly
// constant. Several candidate models are fitted on all but the most recent
// part of the history, scored on that held-out part, and the winner is
// refitted on everything. See README.md for the methods.
package baseline

import (
	"errors"
	"math"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// Point is one sample of a series.
type Point struct {
	T time.Time
	V float64
}

// Window is a time range excluded from training (a past incident).
type Window struct {
	Start, End time.Time
}

// Options steer a fit.
type Options struct {
	// Kind selects the per-SLI treatment; "" means detect automatically.
	Kind sli.Kind
	// Exclude are incident windows kept out of the training data.
	Exclude []Window
	// K is the half-width of the band in robust standard deviations (default 4).
	K float64
	// Budget is the false-alert rate the band is calibrated to: the most
	// alert episodes per day of data its own training residuals may raise
	// (default DefaultBudget of the kind).
	Budget float64
	// Step is the bucket width used for fitting and for the signal alerts
	// compare (default: the larger of 5m and the sampling step).
	Step time.Duration
	// Models restricts the candidates by name (default: all that the history length allows).
	Models []string
	// Traffic is the request rate behind a ratio SLI (same timestamps or
	// coarser); where it is below MinTraffic the ratio is not trusted.
	Traffic []Point
	// MinTraffic is the request rate below which points are ignored for
	// fitting (default 0: no guard). Alerting needs the same guard in the
	// rule (`and traffic > MinTraffic`): a ratio over a tiny denominator
	// never pages.
	MinTraffic float64
}

// Band is the range of normal values at one instant. A NaN bound means "no bound on that side".
type Band struct {
	Lower, Expected, Upper float64
	// SpikeLower and SpikeUpper are the wider spike band: a value beyond
	// it fires at once (`for: 0`), while the main band waits for the
	// policy's For. NaN means no spike rule on that side.
	SpikeLower, SpikeUpper float64
}

// Model is a fitted baseline.
type Model interface {
	// Name identifies the method ("seasonal_robust", "holt_winters_additive", ...).
	Name() string
	// Band returns the band at t (t after the training data).
	Band(t time.Time) Band
}

// Policy is how alerts use a band: a value must stay outside for For before
// firing, and the alert keeps firing for KeepFiringFor after it returns
// (hysteresis). Generated rules and the backtest share it.
type Policy struct {
	For           time.Duration
	KeepFiringFor time.Duration
}

// ErrNoHistory is returned when there is too little data to fit anything.
var ErrNoHistory = errors.New("not enough history to fit a baseline")

// Model names.
const (
	NameSeasonalWeekly = "seasonal_robust_weekly"
	NameSeasonalDaily  = "seasonal_robust_daily"
	NameRobustLevel    = "robust_level"
	NameHWAdditive     = "holt_winters_additive"
	NameHWMultiplicat  = "holt_winters_multiplicative"
	NameRolling        = "rolling_mean_sigma"
)

const (
	defaultK    = 4.0
	defaultStep = 5 * time.Minute
	day         = 24 * time.Hour
	week        = 7 * day
	// minBuckets is the least history (in buckets) any model is fitted on.
	minBuckets = 24
)

// DefaultPolicy is the for/keep_firing_for pair used for a bucket width:
// one bucket of confirmation keeps single spikes quiet while onsets are
// still reported within two buckets; an hour of hysteresis (at 5-minute
// buckets) merges a flapping incident into one notification.
func DefaultPolicy(step time.Duration) Policy {
	if step <= 0 {
		step = defaultStep
	}
	return Policy{For: step, KeepFiringFor: 12 * step}
}

// Fit learns a model from history (ordered by time).
func Fit(history []Point, opts Options) (Model, Policy, error) {
	s, err := prepare(history, opts)
	if err != nil {
		return nil, Policy{}, err
	}
	m := s.selectModel(opts)
	if m == nil {
		return nil, Policy{}, ErrNoHistory
	}
	return m, policyOf(m, s.step), nil
}

// policyOf is the default policy with the confirmation time the model
// calibrated for its series (longer for spiky ones).
func policyOf(m Model, step time.Duration) Policy {
	p := DefaultPolicy(step)
	steps := 1
	switch x := m.(type) {
	case *profileModel:
		steps = x.forSteps
	case *hwModel:
		steps = x.forSteps
	}
	if steps > 1 {
		p.For = time.Duration(steps) * p.For
	}
	return p
}

func nan() float64 { return math.NaN() }
