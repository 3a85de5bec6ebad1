package stack

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// API returns a client of the stack's Prometheus.
func (s *Stack) API() (promv1.API, error) {
	c, err := api.NewClient(api.Config{Address: URL(s.opts.Ports.Prometheus)})
	if err != nil {
		return nil, fmt.Errorf("prometheus client: %w", err)
	}
	return promv1.NewAPI(c), nil
}

// Query evaluates an instant PromQL query.
func (s *Stack) Query(ctx context.Context, q string) (model.Vector, error) {
	a, err := s.API()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	v, _, _, err := a.Query(ctx, q, time.Now())
	if err != nil {
		return nil, fmt.Errorf("query %q: %w", q, err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("query %q: got %s, want a vector", q, v.Type())
	}
	return vec, nil
}

// Scalar returns the single value of q, or NaN-free 0 with ok=false when empty.
func (s *Stack) Scalar(ctx context.Context, q string) (float64, bool) {
	vec, err := s.Query(ctx, q)
	if err != nil || len(vec) == 0 {
		return 0, false
	}
	return float64(vec[0].Value), true
}

// backfill measures the live level of every recording rule, then writes a
// week of history around those levels as TSDB blocks that Prometheus loads
// on its next block reload, so rulegen has a baseline to fit from the start.
func (s *Stack) backfill(ctx context.Context, promtool string) error {
	var series []HistorySeries
	for _, r := range sli.RecordingRules() {
		vec, err := s.Query(ctx, r.Record)
		if err != nil {
			return err
		}
		amp, noise := 0.3, 0.05
		if strings.Contains(r.Record, ":p") || strings.Contains(r.Record, "ratio") {
			amp, noise = 0.05, 0.03
		}
		for _, smp := range vec {
			v := float64(smp.Value)
			if v != v { // NaN: no requests in the window
				continue
			}
			labels := map[string]string{}
			for k, lv := range smp.Metric {
				if k != model.MetricNameLabel {
					labels[string(k)] = string(lv)
				}
			}
			if strings.Contains(r.Record, "ratio") && v < 0.001 {
				v = 0.001
			}
			series = append(series, HistorySeries{Name: r.Record, Labels: labels, Now: v, Amplitude: amp, Noise: noise})
		}
	}
	if len(series) == 0 {
		return fmt.Errorf("no SLI had a value after the calibration minute: is the exporter seeing the simulator's traffic? see %s", s.path("autoglm-exporter.log"))
	}
	end := s.started.Add(-2 * time.Minute)
	om := s.path("history.om")
	f, err := os.Create(om)
	if err != nil {
		return fmt.Errorf("create history: %w", err)
	}
	if err := WriteHistory(f, series, end, 7*24*time.Hour, time.Minute, 1); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	out := s.path("backfill")
	if err := os.RemoveAll(out); err != nil {
		return fmt.Errorf("clear backfill dir: %w", err)
	}
	cmd := exec.CommandContext(ctx, promtool, "tsdb", "create-blocks-from", "openmetrics", om, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("promtool create-blocks-from openmetrics: %w\n%s", err, b)
	}
	blocks, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("read backfilled blocks: %w", err)
	}
	for _, b := range blocks {
		if err := os.Rename(filepath.Join(out, b.Name()), s.path("prometheus", "data", b.Name())); err != nil {
			return fmt.Errorf("move block into Prometheus: %w", err)
		}
	}
	// Prometheus reloads blocks about once a minute.
	probe := fmt.Sprintf("count_over_time(%s[1h] offset 1d)", sli.RouteRequestRate)
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		if v, ok := s.Scalar(ctx, probe); ok && v > 0 {
			s.opts.Say("history backfilled: %d series x 7 days at 1-minute resolution, around the live levels", len(series))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return fmt.Errorf("prometheus did not load the backfilled blocks within 3 minutes")
}
