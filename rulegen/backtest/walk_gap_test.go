package backtest

import (
	"math"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// A pending alert does not survive a stretch without data: two outside
// samples hours apart are not a deviation that lasted hours.
func TestPendingDroppedOverGap(t *testing.T) {
	p := baseline.Policy{For: 5 * time.Minute, KeepFiringFor: time.Hour}
	t0 := time.Date(2026, 1, 5, 19, 0, 0, 0, time.UTC)
	var st alertState
	st.observe(t0, true, false, p)
	st.absent()
	st.observe(t0.Add(4*time.Hour), true, false, p)
	if st.firing {
		t.Fatal("fired across a 4 h gap")
	}
	st.observe(t0.Add(4*time.Hour+5*time.Minute), true, false, p)
	if !st.firing {
		t.Fatal("did not fire after two consecutive outside samples")
	}
}

func TestJudgeFollowsTheGeneratedRules(t *testing.T) {
	nan := math.NaN()
	b := baseline.Band{Lower: 60, Expected: 100, Upper: 140, SpikeLower: 30, SpikeUpper: 200}
	for _, tc := range []struct {
		name    string
		v, long float64
		band    baseline.Band
		confirm bool
		up, low verdict
	}{
		{"inside", 100, 100, b, true, verdict{}, verdict{}},
		{"above, long window above expected", 150, 110, b, true, verdict{outside: true}, verdict{}},
		{"above, long window below expected: not confirmed", 150, 90, b, true, verdict{}, verdict{}},
		{"above without confirmation", 150, 90, b, false, verdict{outside: true}, verdict{}},
		{"below, confirmed", 50, 95, b, true, verdict{}, verdict{outside: true}},
		{"spike above needs no confirmation", 250, 90, b, true, verdict{outside: true, spike: true}, verdict{}},
		{"spike below", 10, 105, b, true, verdict{}, verdict{outside: true, spike: true}},
		{"no spike band", 250, 90, baseline.Band{Lower: 60, Expected: 100, Upper: 140, SpikeLower: nan, SpikeUpper: nan}, true, verdict{}, verdict{}},
		{"unknown expectation", 150, 90, baseline.Band{Lower: nan, Expected: nan, Upper: 140, SpikeLower: nan, SpikeUpper: nan}, true, verdict{outside: true}, verdict{}},
		{"no signal", nan, 100, b, true, verdict{}, verdict{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up, low := judge(tc.v, tc.long, tc.band, tc.confirm)
			if up != tc.up || low != tc.low {
				t.Fatalf("judge = %+v %+v, want %+v %+v", up, low, tc.up, tc.low)
			}
		})
	}
}
