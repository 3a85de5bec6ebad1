package backtest

import (
	"context"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// TestSustainedDeviations walks three weeks of history plus one week of
// evaluation through the backtest. A long incident must keep one alert
// firing for its whole length (an outage is not learned as normal), while a
// planned ramp, a holiday and a permanent level shift are accepted after a
// bounded time.
func TestSustainedDeviations(t *testing.T) {
	start := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	evalFrom := start.Add(21 * 24 * time.Hour)
	onset := evalFrom.Add(2*24*time.Hour + 10*time.Hour) // Thursday 10:00
	const step = 5 * time.Minute
	rate := func(ts time.Time, r *rand.Rand) float64 {
		h := float64(ts.Hour()) + float64(ts.Minute())/60
		v := 100 * (1.5 + math.Sin((h-6)/24*2*math.Pi))
		if wd := ts.Weekday(); wd == time.Saturday || wd == time.Sunday {
			v *= 0.6
		}
		return v * (1 + 0.03*r.NormFloat64())
	}
	ratio := func(ts time.Time, r *rand.Rand) float64 {
		return math.Max(0, 0.01*(1+0.15*r.NormFloat64()))
	}
	midnight := onset.Truncate(24 * time.Hour)
	in := func(ts time.Time, d time.Duration) bool { return !ts.Before(onset) && ts.Before(onset.Add(d)) }
	for _, tc := range []struct {
		name string
		kind sli.Kind
		base func(time.Time, *rand.Rand) float64
		mod  func(ts time.Time, v float64) float64
		// incident: one episode must cover [onset+15m, onset+8h); at
		// overrides onset.
		incident bool
		at       time.Time
		// maxAlert bounds the total firing time in the evaluation week.
		maxAlert time.Duration
		// quietAfter: no firing after this time.
		quietAfter time.Time
	}{
		{name: "normal week", kind: sli.KindRate, base: rate, mod: nil, maxAlert: 0},
		{name: "error ratio 10x for 8h", kind: sli.KindRatio, base: ratio, incident: true,
			mod: func(ts time.Time, v float64) float64 {
				if in(ts, 8*time.Hour) {
					return 10 * v
				}
				return v
			}, maxAlert: 10 * time.Hour},
		{name: "traffic at 40% for 8h", kind: sli.KindRate, base: rate, incident: true,
			mod: func(ts time.Time, v float64) float64 {
				if in(ts, 8*time.Hour) {
					return 0.4 * v
				}
				return v
			}, maxAlert: 10 * time.Hour},
		{name: "planned ramp +60% over 4 days", kind: sli.KindRate, base: rate,
			mod: func(ts time.Time, v float64) float64 {
				days := math.Min(4, math.Max(0, ts.Sub(onset).Hours()/24))
				return v * (1 + 0.15*days)
			}, maxAlert: 2 * time.Hour},
		{name: "holiday: a weekday at weekend level", kind: sli.KindRate, base: rate,
			mod: func(ts time.Time, v float64) float64 {
				if d := onset.Truncate(24 * time.Hour); !ts.Before(d) && ts.Before(d.Add(24*time.Hour)) {
					return 0.6 * v
				}
				return v
			}, maxAlert: 0, quietAfter: onset.Truncate(24 * time.Hour).Add(30 * time.Hour)},
		{name: "launch at midnight: +45% from 00:00 on", kind: sli.KindRate, base: rate,
			mod: func(ts time.Time, v float64) float64 {
				if !ts.Before(midnight) {
					return 1.45 * v
				}
				return v
			}, maxAlert: 0},
		{name: "outage from midnight: traffic at 10% for 8h", kind: sli.KindRate, base: rate, incident: true, at: midnight,
			mod: func(ts time.Time, v float64) float64 {
				if !ts.Before(midnight) && ts.Before(midnight.Add(8*time.Hour)) {
					return 0.1 * v
				}
				return v
			}, maxAlert: 10 * time.Hour},
		{name: "permanent shift +30%", kind: sli.KindRate, base: rate,
			mod: func(ts time.Time, v float64) float64 {
				if !ts.Before(onset) {
					return 1.3 * v
				}
				return v
			}, maxAlert: 30 * time.Hour, quietAfter: onset.Add(36 * time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			onset := onset
			if !tc.at.IsZero() {
				onset = tc.at
			}
			r := rand.New(rand.NewPCG(7, 11))
			n := int(28 * 24 * time.Hour / step)
			pts := make([]baseline.Point, n)
			for i := range pts {
				ts := start.Add(time.Duration(i) * step)
				v := tc.base(ts, r)
				if tc.mod != nil {
					v = tc.mod(ts, v)
				}
				pts[i] = baseline.Point{T: ts, V: v}
			}
			res, err := Walk(context.Background(), pts, Config{Options: baseline.Options{Kind: tc.kind}})
			if err != nil {
				t.Fatal(err)
			}
			var firing time.Duration
			covered := false
			for _, e := range res.Alerts {
				if e.End.Before(evalFrom) {
					continue
				}
				firing += e.End.Sub(e.Start)
				if tc.incident && !e.Start.After(onset.Add(15*time.Minute)) && !e.End.Before(onset.Add(8*time.Hour)) {
					covered = true
				}
				if !tc.quietAfter.IsZero() && e.End.After(tc.quietAfter) {
					t.Errorf("still firing after %s: %s – %s", tc.quietAfter.Format(time.RFC3339), e.Start.Format(time.RFC3339), e.End.Format(time.RFC3339))
				}
			}
			if tc.incident && !covered {
				t.Errorf("no single episode covers the 8h incident from %s; alerts %s", onset.Format(time.RFC3339), fmtEpisodes(res.Alerts, evalFrom))
			}
			if firing > tc.maxAlert {
				t.Errorf("fired for %s in the evaluation week, want ≤ %s; alerts %s", firing, tc.maxAlert, fmtEpisodes(res.Alerts, evalFrom))
			}
		})
	}
}

func fmtEpisodes(es []Episode, from time.Time) string {
	s := ""
	for _, e := range es {
		if e.End.Before(from) {
			continue
		}
		s += "[" + e.Start.Format("Jan 2 15:04") + " – " + e.End.Format("Jan 2 15:04") + "] "
	}
	return s
}
