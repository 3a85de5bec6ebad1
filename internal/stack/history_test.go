package stack

import (
	"bytes"
	"context"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func TestWriteHistoryEndsAtLiveLevel(t *testing.T) {
	end := time.Date(2026, 11, 25, 14, 0, 0, 0, time.UTC)
	series := []HistorySeries{
		{Name: "b_rate", Labels: map[string]string{"http_route": "/v1/chat/completions", "job": "x"}, Now: 40, Amplitude: 0.3},
		{Name: "a_ratio", Now: 0.001, Amplitude: 0.05},
	}
	var buf bytes.Buffer
	rng := rand.New(rand.NewPCG(1, 2))
	if err := WriteHistory(&buf, series, end.Add(-24*time.Hour), end.Add(time.Minute), end, time.Minute, rng); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if lines[0] != "# TYPE a_ratio gauge" || lines[len(lines)-1] != "# EOF" {
		t.Fatalf("want sorted families and an EOF marker, got first %q last %q", lines[0], lines[len(lines)-1])
	}
	// 1441 points per series, two TYPE lines, EOF.
	if got, want := len(lines), 2*1441+3; got != want {
		t.Fatalf("got %d lines, want %d", got, want)
	}
	last := map[string]float64{}
	min, max := math.Inf(1), math.Inf(-1)
	for _, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			t.Fatalf("bad line %q: %v", l, err)
		}
		last[f[0]] = v
		if strings.HasPrefix(l, "b_rate") {
			min, max = math.Min(min, v), math.Max(max, v)
		}
	}
	if v := last[`b_rate{http_route="/v1/chat/completions",job="x"}`]; v != 40 {
		t.Errorf("rate history ends at %g, want the live level 40", v)
	}
	if v := last["a_ratio"]; v != 0.001 {
		t.Errorf("ratio history ends at %g, want 0.001", v)
	}
	// A ±30% daily swing around a level that is 40 at 14:00.
	if max/min < 1.5 || max/min > 2.5 {
		t.Errorf("daily swing max/min = %g, want about 1.3/0.7", max/min)
	}
}

func TestBackfillHistoryWithPromtool(t *testing.T) {
	promtool := testenv.Promtool(t)
	out := filepath.Join(t.TempDir(), "blocks")
	end := time.Now().Truncate(time.Minute)
	series := []HistorySeries{{Name: "job_route:x:rate5m", Labels: map[string]string{"job": "j"}, Now: 5, Amplitude: 0.3, Noise: 0.05}}
	n, err := BackfillHistory(context.Background(), promtool, out, series, end, 7*time.Hour, time.Minute, 1)
	if err != nil {
		t.Fatal(err)
	}
	// Seven hours span four or five two-hour windows, one block each.
	if n < 4 || n > 5 {
		t.Fatalf("got %d blocks, want 4 or 5", n)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if _, err := os.Stat(filepath.Join(out, e.Name(), "meta.json")); err != nil {
			t.Errorf("block %s has no meta.json: %v", e.Name(), err)
		}
	}
	if _, err := os.Stat(out + ".om"); !os.IsNotExist(err) {
		t.Errorf("intermediate OpenMetrics files were left behind: %v", err)
	}
}
