package baseline

import (
	"math"
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

// GuessKind infers the SLI kind from a series or file name using the naming
// conventions of Prometheus metrics and our recording rules ("" when unsure).
func GuessKind(name string) sli.Kind {
	n := strings.ToLower(name)
	switch {
	case strings.Contains(n, "ratio"), strings.Contains(n, "error"), strings.Contains(n, "fail"):
		return sli.KindRatio
	case strings.Contains(n, "latency"), strings.Contains(n, "duration"), strings.Contains(n, "seconds"),
		strings.Contains(n, "ttft"), strings.Contains(n, "p95"), strings.Contains(n, "p99"):
		return sli.KindLatency
	case strings.Contains(n, "rate"), strings.Contains(n, "qps"), strings.Contains(n, "requests"), strings.Contains(n, "rps"):
		return sli.KindRate
	}
	return ""
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
