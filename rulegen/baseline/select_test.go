package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// weekdayPeaks is latency with a morning peak on weekdays only: flat at
// weekends, so a held-out Sunday favours a flat model.
func weekdayPeaks(t time.Time, r *rand.Rand) float64 {
	v := 1.8
	if wd := t.Weekday(); wd != time.Saturday && wd != time.Sunday {
		h := float64(t.Hour()) + float64(t.Minute())/60
		v += 0.6 * math.Exp(-(h-10)*(h-10)/4)
	}
	return v * (1 + 0.03*r.NormFloat64())
}

func TestSeasonalSeriesKeepSeasonalModel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		days     int
		f        func(time.Time, *rand.Rand) float64
		kind     sli.Kind
		seasonal bool
	}{
		// Ends on a Sunday: the held-out day is flat.
		{"latency peaked on weekdays, fitted on Monday", 14, weekdayPeaks, sli.KindLatency, true},
		{"noise around a level", 14, func(_ time.Time, r *rand.Rand) float64 { return 50 + r.NormFloat64() }, "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := series1m(tc.days, tc.f)
			s, err := prepare(h, Options{Kind: tc.kind})
			if err != nil {
				t.Fatal(err)
			}
			strength := s.seasonalStrength(len(s.y))
			if got := strength >= minSeasonalStrength; got != tc.seasonal {
				t.Fatalf("seasonal strength %.2f, want seasonal=%v", strength, tc.seasonal)
			}
			m, _, err := Fit(h, Options{Kind: tc.kind})
			if err != nil {
				t.Fatal(err)
			}
			flat := m.Name() == NameRobustLevel || m.Name() == NameRolling
			if tc.seasonal && flat {
				t.Fatalf("chose %s for a seasonal series", m.Name())
			}
			if tc.seasonal {
				// Monday 10:00 must expect the peak.
				mon := h[len(h)-1].T.Add(10*time.Hour + time.Minute)
				if e := m.Band(mon).Expected; e < 2.2 {
					t.Fatalf("expected %.2f at Monday's peak, want ≥ 2.2 (model %s)", e, m.Name())
				}
			}
		})
	}
}
