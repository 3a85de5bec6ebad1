package stack

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
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
func (s *Stack) backfill(ctx context.Context) error {
	counts, err := s.calibrationCounts(ctx)
	if err != nil {
		return err
	}
	var series []HistorySeries
	young := time.Since(s.loadStarted) < youngQuantileWindow
	skipped := 0
	for _, r := range sli.RecordingRules() {
		if young && tailQuantile(r.Record) {
			// A minute of traffic cannot give a tail latency a baseline:
			// streams that last longer have not finished, so a young p95 of
			// request durations misses exactly the slow ones, and a p95 of
			// time to first token over a few dozen requests per model is
			// one of their two largest values. A history around such a
			// guess needs a band so wide that a fourfold regression stays
			// inside it. These SLIs get no history and start on their
			// objectives (rulegen.slis.*.static_upper) until rulegen has
			// seen enough live traffic to fit them.
			skipped++
			continue
		}
		vec, err := s.Query(ctx, r.Record)
		if err != nil {
			return err
		}
		amp, noise := 0.3, 0.05
		if strings.Contains(r.Record, ":p") || strings.Contains(r.Record, "ratio") {
			amp, noise = 0.05, 0.03
		}
		scale := youngRateScale(r.Record, time.Since(s.loadStarted))
		for _, smp := range vec {
			v := float64(smp.Value) * scale
			if v != v { // NaN: no requests in the window
				continue
			}
			count, ok := counts[countKey(smp.Metric)]
			if ok && !(count >= minCalibrationRequests) {
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
			n := noise
			if strings.HasSuffix(r.Record, "requests:rate5m") && v > 0 {
				// A quiet route's rate is mostly counting noise: a 5-minute
				// window of v req/s holds about 300·v requests (Poisson).
				n = math.Max(n, 1/math.Sqrt(300*v))
			}
			if ok && !strings.Contains(r.Record, "ratio") {
				// A level measured on a few dozen requests of a bursty
				// trace is a rough guess; the history's spread says so.
				n = math.Max(n, 2/math.Sqrt(count))
			}
			series = append(series, HistorySeries{Name: r.Record, Labels: labels, Now: v, Amplitude: amp, Noise: n})
		}
	}
	if skipped > 0 {
		s.opts.Say("no history for tail latencies (p95, p99): %s of traffic cannot measure them (long streams have not finished, few requests per model); their objectives apply until rulegen has seen enough", time.Since(s.loadStarted).Round(time.Second))
	}
	if len(series) == 0 {
		return fmt.Errorf("no SLI had a value after the calibration minute: is the exporter seeing the simulator's traffic? see %s", s.path("autoglm-exporter.log"))
	}
	// The history ends where the live data begins, so the two never overlap.
	end := s.started.Add(-time.Minute)
	out := s.path("backfill")
	span := s.opts.History
	n, err := BackfillHistory(ctx, s.tools.promtool, out, series, end, span, time.Minute, 1)
	if err != nil {
		return err
	}
	blocks, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("read backfilled blocks: %w", err)
	}
	for _, b := range blocks {
		if !b.IsDir() {
			continue
		}
		if err := os.Rename(filepath.Join(out, b.Name()), s.path("prometheus", "data", b.Name())); err != nil {
			return fmt.Errorf("move block into Prometheus: %w", err)
		}
	}
	s.opts.Say("history written: %d series x %s at 1-minute resolution in %d blocks, around the live levels; restarting Prometheus to load them", len(series), model.Duration(span), n)
	// A running Prometheus scans its data directory for new blocks only once
	// a minute; a restart (a few seconds: the WAL is small) loads them now,
	// so the baselines exist at a predictable moment.
	prom := s.procs.get("prometheus")
	if prom == nil {
		return errors.New("prometheus is not running")
	}
	np, err := s.procs.restart(prom, 30*time.Second)
	if err != nil {
		return fmt.Errorf("restart prometheus to load the history: %w", err)
	}
	if err := waitHTTP(ctx, np, URL(s.opts.Ports.Prometheus)+"/-/ready", 90*time.Second); err != nil {
		return err
	}
	probe := fmt.Sprintf("count_over_time(%s[1h] offset %s)", sli.RouteRequestRate, model.Duration(span/2))
	deadline := time.Now().Add(time.Minute)
	for time.Now().Before(deadline) {
		if v, ok := s.Scalar(ctx, probe); ok && v > 0 {
			s.opts.Say("history backfilled: Prometheus restarted and serves %s of SLI history", model.Duration(span))
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
	return fmt.Errorf("prometheus did not load the backfilled blocks; last log lines:\n%s", np.tail(2000))
}

var rateWindow = regexp.MustCompile(`:rate(\d+[smhdw])$`)

// youngRateScale corrects the live level of a rate recording rule whose
// window is longer than the traffic is old: rate() over a window that data
// covers only in part divides by the whole window, so a 5m rate measured
// after 45s of traffic reads about 15% of the real rate. Ratios and
// quantiles need no correction.
// A tail quantile measured before youngQuantileWindow of load gets no history.
const youngQuantileWindow = 5 * time.Minute

// tailQuantile reports whether record is a tail latency (p95, p99).
func tailQuantile(record string) bool {
	return strings.Contains(record, ":p95_") || strings.Contains(record, ":p99_")
}

// countKey identifies the series whose request count bounds the precision
// of a level: the model's where the SLI has one, else the route's.
func countKey(m model.Metric) string {
	return string(m["job"]) + "\x00" + string(m[sli.LabelRoute]) + "\x00" + string(m[sli.LabelModel])
}

// minCalibrationRequests is the least number of requests a route must have
// served during calibration for its live level to be worth a history.
const minCalibrationRequests = 20

// calibrationCounts estimates, per job and route, the requests served since
// the load began. Routes with fewer than minCalibrationRequests get no
// history: a history built around a guess would give them a band the live
// traffic contradicts at once, so they start on the static limits until
// rulegen has seen enough.
func (s *Stack) calibrationCounts(ctx context.Context) (map[string]float64, error) {
	age := time.Since(s.loadStarted)
	counts := map[string]float64{}
	var names []string
	for _, rec := range []string{sli.RouteRequestRate, sli.ModelRequestRate} {
		vec, err := s.Query(ctx, rec)
		if err != nil {
			return nil, err
		}
		scale := youngRateScale(rec, age)
		for _, smp := range vec {
			n := float64(smp.Value) * scale * age.Seconds()
			counts[countKey(smp.Metric)] = n
			if !(n >= minCalibrationRequests) {
				what := string(smp.Metric[sli.LabelRoute])
				if m := smp.Metric[sli.LabelModel]; m != "" {
					what += " " + string(m)
				}
				names = append(names, fmt.Sprintf("%s (%.0f)", what, n))
			}
		}
	}
	if len(names) > 0 {
		sort.Strings(names)
		s.opts.Say("no history for routes and models with fewer than %d requests so far (static limits until rulegen has seen enough): %s", minCalibrationRequests, strings.Join(names, ", "))
	}
	return counts, nil
}

func youngRateScale(record string, age time.Duration) float64 {
	m := rateWindow.FindStringSubmatch(record)
	if m == nil || strings.Contains(record, "ratio") || age <= 0 {
		return 1
	}
	w, err := model.ParseDuration(m[1])
	if err != nil || time.Duration(w) <= age {
		return 1
	}
	return time.Duration(w).Seconds() / age.Seconds()
}
