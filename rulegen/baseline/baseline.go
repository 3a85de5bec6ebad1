// Package baseline learns the normal shape of an SLI series and turns it
// into bands that alerts compare against.
package baseline

import (
	"errors"
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
}

// Band is the range of normal values at one instant. A NaN bound means "no bound on that side".
type Band struct {
	Lower, Expected, Upper float64
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

// Fit learns a model from history (ordered by time).
func Fit(history []Point, opts Options) (Model, Policy, error) {
	return nil, Policy{}, ErrNoHistory
}
