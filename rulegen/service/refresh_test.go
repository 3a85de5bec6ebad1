package service

import (
	"context"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/promapi"
	"github.com/open-autoglm/autoglm-monitor/rulegen/target"
)

// rangeHistory answers every query with one series of value(t) at every
// minute of [start, end] up to the test's clock, and records the ranges.
type rangeHistory struct {
	mu     sync.Mutex
	now    *time.Time
	value  func(time.Time) float64
	ranges [][2]time.Time
}

func (h *rangeHistory) History(_ context.Context, q string, start, end time.Time) ([]promapi.Series, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ranges = append(h.ranges, [2]time.Time{start, end})
	var pts []baseline.Point
	for t := start.Truncate(time.Minute); !t.After(end) && !t.After(*h.now); t = t.Add(time.Minute) {
		if !t.Before(start) {
			pts = append(pts, baseline.Point{T: t, V: h.value(t)})
		}
	}
	lbls := model.Metric{"job": "autoglm-exporter", "http_route": "/v1/chat/completions", "gen_ai_request_model": "glm-4"}
	return []promapi.Series{{Labels: lbls, Points: pts}}, nil
}

// Between refits the series-mode gauges follow the newest samples as the
// backtest's bands do: the gauge is the band of the fitted model brought up
// to date by baseline.Refresh with every sample since the fit, and a
// refresh reads only the samples since the last one.
func TestRefreshBandsFollowsTheLevel(t *testing.T) {
	clock := now
	// Noise that is the same whenever a minute is read again.
	noise := func(t time.Time) float64 { return rand.New(rand.NewPCG(uint64(t.Unix()), 1)).NormFloat64() }
	h := &rangeHistory{now: &clock, value: func(t time.Time) float64 {
		v := 100.0
		if !t.Before(now) {
			v = 101.2
		}
		return v * (1 + 0.01*noise(t))
	}}
	cfg, err := config.Parse([]byte("rulegen:\n  mode: series\n  history: 4d\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Options{Config: cfg, History: h, Now: func() time.Time { return clock },
		Targets: []target.Target{&target.Dir{Path: t.TempDir()}}, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refit(t.Context()); err != nil {
		t.Fatal(err)
	}
	rate := func() fitted {
		for _, b := range svc.bands {
			if b.fitted.sli.Name == "request_rate" {
				return b.fitted
			}
		}
		t.Fatal("no request_rate band")
		return fitted{}
	}
	fit := rate()
	before := fit.model.Band(clock.Add(90 * time.Minute)).Expected
	h.ranges = nil
	for range 90 {
		clock = clock.Add(time.Minute)
		svc.RefreshBands(t.Context())
	}
	ranges := h.ranges
	all, _ := h.History(t.Context(), "", now.Add(-4*24*time.Hour), clock)
	want := baseline.Refresh(fit.model, all[0].Points, fit.opts).Band(clock).Expected
	got := rate().model.Band(clock).Expected
	if math.Abs(got-want) > 1e-9*want || got == before {
		t.Errorf("expected %.6f after 90 refreshed minutes, want %.6f (%.6f without refreshes)", got, want, before)
	}
	// One query per SLI record every five minutes, each from where the last ended.
	if n := len(ranges); n == 0 || n > 18*6 {
		t.Fatalf("%d history queries in 90 minutes", n)
	}
	for _, rg := range ranges {
		if rg[1].Sub(rg[0]) > 6*time.Minute {
			t.Errorf("refresh read %s of history, want only the new samples", rg[1].Sub(rg[0]))
		}
	}
	// Literal rules carry their thresholds; their mode does not refresh.
	cfg2, err := config.Parse([]byte("rulegen:\n  mode: literal\n  history: 4d\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	svc.SetConfig(cfg2)
	h.ranges = nil
	clock = clock.Add(10 * time.Minute)
	svc.RefreshBands(t.Context())
	if len(h.ranges) != 0 {
		t.Errorf("literal mode queried %d ranges", len(h.ranges))
	}
}
