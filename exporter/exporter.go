// Package exporter wires a capture source to the HTTP parser, the traffic
// metrics and the outputs: eBPF socket events → httpparse → metrics (and
// request events to Kafka), or access-log lines → the same. cmd/autoglm-exporter
// only parses flags and calls this.
package exporter

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/klog/v2"

	"github.com/open-autoglm/autoglm-monitor/exporter/accesslog"
	"github.com/open-autoglm/autoglm-monitor/exporter/ebpf"
	"github.com/open-autoglm/autoglm-monitor/exporter/httpparse"
	"github.com/open-autoglm/autoglm-monitor/exporter/kafka"
	"github.com/open-autoglm/autoglm-monitor/exporter/metrics"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	identity "github.com/open-autoglm/autoglm-monitor/exporter/workload"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
)

// EventSource is a capture of raw socket events (the eBPF source).
type EventSource interface {
	traffic.EventSource
	Collector() prometheus.Collector
	Close() error
}

// RequestSource yields finished requests (the access-log source).
type RequestSource interface {
	traffic.RequestSource
	Collector() prometheus.Collector
}

// Output receives every finished request after the metrics took it (the
// Kafka output). Publish is called on the capture's goroutine: it must not
// block, and must copy what it keeps of the request.
type Output interface {
	Publish(r *traffic.Request)
	Collector() prometheus.Collector
	// Run delivers until ctx is done, then flushes within its own bound.
	Run(ctx context.Context) error
	// Close releases the output (also when Run never ran).
	Close() error
}

// Options configures an Exporter.
type Options struct {
	Config *config.File
	Logger *slog.Logger
	// Registerer receives every collector; required.
	Registerer prometheus.Registerer
	// Events or Requests replace the source named in the configuration (tests, benchmarks).
	Events   EventSource
	Requests RequestSource
	// Kubernetes replaces the API server configuration of exporter.kubernetes (tests).
	Kubernetes *rest.Config
	// Outputs are added to those named in exporter.outputs (tests, benchmarks).
	Outputs []Output
}

// Exporter runs one source and keeps the metrics.
type Exporter struct {
	logger   *slog.Logger
	events   EventSource
	requests RequestSource
	parser   *httpparse.Parser
	metrics  *metrics.Collector
	// resolver names the servers of eBPF connections; pods is its Kubernetes index (nil outside).
	resolver *identity.Resolver
	pods     *identity.Pods
	// logWorkload names the server of access-log requests.
	logWorkload *traffic.Workload
	outputs     []Output
	observed    atomic.Uint64
	running     atomic.Bool
}

// New builds the source named by exporter.source (unless one is given) and
// registers the metrics. For the eBPF source this loads and attaches the
// programs, so it fails fast on a host that cannot run them.
func New(o Options) (*Exporter, error) {
	if o.Config == nil {
		return nil, errors.New("exporter: no configuration")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Registerer == nil {
		return nil, errors.New("exporter: no registerer")
	}
	cfg := o.Config.Exporter
	e := &Exporter{logger: o.Logger, events: o.Events, requests: o.Requests, outputs: o.Outputs}
	e.metrics = metrics.New(metrics.Options{
		Endpoints:      o.Config.Metrics.Endpoints,
		TopModels:      cfg.TopModels,
		TopClients:     cfg.TopClients,
		ClientPrefixV4: cfg.ClientPrefixV4,
		ClientPrefixV6: cfg.ClientPrefixV6,
	})
	if e.events == nil && e.requests == nil {
		if err := e.openSource(cfg, o.Logger); err != nil {
			return nil, err
		}
	}
	collectors := []prometheus.Collector{e.metrics, newSelfCollector(e), versioncollector.NewCollector("autoglm_exporter")}
	if e.events != nil {
		if err := e.openResolver(o, time.Duration(o.Config.Metrics.Interval)); err != nil {
			return nil, errors.Join(err, e.Close())
		}
		e.parser = httpparse.New(httpparse.Options{
			MaxConnections: cfg.MaxConnections,
			BodyScanBytes:  max(cfg.CaptureBytes, httpparse.DefaultBodyScanBytes),
			Identify:       e.resolver.Identify,
			OnStart:        e.metrics.Start,
			OnRequest:      e.finish,
			OnDrop:         e.metrics.Drop,
		})
		collectors = append(collectors, e.events.Collector(), e.resolver.Collector())
		if e.pods != nil {
			collectors = append(collectors, e.pods.Collector())
		}
	} else {
		e.logWorkload = &traffic.Workload{ServiceName: cfg.AccessLog.AccessLogServiceName()}
		collectors = append(collectors, e.requests.Collector())
	}
	if cfg.Outputs.Kafka != nil {
		src := kafka.SourceEBPF
		if e.events == nil {
			src = kafka.SourceAccessLog
		}
		ko, err := kafka.FromConfig(o.Config, src, o.Logger)
		if err != nil {
			return nil, errors.Join(err, e.Close())
		}
		out, err := kafka.New(ko)
		if err != nil {
			return nil, errors.Join(err, e.Close())
		}
		e.outputs = append(e.outputs, out)
	}
	for _, out := range e.outputs {
		collectors = append(collectors, out.Collector())
	}
	for _, c := range collectors {
		if err := o.Registerer.Register(c); err != nil {
			return nil, errors.Join(fmt.Errorf("exporter: registering metrics: %w", err), e.Close())
		}
	}
	return e, nil
}

func (e *Exporter) openSource(cfg config.Exporter, logger *slog.Logger) error {
	switch cfg.Source {
	case config.SourceAccessLog:
		port := cfg.AccessLog.ServerPort
		if port == 0 && len(cfg.Ports) > 0 {
			port = cfg.Ports[0]
		}
		src, err := accesslog.New(accesslog.Options{
			Path:       cfg.AccessLog.Path,
			Format:     cfg.AccessLog.Format,
			Fields:     cfg.AccessLog.Fields,
			FromStart:  cfg.AccessLog.FromStart,
			ServerPort: port,
			Logger:     logger,
		})
		if err != nil {
			return fmt.Errorf("exporter: access log source: %w", err)
		}
		e.requests = src
	default:
		src, err := ebpf.New(ebpf.Options{
			Ports:           cfg.Ports,
			CgroupPath:      cfg.CgroupPath,
			CaptureBytes:    cfg.CaptureBytes,
			RingBufferBytes: cfg.RingBufferBytes,
			Logger:          logger,
		})
		if err != nil {
			return err
		}
		e.events = src
	}
	return nil
}

// openResolver sets up workload identity: configured service names, and
// pods through the API server when exporter.kubernetes is enabled. Gone
// workloads keep their series for one collection interval.
func (e *Exporter) openResolver(o Options, interval time.Duration) error {
	cfg := o.Config.Exporter
	rules := make([]identity.Rule, 0, len(cfg.Services))
	for _, s := range cfg.Services {
		rules = append(rules, identity.Rule{Name: s.Name, Ports: s.Ports, Process: s.Process})
	}
	if cfg.Kubernetes.Enabled {
		rc := o.Kubernetes
		if rc == nil {
			var err error
			if rc, err = kubeConfig(cfg.Kubernetes); err != nil {
				return err
			}
		}
		node := cfg.Kubernetes.NodeName
		if node == "" {
			node = os.Getenv("NODE_NAME")
		}
		// client-go logs through klog; send it where everything else goes.
		klog.SetSlogLogger(o.Logger)
		pods, err := identity.NewPods(identity.PodsOptions{Config: rc, NodeName: node, Logger: o.Logger})
		if err != nil {
			return err
		}
		e.pods = pods
	}
	e.resolver = identity.New(identity.Options{
		Rules:    rules,
		Pods:     e.pods,
		Grace:    interval,
		OnRetire: e.metrics.Forget,
		Logger:   o.Logger,
	})
	return nil
}

func kubeConfig(k config.ExporterKubernetes) (*rest.Config, error) {
	if k.Kubeconfig != "" {
		rc, err := clientcmd.BuildConfigFromFlags("", k.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("exporter.kubernetes.kubeconfig: %w", err)
		}
		return rc, nil
	}
	rc, err := rest.InClusterConfig()
	if err != nil {
		return nil, fmt.Errorf("exporter.kubernetes: not running in a pod (%w); set exporter.kubernetes.kubeconfig", err)
	}
	return rc, nil
}

func (e *Exporter) finish(r *traffic.Request) {
	e.observed.Add(1)
	e.metrics.Finish(r)
	for _, out := range e.outputs {
		out.Publish(r)
	}
}

func (e *Exporter) observe(r *traffic.Request) {
	e.observed.Add(1)
	if r.Workload == nil {
		r.Workload = e.logWorkload
	}
	e.metrics.Observe(r)
	for _, out := range e.outputs {
		out.Publish(r)
	}
}

// Run reads the source until ctx is done. The outputs run beside it and
// flush after the source has stopped, so no finished request is left out.
func (e *Exporter) Run(ctx context.Context) error {
	e.running.Store(true)
	defer e.running.Store(false)
	outCtx, stopOutputs := context.WithCancel(context.WithoutCancel(ctx))
	var outputs sync.WaitGroup
	for _, out := range e.outputs {
		outputs.Go(func() {
			if err := out.Run(outCtx); err != nil {
				e.logger.Error("output stopped", "err", err)
			}
		})
	}
	defer outputs.Wait()
	defer stopOutputs()
	if e.events == nil {
		return e.requests.Run(ctx, e.observe)
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Go(func() { e.resolver.Run(ctx.Done()) })
	if e.pods != nil {
		wg.Go(func() { e.pods.Run(ctx) })
	}
	return e.events.Run(ctx, e.parser.Handle)
}

// Ready reports whether the source is running and, in Kubernetes, the pods
// of the node have been listed (before that, pods could not be named).
func (e *Exporter) Ready() error {
	if !e.running.Load() {
		return errors.New("capture source not running")
	}
	if e.pods != nil && !e.pods.HasSynced() {
		return errors.New("pods of this node not listed from the API server yet")
	}
	if r, ok := e.requests.(interface{ Ready() error }); ok {
		return r.Ready()
	}
	return nil
}

// Observed is the number of requests turned into metrics.
func (e *Exporter) Observed() uint64 { return e.observed.Load() }

// Close releases the source (detaching eBPF programs) and the outputs.
func (e *Exporter) Close() error {
	var errs []error
	if e.events != nil {
		if err := e.events.Close(); err != nil {
			errs = append(errs, fmt.Errorf("exporter: closing source: %w", err))
		}
	}
	for _, out := range e.outputs {
		if err := out.Close(); err != nil {
			errs = append(errs, fmt.Errorf("exporter: closing output: %w", err))
		}
	}
	return errors.Join(errs...)
}

// selfCollector exposes the parser's and the pipeline's own counters.
type selfCollector struct {
	e                                     *Exporter
	parseErrors, observed, conns, evicted *prometheus.Desc
	dropped                               *prometheus.Desc
}

func newSelfCollector(e *Exporter) *selfCollector {
	return &selfCollector{
		e: e,
		parseErrors: prometheus.NewDesc("autoglm_exporter_parse_errors_total",
			"Bytes that could not be parsed as HTTP/1.x or HTTP/2, or requests that could not be measured, by reason.", []string{"reason"}, nil),
		observed: prometheus.NewDesc("autoglm_exporter_requests_observed_total",
			"Finished requests turned into traffic metrics.", nil, nil),
		conns: prometheus.NewDesc("autoglm_exporter_parser_connections",
			"Connections the HTTP parser is tracking.", nil, nil),
		evicted: prometheus.NewDesc("autoglm_exporter_parser_connections_evicted_total",
			"Connections the HTTP parser stopped tracking to stay within exporter.max_connections.", nil, nil),
		dropped: prometheus.NewDesc("autoglm_exporter_requests_dropped_total",
			"Requests seen starting that could not be measured to the end (evicted or unparsable response).", nil, nil),
	}
}

func (c *selfCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.observed
	if c.e.parser != nil {
		ch <- c.parseErrors
		ch <- c.conns
		ch <- c.evicted
		ch <- c.dropped
	}
}

func (c *selfCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.observed, prometheus.CounterValue, float64(c.e.observed.Load()))
	p := c.e.parser
	if p == nil {
		return
	}
	st := p.Stats()
	for _, r := range httpparse.Reasons() {
		ch <- prometheus.MustNewConstMetric(c.parseErrors, prometheus.CounterValue, float64(st.Errors(r)), r.String())
	}
	ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(st.Connections()))
	ch <- prometheus.MustNewConstMetric(c.evicted, prometheus.CounterValue, float64(st.Evicted()))
	ch <- prometheus.MustNewConstMetric(c.dropped, prometheus.CounterValue, float64(st.Dropped()))
}
