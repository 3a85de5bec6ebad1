package service

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/forecast"
	"github.com/open-autoglm/autoglm-monitor/rulegen/promapi"
	"github.com/open-autoglm/autoglm-monitor/rulegen/slo"
	"github.com/open-autoglm/autoglm-monitor/rulegen/target"
)

// instanceHistory answers the instance rate query with an instance label.
type instanceHistory struct{ fakeHistory }

func (h *instanceHistory) History(ctx context.Context, q string, start, end time.Time) ([]promapi.Series, error) {
	if q != sli.InstanceRequestRate {
		return h.fakeHistory.History(ctx, q, start, end)
	}
	return []promapi.Series{{Labels: model.Metric{"job": "autoglm-exporter", "instance": "gpu-1:9810"}, Points: h.points(q)}}, nil
}

// TestRefitForecastsAndWritesSLOAndCapacityRules: a refit publishes the
// route and instance forecasts and the crossing time of an instance whose
// forecast is above qps_threshold, and writes the capacity alert and the
// SLO rules next to the baseline rules.
func TestRefitForecastsAndWritesSLOAndCapacityRules(t *testing.T) {
	cfg, err := config.Parse([]byte(`alert_rules:
  qps_threshold: 1.5
slos:
  - {name: chat-availability, sli: availability, route: /v1/chat/completions, objective: 99.5}
`), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	reg := prometheus.NewRegistry()
	hist := &instanceHistory{fakeHistory{points: func(string) []baseline.Point { return hours(48, 2) }}}
	svc, err := New(Options{Config: cfg, History: hist, Fit: fakeFit, Now: func() time.Time { return now },
		Targets: []target.Target{&target.Dir{Path: dir}}, Registerer: reg, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Refit(context.Background()); err != nil {
		t.Fatal(err)
	}
	n, err := testutil.GatherAndCount(reg, forecast.Metric, forecast.InstanceMetric)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2*len(forecast.Horizons) {
		t.Errorf("%d forecast series, want one per horizon for the route and the instance (%d)", n, 2*len(forecast.Horizons))
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var crossing float64
	for _, mf := range mfs {
		switch mf.GetName() {
		case forecast.Metric, forecast.InstanceMetric:
			for _, m := range mf.GetMetric() {
				if v := m.GetGauge().GetValue(); v != 2 {
					t.Errorf("forecast %v = %v; the history is a constant 2", m.GetLabel(), v)
				}
			}
		case forecast.CrossingMetric:
			crossing = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	if wantTS := float64(now.Add(forecast.Step).Unix()); crossing != wantTS {
		t.Errorf("crossing at %v, want %v (the first forecast step is above 1.5)", crossing, wantTS)
	}
	b, err := os.ReadFile(filepath.Join(dir, forecast.File))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "expected to reach 1.5 req/s within about {{ $value }} h") {
		t.Errorf("capacity alert missing from %s:\n%s", forecast.File, b)
	}
	b, err = os.ReadFile(filepath.Join(dir, slo.File))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `sloth_slo: chat-availability`) || !strings.Contains(string(b), "alert: AutoGLMErrorBudgetBurn") {
		t.Errorf("SLO rules missing from %s", slo.File)
	}
}
