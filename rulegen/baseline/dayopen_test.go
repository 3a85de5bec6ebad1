package baseline

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// A daily profile takes a new day's level at once only when the day sits
// at that level (a weekend), not when a short burst right after midnight
// drags the median of a few buckets along.
func TestDailyProfileDayOpen(t *testing.T) {
	h := series1m(6, daily)
	m, _, err := Fit(h, Options{Models: []string{NameSeasonalDaily}})
	if err != nil {
		t.Fatal(err)
	}
	midnight := h[len(h)-1].T.Truncate(day).Add(day)
	next := func(f func(min int) float64) []Point {
		out := append([]Point(nil), h...)
		r := rand.New(rand.NewPCG(7, 8))
		for i := range 40 {
			tt := midnight.Add(time.Duration(i) * time.Minute)
			out = append(out, Point{T: tt, V: daily(tt, r) * f(i)})
		}
		return out
	}
	at := midnight.Add(40 * time.Minute)
	normal := m.Band(at).Expected
	burst := Refresh(m, next(func(i int) float64 {
		if i >= 5 && i < 25 {
			return 6
		}
		return 1
	}), Options{}).Band(at).Expected
	if math.Abs(burst-normal) > 0.1*normal {
		t.Fatalf("burst after midnight moved the expected value from %.1f to %.1f", normal, burst)
	}
	weekend := Refresh(m, next(func(int) float64 { return 0.5 }), Options{}).Band(at).Expected
	if math.Abs(weekend-0.5*normal) > 0.1*normal {
		t.Fatalf("a day opening at half the level: expected %.1f, want about %.1f", weekend, 0.5*normal)
	}
}
