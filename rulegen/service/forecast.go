package service

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/rulefmt"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/forecast"
	"github.com/open-autoglm/autoglm-monitor/rulegen/promapi"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
)

// Labels of the forecast gauges: routes' (with the SLI) and instances'.
var (
	routeForecastLabels    = []string{sli.LabelSLI, "job", sli.LabelRoute}
	instanceForecastLabels = []string{"job", "instance"}
)

// curve is one series' forecast of the last refit.
type curve struct {
	instance bool     // an instance's request rate, else a route's SLI
	labels   []string // values of routeForecastLabels or instanceForecastLabels
	curve    forecast.Curve
}

func (c curve) key() string { return fmt.Sprint(c.instance) + "\x00" + strings.Join(c.labels, "\x00") }

// predict forecasts one series from the model fitted on its history (nil
// when there was none: the recent profile alone) and keeps the forecast's
// views for weighing the next one.
func (s *Service) predict(instance bool, labels []string, m baseline.Model, pts []baseline.Point, now time.Time) curve {
	c := curve{instance: instance, labels: labels}
	s.mu.Lock()
	tr := s.trackers[c.key()]
	if tr == nil {
		tr = &forecast.Tracker{}
		s.trackers[c.key()] = tr
	}
	s.mu.Unlock()
	s.mu.Lock()
	interval := s.cfg.Rulegen.RefitInterval.D()
	s.mu.Unlock()
	c.curve = forecast.PredictFor(m, pts, now, forecast.DefaultParams, tr, interval)
	return c
}

// forecastInstances fits and forecasts every instance's request rate. A
// failure here never fails the refit: forecasts are advice, rules are not.
func (s *Service) forecastInstances(ctx context.Context, read func(string) ([]promapi.Series, error), c config.Rulegen, now time.Time) []curve {
	series, err := read(sli.InstanceRequestRate)
	if err != nil {
		s.logger.Warn("no instance forecasts: history unavailable", "err", err)
		return nil
	}
	out := make([]curve, 0, len(series))
	for _, ser := range series {
		if ctx.Err() != nil {
			return out
		}
		m, _, err := s.opts.Fit(ser.Points, baseline.Options{Kind: sli.KindRate, K: c.K})
		if err != nil && !errors.Is(err, baseline.ErrNoHistory) {
			s.logger.Warn("instance fit failed, forecast from its profile only", "series", ser.Labels.String(), "err", err)
		}
		if err != nil {
			m = nil
		}
		out = append(out, s.predict(true, []string{string(ser.Labels["job"]), string(ser.Labels["instance"])}, m, ser.Points, now))
	}
	return out
}

// publishCurves makes the curves of this refit the published ones and drops
// the trackers of series that were not forecast.
func (s *Service) publishCurves(curves []curve) {
	keep := make(map[string]bool, len(curves))
	for _, c := range curves {
		keep[c.key()] = true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.trackers {
		if !keep[k] {
			delete(s.trackers, k)
		}
	}
	s.curves = curves
}

// forecastRules is the capacity alert (series mode only: it compares with
// the crossing gauge rulegen exposes).
func forecastRules(f *config.File) rulefmt.RuleGroups {
	c := f.Rulegen
	if !c.ForecastEnabled() || c.Mode != config.ModeSeries {
		return rulefmt.RuleGroups{}
	}
	return forecast.Rules(f.AlertRules.QPSThreshold, c.Forecast.Lead.D(), f.AlertRules.Cooldown.D(),
		rules.RunbookBase+"#"+strings.ToLower(forecast.AlertName))
}

type forecastCollector struct{ s *Service }

func (c *forecastCollector) descs() (route, instance, crossing *prometheus.Desc) {
	return prometheus.NewDesc(forecast.Metric,
			"Forecast of a route's SLI series (sli: request_rate) the horizon ahead, made at the last refit.",
			append(append([]string{}, routeForecastLabels...), forecast.LabelHorizon), nil),
		prometheus.NewDesc(forecast.InstanceMetric,
			"Forecast of an instance's request rate the horizon ahead, made at the last refit.",
			append(append([]string{}, instanceForecastLabels...), forecast.LabelHorizon), nil),
		prometheus.NewDesc(forecast.CrossingMetric,
			"When an instance's forecast request rate first reaches alert_rules.qps_threshold, within the next 24 hours.",
			instanceForecastLabels, nil)
}

// Describe implements prometheus.Collector.
func (c *forecastCollector) Describe(ch chan<- *prometheus.Desc) {
	r, i, x := c.descs()
	ch <- r
	ch <- i
	ch <- x
}

// Collect implements prometheus.Collector.
func (c *forecastCollector) Collect(ch chan<- prometheus.Metric) {
	route, instance, crossing := c.descs()
	c.s.mu.Lock()
	curves, cfg := c.s.curves, c.s.cfg
	c.s.mu.Unlock()
	now := c.s.opts.Now()
	threshold := cfg.AlertRules.QPSThreshold
	for _, cv := range curves {
		desc := route
		if cv.instance {
			desc = instance
		}
		for _, h := range forecast.Horizons {
			v := cv.curve.At(now.Add(h))
			if math.IsNaN(v) {
				continue
			}
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append(append([]string{}, cv.labels...), horizonLabel(h))...)
		}
		if !cv.instance || threshold <= 0 {
			continue
		}
		if t, ok := cv.curve.Crossing(threshold, now); ok {
			ch <- prometheus.MustNewConstMetric(crossing, prometheus.GaugeValue, float64(t.UnixNano())/1e9, cv.labels...)
		}
	}
}

func horizonLabel(h time.Duration) string { return strings.TrimSuffix(h.String(), "0m0s") }
