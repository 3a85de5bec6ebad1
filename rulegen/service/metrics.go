package service

import (
	"fmt"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

func labelName(l string) model.LabelName { return model.LabelName(l) }

type metrics struct {
	lastFit, lastSuccess prometheus.Gauge
	failures, reloads    *prometheus.CounterVec
	written              prometheus.Counter
}

// seriesLabels is the union of the SLIs' By labels: one label set for every
// SLI keeps autoglm_rulegen_baseline a single consistent family. A label an
// SLI does not have is exported empty, which Prometheus treats as absent.
func seriesLabels() []string {
	var out []string
	seen := map[string]bool{}
	for _, s := range sli.SLIs() {
		for _, l := range s.By {
			if !seen[l] {
				seen[l] = true
				out = append(out, l)
			}
		}
	}
	return out
}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{
		lastFit: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autoglm_rulegen_last_fit_timestamp_seconds",
			Help: "When the last refit started.",
		}),
		lastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autoglm_rulegen_last_success_timestamp_seconds",
			Help: "When the last refit that delivered rules started.",
		}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_rulegen_fit_failures_total",
			Help: "Refit problems by reason (query, fit, no_history, validate, write, reload).",
		}, []string{"reason"}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_rulegen_reloads_total",
			Help: "Prometheus reloads requested after rule changes, by result.",
		}, []string{"result"}),
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_rulegen_rule_files_written_total",
			Help: "Rule files (or ruler groups) written because their content changed.",
		}),
	}
	for _, r := range []string{"query", "fit", "no_history", "validate", "write", "reload"} {
		m.failures.WithLabelValues(r)
	}
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.lastFit, m.lastSuccess, m.failures, m.reloads, m.written,
		versioncollector.NewCollector("autoglm_rulegen"), &bandCollector{s: s, labels: seriesLabels()}, &forecastCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

// bandSample is one series' band at the last gauge update.
type bandSample struct {
	fitted
	band [5]float64 // lower, expected, upper, spike_lower, spike_upper
}

// UpdateBands recomputes the autoglm_rulegen_baseline values for now.
func (s *Service) UpdateBands() {
	s.mu.Lock()
	series := s.series
	s.mu.Unlock()
	now := s.opts.Now()
	out := make([]bandSample, 0, len(series))
	for _, fi := range series {
		nan := math.NaN()
		bs := bandSample{fitted: fi, band: [5]float64{nan, nan, nan, nan, nan}}
		if fi.model != nil {
			b := fi.model.Band(now)
			bs.band = [5]float64{b.Lower, b.Expected, b.Upper, b.SpikeLower, b.SpikeUpper}
		}
		out = append(out, bs)
	}
	s.mu.Lock()
	s.bands = out
	s.mu.Unlock()
}

type bandCollector struct {
	s      *Service
	labels []string
}

func (c *bandCollector) descs() (baseline, history, info, series *prometheus.Desc) {
	l := append([]string{sli.LabelSLI}, c.labels...)
	baseline = prometheus.NewDesc(sli.RulegenBaseline,
		"Current band of an SLI series (bound lower, expected, upper, or spike_lower/spike_upper beyond which an alert fires at once); alert rules compare against it.",
		append(append([]string{}, l...), sli.LabelBound), nil)
	history = prometheus.NewDesc("autoglm_rulegen_history_seconds",
		"Span of the history the series' last fit used.", l, nil)
	info = prometheus.NewDesc("autoglm_rulegen_model_info",
		"The model chosen for a series (static when it had no usable history).", append(append([]string{}, l...), "model"), nil)
	series = prometheus.NewDesc("autoglm_rulegen_series",
		"Series of an SLI known at the last refit.", []string{sli.LabelSLI}, nil)
	return
}

// Describe implements prometheus.Collector.
func (c *bandCollector) Describe(ch chan<- *prometheus.Desc) {
	a, b, d, e := c.descs()
	ch <- a
	ch <- b
	ch <- d
	ch <- e
}

// Collect implements prometheus.Collector.
func (c *bandCollector) Collect(ch chan<- prometheus.Metric) {
	baselineD, historyD, infoD, seriesD := c.descs()
	c.s.mu.Lock()
	bands := c.s.bands
	c.s.mu.Unlock()
	counts := map[string]int{}
	for _, s := range sli.SLIs() {
		counts[s.Name] = 0
	}
	bounds := [5]string{rules.BoundLower, rules.BoundExpected, rules.BoundUpper, rules.BoundSpikeLower, rules.BoundSpikeUpper}
	for _, b := range bands {
		counts[b.sli.Name]++
		values := make([]string, 0, len(c.labels)+2)
		values = append(values, b.sli.Name)
		for _, l := range c.labels {
			values = append(values, b.labels[l])
		}
		ch <- prometheus.MustNewConstMetric(historyD, prometheus.GaugeValue, b.history.Seconds(), values...)
		name := "static"
		if b.model != nil {
			name = b.model.Name()
		}
		ch <- prometheus.MustNewConstMetric(infoD, prometheus.GaugeValue, 1, append(values, name)...)
		for i, bound := range bounds {
			// A NaN bound means "no bound": export nothing so the rules' fallback applies.
			if math.IsNaN(b.band[i]) || math.IsInf(b.band[i], 0) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(baselineD, prometheus.GaugeValue, b.band[i], append(values, bound)...)
		}
	}
	for name, n := range counts {
		ch <- prometheus.MustNewConstMetric(seriesD, prometheus.GaugeValue, float64(n), name)
	}
}
