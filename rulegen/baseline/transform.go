package baseline

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// transform maps values to a space where noise is roughly additive and
// constant, and back.
type transform struct {
	kind   sli.Kind
	fn     int // trIdentity, trLog, trAsinSqrt
	offset float64
	// lower/upper say which sides alert.
	lower, upper bool
}

const (
	trIdentity = iota
	trLog
	trAsinSqrt
)

// Detection is what the values of a series say about its kind.
type Detection struct {
	// Kind is sli.KindRatio for a series that stays within [0, 1], else ""
	// (a level of unknown meaning: both bounds, on its own scale).
	Kind sli.Kind
	// Evidence names what the values showed, for the operator reading the
	// choice ("all 4032 values within [0, 1]", "counts: non-negative
	// integers", "heavy right tail: p99 is 14× the median", ...).
	Evidence string
}

// Name is the kind as reports print it ("ratio", "level").
func (d Detection) Name() string {
	if d.Kind == "" {
		return "level"
	}
	return string(d.Kind)
}

// DetectKind decides how to treat a series of unknown meaning from its
// values alone; a name says little about a series (a file called
// "…_failure" holds temperatures). Values within [0, 1] are a ratio: the
// arcsine-square-root scale, alerted upwards only (fewer errors are never
// an incident). Anything else is a level, alerted both ways on its own
// scale: values cannot tell whether a rise or a fall hurts, nor a request
// rate from a latency (pass the kind for those). The evidence also names
// counts and a heavy right tail, which the calibrated band handles (its
// width comes from the series' own residuals, not from a normal tail).
func DetectKind(pts []Point) Detection {
	var k KindEvidence
	for _, p := range pts {
		k.Add(p.V)
	}
	return k.Detect()
}

// kindSample is how many values KindEvidence keeps for its quantiles.
const kindSample = 1 << 16

// KindEvidence accumulates what DetectKind looks at in bounded memory, for
// series streamed from a file: exact range and integrality, quantiles from
// a uniform sample (reservoir sampling with a fixed seed, so the same file
// always gives the same answer).
type KindEvidence struct {
	n        int
	lo, hi   float64
	fraction bool
	sample   []float64
	rng      *rand.Rand
}

// Add takes one value; NaN and ±Inf are not values.
func (k *KindEvidence) Add(v float64) {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return
	}
	if k.n == 0 {
		k.lo, k.hi = v, v
		k.rng = rand.New(rand.NewPCG(1, 2))
	}
	k.n++
	k.lo, k.hi = math.Min(k.lo, v), math.Max(k.hi, v)
	if v != math.Trunc(v) {
		k.fraction = true
	}
	if len(k.sample) < kindSample {
		k.sample = append(k.sample, v)
	} else if j := k.rng.IntN(k.n); j < kindSample {
		k.sample[j] = v
	}
}

// Detect decides; see DetectKind.
func (k *KindEvidence) Detect() Detection {
	if k.n == 0 {
		return Detection{Evidence: "no finite values"}
	}
	lo, hi := k.lo, k.hi
	if lo >= 0 && hi <= 1 {
		return Detection{Kind: sli.KindRatio, Evidence: fmt.Sprintf("all %d values within [0, 1]", k.n)}
	}
	vals := slices.Clone(k.sample)
	slices.Sort(vals)
	q := func(p float64) float64 { return vals[int(p*float64(len(vals)-1))] }
	var ev []string
	if lo < 0 {
		ev = append(ev, "negative values")
	}
	if !k.fraction && lo >= 0 {
		ev = append(ev, "counts: non-negative integers")
	}
	// A heavy right tail: the top percentile lies further above the median
	// than three times the median's distance from the minimum.
	if med, p99 := q(0.5), q(0.99); lo >= 0 && med > 0 && p99-med > 3*(med-lo) {
		ev = append(ev, fmt.Sprintf("heavy right tail: p99 is %.3g× the median", p99/med))
	}
	if len(ev) == 0 {
		ev = append(ev, fmt.Sprintf("values from %.4g to %.4g", lo, hi))
	}
	return Detection{Evidence: strings.Join(ev, "; ")}
}

// newTransform picks the treatment for kind, inspecting values when kind is "".
func newTransform(kind sli.Kind, vals []float64) transform {
	finite := make([]float64, 0, len(vals))
	for _, v := range vals {
		if !math.IsNaN(v) && !math.IsInf(v, 0) {
			finite = append(finite, v)
		}
	}
	sort.Float64s(finite)
	q := func(p float64) float64 {
		if len(finite) == 0 {
			return 0
		}
		return finite[int(p*float64(len(finite)-1))]
	}
	switch kind {
	case sli.KindLatency:
		// Faster than usual is never an incident.
		return transform{kind: kind, fn: trLog, offset: 1e-3 * math.Max(q(0.5), 1e-9), upper: true}
	case sli.KindRate:
		// A small offset keeps zero traffic finite without letting quiet hours dominate.
		return transform{kind: kind, fn: trLog, offset: 0.05*q(0.5) + 1e-9, lower: true, upper: true}
	case sli.KindRatio:
		return transform{kind: kind, fn: trAsinSqrt, upper: true}
	}
	// Unknown series (CPU, temperature, bytes): alert both ways on the raw scale.
	return transform{fn: trIdentity, lower: true, upper: true}
}

func (tr transform) fwd(v float64) float64 {
	switch tr.fn {
	case trLog:
		if v < 0 {
			v = 0
		}
		return math.Log(v + tr.offset)
	case trAsinSqrt:
		v = math.Min(math.Max(v, 0), 1)
		return math.Asin(math.Sqrt(v))
	}
	return v
}

func (tr transform) inv(y float64) float64 {
	switch tr.fn {
	case trLog:
		return math.Exp(y) - tr.offset
	case trAsinSqrt:
		y = math.Min(math.Max(y, 0), math.Pi/2)
		s := math.Sin(y)
		return s * s
	}
	return y
}

// band turns an expectation and half-width in transformed space into a Band.
func (tr transform) band(exp, half float64) Band {
	b := Band{Lower: nan(), Expected: tr.inv(exp), Upper: nan(), SpikeLower: nan(), SpikeUpper: nan()}
	if tr.lower {
		b.Lower = tr.inv(exp - half)
		if tr.fn == trLog && b.Lower <= 0 {
			b.Lower = nan()
		}
	}
	if tr.upper {
		b.Upper = tr.inv(exp + half)
	}
	return b
}

// withSpike adds the spike band of half-width spikeHalf (transformed space)
// to b; spikeHalf ≤ 0 means the model has none.
func (tr transform) withSpike(b Band, exp, spikeHalf float64) Band {
	if spikeHalf <= 0 {
		return b
	}
	s := tr.band(exp, spikeHalf)
	b.SpikeLower, b.SpikeUpper = s.Lower, s.Upper
	return b
}
