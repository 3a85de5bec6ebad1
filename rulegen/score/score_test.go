package score

import (
	"math"
	"testing"
	"time"
)

func TestScoreFile(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ts := make([]time.Time, 1000)
	for i := range ts {
		ts[i] = t0.Add(time.Duration(i) * time.Minute)
	}
	at := func(i int) time.Time { return ts[i] }
	// Probation is 150 rows; one window over rows 400..499.
	ws := []Window{{Start: at(400), End: at(499)}}
	for _, tc := range []struct {
		name     string
		onsets   []time.Time
		raw      float64
		detected int
		false_   int
	}{
		{"never", nil, -1, 0, 0},
		{"start of window", []time.Time{at(400)}, 1, 1, 0},
		{"first detection counts", []time.Time{at(450), at(401)}, sig(401, 400, 499), 1, 0},
		{"probation ignored", []time.Time{at(10)}, -1, 0, 0},
		{"fp before any window", []time.Time{at(200)}, -1 - 0.11, 0, 1},
		{"fp right after window is cheap", []time.Time{at(500)}, -1 + 0.11*scaledSigmoid(1.0/99), 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := ScoreFile("f", ts, tc.onsets, ws, Standard)
			if math.Abs(f.Raw-tc.raw) > 1e-9 || f.Detected != tc.detected || f.FalseEpisodes != tc.false_ {
				t.Fatalf("raw %.6f detected %d false %d; want %.6f %d %d", f.Raw, f.Detected, f.FalseEpisodes, tc.raw, tc.detected, tc.false_)
			}
		})
	}
}

// sig is the reward for a detection at row i of a window l..r.
func sig(i, l, r int) float64 {
	return scaledSigmoid(-float64(r-i+1)/float64(r-l+1)) / scaledSigmoid(-1)
}

func TestSummariseNormalises(t *testing.T) {
	files := []File{{Raw: -2, Null: -2, Perfect: 2, Windows: 2}, {Raw: 1, Null: -1, Perfect: 1, Windows: 1, Detected: 1, Delays: []time.Duration{time.Minute}}}
	s := Summarise(files)
	if want := 100 * (-1.0 + 3) / (3 + 3); math.Abs(s.NAB-want) > 1e-9 || s.Recall != 1.0/3 || s.MedianDelay != time.Minute {
		t.Fatalf("%+v", s)
	}
	if s := Summarise([]File{{Raw: -3, Null: -3, Perfect: 3}}); s.NAB != 0 {
		t.Fatalf("never-alert should score 0, got %v", s.NAB)
	}
	if s := Summarise([]File{{Raw: 3, Null: -3, Perfect: 3}}); s.NAB != 100 {
		t.Fatalf("perfect should score 100, got %v", s.NAB)
	}
}
