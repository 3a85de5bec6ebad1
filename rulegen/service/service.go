// Package service is rulegen's refit loop: read history, fit baselines,
// build and validate rules, deliver them, and expose the current bands as
// autoglm_rulegen_baseline gauges. Any failure keeps the last good rules and
// shows up in the autoglm_rulegen_* metrics and the log.
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
	"github.com/open-autoglm/autoglm-monitor/rulegen/forecast"
	"github.com/open-autoglm/autoglm-monitor/rulegen/promapi"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
	"github.com/open-autoglm/autoglm-monitor/rulegen/slo"
	"github.com/open-autoglm/autoglm-monitor/rulegen/target"
)

// History reads the series of a query over a time range.
type History interface {
	History(ctx context.Context, query string, start, end time.Time) ([]promapi.Series, error)
}

// FitFunc fits one series; baseline.Fit in production.
type FitFunc func(history []baseline.Point, opts baseline.Options) (baseline.Model, baseline.Policy, error)

// Options wire a Service.
type Options struct {
	Config  *config.File
	History History
	Targets []target.Target
	// Fit defaults to baseline.Fit.
	Fit FitFunc
	// Now defaults to time.Now.
	Now        func() time.Time
	Registerer prometheus.Registerer
	Logger     *slog.Logger
}

// fitted is one series after a fit.
type fitted struct {
	sli     sli.SLI
	labels  map[string]string
	model   baseline.Model // nil when there was no usable history
	policy  baseline.Policy
	history time.Duration
	// key identifies the series among the answers of its SLI's query.
	key string
	// opts are the fit's options, recent the last refreshWindow of its
	// history: what Refresh needs to bring the model up to date.
	opts   baseline.Options
	recent []baseline.Point
}

// refreshWindow is the history a refresh reads (baseline.Refresh looks at
// the last two days).
const refreshWindow = 2 * 24 * time.Hour

// refreshStep is how often the bands are brought up to date between refits:
// at every bucket of the baseline models, as the backtest does.
const refreshStep = 5 * time.Minute

// Service runs refits.
type Service struct {
	opts    Options
	cfg     *config.File
	metrics *metrics
	logger  *slog.Logger

	mu     sync.Mutex
	series []fitted
	// gen counts refits, so a refresh never overwrites a newer fit.
	gen         int
	lastRefresh time.Time
	bands       []bandSample
	lastSet     *rules.Set
	ok          bool
	// curves are the forecasts of the last refit; trackers weigh the views
	// of each series' next forecast by how its past ones came true.
	curves   []curve
	trackers map[string]*forecast.Tracker
	trigger  chan struct{}
}

// New registers the metrics and returns a Service.
func New(o Options) (*Service, error) {
	if o.Fit == nil {
		o.Fit = baseline.Fit
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Service{opts: o, cfg: o.Config, logger: o.Logger, trigger: make(chan struct{}, 1), trackers: map[string]*forecast.Tracker{}}
	m, err := newMetrics(o.Registerer, s)
	if err != nil {
		return nil, err
	}
	s.metrics = m
	return s, nil
}

// NewReader builds the history reader of a configuration.
func NewReader(f *config.File, reg prometheus.Registerer, logger *slog.Logger) (*promapi.Reader, prometheus.Counter, error) {
	c := f.Rulegen
	httpCfg := c.Prometheus.HTTP
	if f.Path() != "" {
		httpCfg.SetDirectory(filepath.Dir(f.Path()))
	}
	rt, err := promconfig.NewRoundTripperFromConfig(httpCfg, "autoglm-rulegen")
	if err != nil {
		return nil, nil, fmt.Errorf("rulegen.prometheus: %w", err)
	}
	qe := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "autoglm_rulegen_query_errors_total",
		Help: "Failed query attempts against the history API (each retry counts).",
	})
	if reg != nil {
		if err := reg.Register(qe); err != nil {
			return nil, nil, fmt.Errorf("register query error counter: %w", err)
		}
	}
	r, err := promapi.New(promapi.Options{
		URL:          c.Prometheus.URL,
		RoundTripper: rt,
		Step:         c.Step.D(),
		ChunkSize:    c.Prometheus.ChunkSize.D(),
		Parallelism:  c.Prometheus.Parallelism,
		Timeout:      c.Prometheus.Timeout.D(),
		Retries:      c.Prometheus.Retries,
		MaxSeries:    c.MaxSeries,
		QueryErrors:  qe,
	}, logger)
	if err != nil {
		return nil, nil, err
	}
	return r, qe, nil
}

// NewTargets builds the delivery targets of a configuration; outputDir, when
// set, replaces rule_dir and disables the reload (one-shot generation).
func NewTargets(f *config.File, outputDir string) ([]target.Target, error) {
	o := f.Rulegen.Output
	var ts []target.Target
	switch {
	case outputDir != "":
		ts = append(ts, &target.Dir{Path: outputDir})
	case o.RuleDir != "":
		ts = append(ts, &target.Dir{Path: o.RuleDir, ReloadURL: o.ReloadURL})
	}
	if outputDir != "" {
		return ts, nil
	}
	if o.PrometheusRule.Path != "" {
		ts = append(ts, &target.PrometheusRuleFile{Path: o.PrometheusRule.Path, Name: o.PrometheusRule.Name,
			Namespace: o.PrometheusRule.Namespace, Labels: o.PrometheusRule.Labels})
	}
	if o.MimirRuler.URL != "" {
		httpCfg := o.MimirRuler.HTTP
		if f.Path() != "" {
			httpCfg.SetDirectory(filepath.Dir(f.Path()))
		}
		client, err := promconfig.NewClientFromConfig(httpCfg, "autoglm-rulegen")
		if err != nil {
			return nil, fmt.Errorf("rulegen.output.mimir_ruler: %w", err)
		}
		client.Timeout = 30 * time.Second
		ts = append(ts, &target.MimirRuler{URL: o.MimirRuler.URL, Tenant: o.MimirRuler.Tenant, Namespace: o.MimirRuler.Namespace, Client: client})
	}
	if k := o.Kubernetes; k.Kind != "" {
		t, err := kubernetesTarget(k)
		if err != nil {
			return nil, err
		}
		ts = append(ts, t)
	}
	if len(ts) == 0 {
		return nil, errors.New("no output configured: set rulegen.output.rule_dir, prometheusrule.path, mimir_ruler.url or kubernetes.kind")
	}
	return ts, nil
}

// serviceAccountNamespace is where a pod learns its namespace.
const serviceAccountNamespace = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func kubernetesTarget(k config.KubernetesRulesOutput) (*target.KubernetesApply, error) {
	var rc *rest.Config
	var err error
	if k.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
	} else {
		rc, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("rulegen.output.kubernetes: no API server (%w); run in a pod or set kubeconfig", err)
	}
	ns := k.Namespace
	if ns == "" {
		b, err := os.ReadFile(serviceAccountNamespace)
		if err != nil {
			return nil, fmt.Errorf("rulegen.output.kubernetes.namespace: not set and not running in a pod: %w", err)
		}
		ns = strings.TrimSpace(string(b))
	}
	name := k.Name
	if name == "" {
		name = "autoglm-rulegen"
	}
	rc.UserAgent = "autoglm-rulegen"
	client, err := rest.HTTPClientFor(rc)
	if err != nil {
		return nil, fmt.Errorf("rulegen.output.kubernetes: %w", err)
	}
	return &target.KubernetesApply{Kind: k.Kind, Name: name, Namespace: ns, Labels: k.Labels, Host: rc.Host, Client: client}, nil
}

// SetConfig swaps the configuration used by the next refit.
func (s *Service) SetConfig(f *config.File) {
	s.mu.Lock()
	s.cfg = f
	s.mu.Unlock()
}

// Trigger asks the running loop for a refit now.
func (s *Service) Trigger() {
	select {
	case s.trigger <- struct{}{}:
	default:
	}
}

// Ready reports an error until the first refit delivered rules.
func (s *Service) Ready() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.ok {
		return errors.New("no successful refit yet")
	}
	return nil
}

// Run refits now and then every refit interval, and refreshes the baseline
// gauges every minute, until ctx ends. Failed refits are logged and retried
// on the next tick; they never stop the loop.
func (s *Service) Run(ctx context.Context) error {
	s.refitLogged(ctx)
	s.mu.Lock()
	interval := s.cfg.Rulegen.RefitInterval.D()
	s.mu.Unlock()
	refit := time.NewTicker(interval)
	defer refit.Stop()
	// Every minute the gauges are recomputed for the new time, and at every
	// refreshStep the models' levels are brought up to date first.
	gauges := time.NewTicker(time.Minute)
	defer gauges.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-refit.C:
			s.refitLogged(ctx)
		case <-s.trigger:
			s.refitLogged(ctx)
		case <-gauges.C:
			s.RefreshBands(ctx)
		}
	}
}

func (s *Service) refitLogged(ctx context.Context) {
	if err := s.Refit(ctx); err != nil {
		s.logger.Error("refit failed, keeping the last good rules", "err", err)
	}
}

type failure struct {
	reason string
	err    error
}

func (f *failure) Error() string { return f.err.Error() }
func (f *failure) Unwrap() error { return f.err }

// Refit runs one cycle. On error nothing already delivered is touched.
func (s *Service) Refit(ctx context.Context) error {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	now := s.opts.Now()
	s.metrics.lastFit.Set(float64(now.UnixNano()) / 1e9)
	err := s.refit(ctx, cfg, now)
	if err != nil {
		reason := "unknown"
		var f *failure
		if errors.As(err, &f) {
			reason = f.reason
		}
		s.metrics.failures.WithLabelValues(reason).Inc()
		if reason == "query" {
			s.bootstrap(ctx, cfg, now)
		}
		return err
	}
	s.metrics.lastSuccess.Set(float64(now.UnixNano()) / 1e9)
	return nil
}

func (s *Service) refit(ctx context.Context, f *config.File, now time.Time) error {
	c := f.Rulegen
	start := now.Add(-c.History.D())
	exclude := make([]baseline.Window, 0, len(c.IncidentWindows))
	for _, w := range c.IncidentWindows {
		exclude = append(exclude, baseline.Window{Start: w.Start, End: w.End})
	}
	// Traffic records are read once per refit even when several SLIs use them.
	cache := map[string][]promapi.Series{}
	read := func(record string) ([]promapi.Series, error) {
		if h, ok := cache[record]; ok {
			return h, nil
		}
		h, err := s.opts.History.History(ctx, record, start, now)
		if err != nil {
			return nil, err
		}
		cache[record] = h
		return h, nil
	}
	var all []fitted
	var curves []curve
	for _, def := range sli.SLIs() {
		if !c.Enabled(def.Name) {
			continue
		}
		series, err := read(def.Record)
		if err != nil {
			return &failure{"query", fmt.Errorf("read history of %s: %w", def.Name, err)}
		}
		var traffic map[string][]baseline.Point
		if def.Kind == sli.KindRatio && def.Traffic != "" && def.Traffic != def.Record {
			ts, err := read(def.Traffic)
			if err != nil {
				return &failure{"query", fmt.Errorf("read traffic of %s: %w", def.Name, err)}
			}
			traffic = make(map[string][]baseline.Point, len(ts))
			for _, t := range ts {
				traffic[byKey(def.By, t.Labels)] = t.Points
			}
		}
		for _, ser := range series {
			fi := fitted{sli: def, labels: make(map[string]string, len(def.By))}
			for _, l := range def.By {
				fi.labels[l] = string(ser.Labels[labelName(l)])
			}
			if ser.Dropped > 0 {
				s.logger.Warn("dropped non-finite samples", "sli", def.Name, "series", ser.Labels.String(), "dropped", ser.Dropped)
			}
			if len(ser.Points) > 0 {
				fi.history = ser.Points[len(ser.Points)-1].T.Sub(ser.Points[0].T)
			}
			fi.key = byKey(def.By, ser.Labels)
			fi.opts = baseline.Options{
				Kind: def.Kind, Exclude: exclude, K: c.K,
				Traffic: traffic[fi.key], MinTraffic: c.MinTraffic,
			}
			m, p, err := s.opts.Fit(ser.Points, fi.opts)
			// Refreshes read only the recent history, never the traffic.
			fi.opts.Traffic = nil
			switch {
			case errors.Is(err, baseline.ErrNoHistory):
				s.metrics.failures.WithLabelValues("no_history").Inc()
				s.logger.Info("too little history, static limits apply", "sli", def.Name, "series", ser.Labels.String(), "points", len(ser.Points))
			case err != nil:
				s.metrics.failures.WithLabelValues("fit").Inc()
				s.logger.Warn("fit failed, static limits apply", "sli", def.Name, "series", ser.Labels.String(), "err", err)
			default:
				fi.model, fi.policy = m, p
				fi.recent = tail(ser.Points, refreshWindow)
			}
			if def.Name == forecast.SLIRoute && c.ForecastEnabled() {
				curves = append(curves, s.predict(false, []string{forecast.SLIRoute, fi.labels["job"], fi.labels[sli.LabelRoute]}, fi.model, ser.Points, now))
			}
			all = append(all, fi)
		}
	}
	if c.ForecastEnabled() {
		curves = append(curves, s.forecastInstances(ctx, read, c, now)...)
	}
	in := s.input(f, all, now)
	extra, err := s.extra(f)
	if err != nil {
		return &failure{"validate", err}
	}
	in.Extra = extra
	set, err := rules.Build(in)
	if err != nil {
		return &failure{"validate", fmt.Errorf("build rules: %w", err)}
	}
	// Publish the new bands before the rules that use them reach Prometheus.
	s.mu.Lock()
	s.series = all
	s.gen++
	s.lastRefresh = now
	s.mu.Unlock()
	s.publishCurves(curves)
	s.UpdateBands()
	for _, t := range s.opts.Targets {
		res, err := t.Deliver(ctx, set)
		s.metrics.written.Add(float64(res.Written))
		var re *target.ReloadError
		switch {
		case errors.As(err, &re):
			s.metrics.reloads.WithLabelValues("failure").Inc()
			return &failure{"reload", err}
		case err != nil:
			return &failure{"write", err}
		case res.Reloaded:
			s.metrics.reloads.WithLabelValues("success").Inc()
			s.logger.Info("rules reloaded")
		}
		if res.Written > 0 {
			s.logger.Info("rules written", "target", fmt.Sprintf("%T", t), "files", res.Written)
		}
	}
	s.mu.Lock()
	s.lastSet, s.ok = set, true
	s.mu.Unlock()
	s.logger.Info("refit done", "series", len(all), "mode", c.Mode, "rules_series", set.Series)
	return nil
}

// bootstrap lays down static-only rules where none exist yet, so a first
// start against an unreachable Prometheus still leaves valid rule files.
// Files from an earlier run are never replaced by it.
func (s *Service) bootstrap(ctx context.Context, f *config.File, now time.Time) {
	s.mu.Lock()
	ok := s.ok
	s.mu.Unlock()
	if ok {
		return
	}
	in := s.input(f, nil, now)
	extra, err := s.extra(f)
	if err != nil {
		s.logger.Error("cannot build SLO rules", "err", err)
	}
	in.Extra = extra
	set, err := rules.Build(in)
	if err != nil {
		s.logger.Error("cannot build static rules", "err", err)
		return
	}
	for _, t := range s.opts.Targets {
		b, ok := t.(target.Bootstrapper)
		if !ok {
			continue
		}
		res, err := b.Bootstrap(ctx, set)
		s.metrics.written.Add(float64(res.Written))
		if res.Reloaded {
			s.metrics.reloads.WithLabelValues("success").Inc()
		}
		if err != nil {
			var re *target.ReloadError
			if errors.As(err, &re) {
				s.metrics.reloads.WithLabelValues("failure").Inc()
			}
			s.logger.Error("writing static rules failed", "err", err)
			continue
		}
		if res.Written > 0 {
			s.logger.Warn("history unavailable, wrote static-only rules", "files", res.Written)
		}
	}
}

// extra builds the rule files that do not depend on fitted baselines: the
// SLOs of the slos: section and of the Sloth specs (re-read at every refit,
// so a reload picks up edited specs).
func (s *Service) extra(f *config.File) (map[string]rulefmt.RuleGroups, error) {
	specs, err := slo.Load(f)
	if err != nil {
		return nil, fmt.Errorf("SLO specs: %w", err)
	}
	g, err := slo.Build(specs...)
	if err != nil {
		return nil, err
	}
	return map[string]rulefmt.RuleGroups{slo.File: g, forecast.File: forecastRules(f)}, nil
}

// tail copies the points of h within d of its last one, so the rest of a
// long history can be freed.
func tail(h []baseline.Point, d time.Duration) []baseline.Point {
	if len(h) == 0 {
		return nil
	}
	from := h[len(h)-1].T.Add(-d)
	i := sort.Search(len(h), func(i int) bool { return !h[i].T.Before(from) })
	return slices.Clone(h[i:])
}

// RefreshBands brings the fitted models up to date with the samples since
// their history ended — one range query per SLI, then baseline.Refresh,
// which moves levels and day types without refitting shapes — and
// recomputes the gauges. The backtest refreshes the same way at every
// bucket, so the bands the series-mode rules compare against are the ones
// it judged. It runs at most once per refreshStep (between refreshes only
// the gauges move); literal rules carry their thresholds until the next
// rewrite, so literal mode only recomputes the gauges. A failed query keeps
// the models as they are and counts a "refresh" failure.
func (s *Service) RefreshBands(ctx context.Context) {
	s.mu.Lock()
	cfg, series, gen, last := s.cfg, s.series, s.gen, s.lastRefresh
	s.mu.Unlock()
	now := s.opts.Now()
	if cfg.Rulegen.Mode != rules.ModeSeries || len(series) == 0 || now.Truncate(refreshStep).Equal(last.Truncate(refreshStep)) {
		s.UpdateBands()
		return
	}
	out := slices.Clone(series)
	byRecord := map[string][]int{}
	for i, fi := range out {
		if fi.model != nil && len(fi.recent) > 0 {
			byRecord[fi.sli.Record] = append(byRecord[fi.sli.Record], i)
		}
	}
	records := slices.Sorted(maps.Keys(byRecord))
	for _, record := range records {
		idx := byRecord[record]
		from := out[idx[0]].recent[len(out[idx[0]].recent)-1].T
		for _, i := range idx[1:] {
			if t := out[i].recent[len(out[i].recent)-1].T; t.Before(from) {
				from = t
			}
		}
		got, err := s.opts.History.History(ctx, record, from, now)
		if err != nil {
			s.metrics.failures.WithLabelValues("refresh").Inc()
			s.logger.Warn("refreshing baselines failed, keeping their levels", "record", record, "err", err)
			continue
		}
		fresh := make(map[string][]baseline.Point, len(got))
		for _, g := range got {
			fresh[byKey(out[idx[0]].sli.By, g.Labels)] = g.Points
		}
		for _, i := range idx {
			fi := &out[i]
			end := fi.recent[len(fi.recent)-1].T
			var add []baseline.Point
			for _, p := range fresh[fi.key] {
				if p.T.After(end) {
					add = append(add, p)
				}
			}
			if len(add) == 0 {
				continue
			}
			fi.recent = tail(append(fi.recent, add...), refreshWindow)
			fi.model = baseline.Refresh(fi.model, fi.recent, fi.opts)
		}
	}
	s.mu.Lock()
	if s.gen == gen {
		s.series = out
		s.lastRefresh = now
	}
	s.mu.Unlock()
	s.UpdateBands()
}

// LastSet returns the last delivered rule set (nil before the first).
func (s *Service) LastSet() *rules.Set {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSet
}

func (s *Service) input(f *config.File, all []fitted, now time.Time) rules.Input {
	c := f.Rulegen
	in := rules.Input{
		Mode:          c.Mode,
		QPSThreshold:  f.AlertRules.QPSThreshold,
		ErrorRate:     f.AlertRules.ErrorRate,
		Cooldown:      f.AlertRules.Cooldown.D(),
		MinTraffic:    c.MinTraffic,
		For:           c.For.D(),
		ConfirmWindow: c.ConfirmWindow.D(),
		MaxSeries:     c.MaxSeries,
		ExporterJob:   c.ExporterJob,
		RefitInterval: c.RefitInterval.D(),
		SkipRecording: !c.Output.RecordingRules,
	}
	for _, def := range sli.SLIs() {
		if !c.Enabled(def.Name) {
			continue
		}
		st := rules.SLI{SLI: def}
		if conf, ok := c.SLIs[def.Name]; ok {
			st.StaticUpper, st.StaticLower = conf.StaticUpper, conf.StaticLower
		}
		if st.StaticUpper == nil && def.Kind == sli.KindRatio && f.AlertRules.ErrorRate > 0 {
			v := f.AlertRules.ErrorRate
			st.StaticUpper = &v
		}
		var fors, keeps []time.Duration
		for _, fi := range all {
			if fi.sli.Name != def.Name {
				continue
			}
			ser := rules.Series{Labels: fi.labels, Lower: math.NaN(), Expected: math.NaN(), Upper: math.NaN(), SpikeLower: math.NaN(), SpikeUpper: math.NaN()}
			if fi.model != nil {
				ser.Fitted = true
				h := horizon(fi.model, now, c.RefitInterval.D(), c.Step.D())
				ser.Lower, ser.Expected, ser.Upper, ser.SpikeLower, ser.SpikeUpper = h.Lower, h.Expected, h.Upper, h.SpikeLower, h.SpikeUpper
				ser.Policy = rules.Policy{For: fi.policy.For, KeepFiringFor: fi.policy.KeepFiringFor}
				fors, keeps = append(fors, fi.policy.For), append(keeps, fi.policy.KeepFiringFor)
			}
			st.Series = append(st.Series, ser)
		}
		// One rule covers every series in series mode: the median policy is
		// the one most series were fitted to.
		st.Policy = rules.Policy{For: median(fors), KeepFiringFor: median(keeps)}
		in.SLIs = append(in.SLIs, st)
	}
	return in
}

// horizon folds the band over the next refit interval into one threshold
// per side: literal rules must hold until they are rewritten, so they take
// the widest band of that interval (spike band included).
func horizon(m baseline.Model, now time.Time, interval, step time.Duration) baseline.Band {
	out := baseline.Band{Lower: math.Inf(1), Upper: math.Inf(-1), SpikeLower: math.Inf(1), SpikeUpper: math.Inf(-1)}
	var expected float64
	n := 0
	if step <= 0 {
		step = time.Minute
	}
	if interval/step > 240 {
		step = interval / 240
	}
	widen := func(lo *float64, v float64, f func(a, b float64) float64) {
		if !math.IsNaN(v) {
			*lo = f(*lo, v)
		}
	}
	for t := now; !t.After(now.Add(interval)); t = t.Add(step) {
		b := m.Band(t)
		widen(&out.Lower, b.Lower, math.Min)
		widen(&out.Upper, b.Upper, math.Max)
		widen(&out.SpikeLower, b.SpikeLower, math.Min)
		widen(&out.SpikeUpper, b.SpikeUpper, math.Max)
		if !math.IsNaN(b.Expected) {
			expected += b.Expected
			n++
		}
	}
	for _, v := range []*float64{&out.Lower, &out.Upper, &out.SpikeLower, &out.SpikeUpper} {
		if math.IsInf(*v, 0) {
			*v = math.NaN()
		}
	}
	out.Expected = math.NaN()
	if n > 0 {
		out.Expected = expected / float64(n)
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

// Client returns an HTTP client with a timeout for the reload target.
func Client() *http.Client { return &http.Client{Timeout: 30 * time.Second} }

func byKey(by []string, m model.Metric) string {
	var b strings.Builder
	for _, l := range by {
		b.WriteString(string(m[model.LabelName(l)]))
		b.WriteByte(0)
	}
	return b.String()
}
