package baseline

import (
	"errors"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

func series1m(days int, f func(t time.Time, r *rand.Rand) float64) []Point {
	r := rand.New(rand.NewPCG(5, 6))
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	pts := make([]Point, days*1440)
	for i := range pts {
		t := start.Add(time.Duration(i) * time.Minute)
		pts[i] = Point{T: t, V: f(t, r)}
	}
	return pts
}

func daily(t time.Time, r *rand.Rand) float64 {
	h := float64(t.Hour()) + float64(t.Minute())/60
	return 100 * (1.5 + math.Sin((h-6)/24*2*math.Pi)) * (1 + 0.02*r.NormFloat64())
}

func TestFitNoHistory(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	nan := make([]Point, 600)
	for i := range nan {
		nan[i] = Point{T: start.Add(time.Duration(i) * time.Minute), V: math.NaN()}
	}
	for name, h := range map[string][]Point{
		"empty":   nil,
		"one":     {{T: start, V: 1}},
		"20 min":  series1m(1, daily)[:20],
		"all NaN": nan,
	} {
		t.Run(name, func(t *testing.T) {
			if _, _, err := Fit(h, Options{}); !errors.Is(err, ErrNoHistory) {
				t.Fatalf("got %v, want ErrNoHistory", err)
			}
		})
	}
}

func TestBandsFollowSeasonAndKind(t *testing.T) {
	h := series1m(10, daily)
	end := h[len(h)-1].T
	for _, tc := range []struct {
		kind         sli.Kind
		lower, upper bool
	}{
		{sli.KindRate, true, true},
		{sli.KindLatency, false, true},
		{"", true, true},
	} {
		t.Run(string(tc.kind), func(t *testing.T) {
			m, p, err := Fit(h, Options{Kind: tc.kind})
			if err != nil {
				t.Fatal(err)
			}
			if p.For <= 0 || p.KeepFiringFor <= 0 {
				t.Fatalf("policy %+v", p)
			}
			// Peak (12:00) and trough (00:00) of the next day must differ like the data.
			peak := m.Band(time.Date(end.Year(), end.Month(), end.Day(), 12, 0, 0, 0, time.UTC).Add(24 * time.Hour))
			trough := m.Band(time.Date(end.Year(), end.Month(), end.Day(), 0, 0, 0, 0, time.UTC).Add(24 * time.Hour))
			if math.Abs(peak.Expected-250) > 15 || math.Abs(trough.Expected-50) > 10 {
				t.Fatalf("%s: expected peak %.1f (want ~250), trough %.1f (want ~50)", m.Name(), peak.Expected, trough.Expected)
			}
			if math.IsNaN(peak.Lower) == tc.lower || math.IsNaN(peak.Upper) == tc.upper {
				t.Fatalf("bounds %+v, want lower=%v upper=%v", peak, tc.lower, tc.upper)
			}
			if tc.upper && !(peak.Upper > 250 && peak.Upper < 400) {
				t.Fatalf("upper %.1f not a sensible margin over 250", peak.Upper)
			}
		})
	}
}

func TestExcludeAndSelfExclusionKeepIncidentsOut(t *testing.T) {
	h := series1m(10, daily)
	// A 2-hour outage ending one hour before the end of history (longer
	// deviations are accepted as the new level after about three hours).
	n := len(h)
	inc := Window{Start: h[n-180].T, End: h[n-60].T}
	for i := n - 180; i <= n-60; i++ {
		h[i].V *= 0.1
	}
	for name, opts := range map[string]Options{
		"excluded":      {Kind: sli.KindRate, Exclude: []Window{inc}},
		"self-excluded": {Kind: sli.KindRate},
	} {
		t.Run(name, func(t *testing.T) {
			m, _, err := Fit(h, opts)
			if err != nil {
				t.Fatal(err)
			}
			at := h[n-1].T.Add(10 * time.Minute)
			want := daily(at, rand.New(rand.NewPCG(1, 1))) // noise is 2 %; compare loosely
			if b := m.Band(at); b.Expected < 0.8*want {
				t.Fatalf("%s learned the outage: expected %.1f, normal ~%.1f", m.Name(), b.Expected, want)
			}
		})
	}
}

func TestRatioUsesUpperBoundOnly(t *testing.T) {
	h := series1m(5, func(t time.Time, r *rand.Rand) float64 { return math.Abs(0.01 + 0.003*r.NormFloat64()) })
	m, _, err := Fit(h, Options{Kind: sli.KindRatio})
	if err != nil {
		t.Fatal(err)
	}
	b := m.Band(h[len(h)-1].T.Add(time.Minute))
	if !math.IsNaN(b.Lower) || !(b.Upper > 0.012 && b.Upper < 0.05) {
		t.Fatalf("ratio band %+v", b)
	}
}

func TestDetectKindFromValues(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pts := func(f func(i int) float64) []Point {
		out := make([]Point, 500)
		for i := range out {
			out[i] = Point{T: t0.Add(time.Duration(i) * time.Minute), V: f(i)}
		}
		return out
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range []struct {
		name     string
		pts      []Point
		kind     sli.Kind
		evidence string
	}{
		// A file named "machine_temperature_system_failure" holds these.
		{"temperatures", pts(func(int) float64 { return 80 + 5*r.NormFloat64() }), "", "values from"},
		{"error ratio", pts(func(int) float64 { return math.Abs(0.01 * r.NormFloat64()) }), sli.KindRatio, "within [0, 1]"},
		{"counts", pts(func(int) float64 { return float64(r.IntN(40)) }), "", "counts"},
		{"heavy tail", pts(func(i int) float64 { return 10 + math.Pow(r.Float64(), 8)*500 }), "", "heavy right tail"},
		{"gaps and infinities ignored", pts(func(i int) float64 {
			switch i % 3 {
			case 0:
				return math.NaN()
			case 1:
				return math.Inf(1)
			}
			return 0.5
		}), sli.KindRatio, "within [0, 1]"},
		{"negative", pts(func(int) float64 { return -20 + r.NormFloat64() }), "", "negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := DetectKind(tc.pts)
			if d.Kind != tc.kind || !strings.Contains(d.Evidence, tc.evidence) {
				t.Fatalf("DetectKind = %q (%s), want %q with %q", d.Kind, d.Evidence, tc.kind, tc.evidence)
			}
		})
	}
}
