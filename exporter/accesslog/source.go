// Package accesslog is the exporter's second capture source: it follows a
// gateway's, load balancer's or application's access log (nginx, Envoy or
// JSON lines) and turns each line into a traffic.Request, for hosts where
// eBPF is not allowed. Lines are never logged or kept: only the parsed
// fields leave this package.
package accesslog

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// Formats.
const (
	FormatNginx = "nginx"
	FormatEnvoy = "envoy"
	FormatJSON  = "json"
)

// Options configure a Source.
type Options struct {
	Path string
	// Format is nginx, envoy or json.
	Format string
	// Fields maps our field names to JSON keys (json format only), e.g.
	// "status":"status", "duration":"request_time" (seconds; "key:ms" for
	// milliseconds). Empty means DefaultJSONFields. See README.md.
	Fields map[string]string
	// FromStart reads a file present at start from its beginning (tests,
	// backfill); by default only lines written afterwards are read.
	FromStart bool
	// ServerPort is reported on every request (logs rarely carry it).
	ServerPort uint16
	Logger     *slog.Logger
}

// Source follows one access log.
type Source struct {
	o      Options
	parser lineParser
	poll   time.Duration
	quiet  time.Duration
	m      *metrics
	// tail is the running tailer, for Ready.
	tail atomic.Pointer[tailer]
}

type metrics struct {
	lines       prometheus.Counter
	requests    prometheus.Counter
	parseErrors *prometheus.CounterVec
	bytes       prometheus.Counter
	rotations   *prometheus.CounterVec
	open        prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		lines: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_accesslog_lines_total",
			Help: "Lines read from the access log.",
		}),
		requests: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_accesslog_requests_total",
			Help: "Lines parsed into requests.",
		}),
		parseErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_exporter_accesslog_parse_errors_total",
			Help: "Lines that could not be parsed, by reason.",
		}, []string{"reason"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "autoglm_exporter_accesslog_read_bytes_total",
			Help: "Bytes read from the access log.",
		}),
		rotations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "autoglm_exporter_accesslog_rotations_total",
			Help: "Log rotations followed, by kind (rename or truncate).",
		}, []string{"kind"}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "autoglm_exporter_accesslog_file_open",
			Help: "1 when the access log is open, 0 while waiting for it to exist.",
		}),
	}
	for _, r := range allReasons {
		m.parseErrors.WithLabelValues(r)
	}
	m.rotations.WithLabelValues("rename")
	m.rotations.WithLabelValues("truncate")
	return m
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	m.lines.Describe(ch)
	m.requests.Describe(ch)
	m.parseErrors.Describe(ch)
	m.bytes.Describe(ch)
	m.rotations.Describe(ch)
	m.open.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.lines.Collect(ch)
	m.requests.Collect(ch)
	m.parseErrors.Collect(ch)
	m.bytes.Collect(ch)
	m.rotations.Collect(ch)
	m.open.Collect(ch)
}

// New checks the options and builds the line parser; it does not open the
// file, which may not exist yet.
func New(o Options) (*Source, error) {
	if o.Path == "" {
		return nil, errors.New("access log: path is empty")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Source{o: o, poll: 250 * time.Millisecond, quiet: time.Second, m: newMetrics()}
	switch o.Format {
	case FormatNginx:
		s.parser = nginxParser{port: o.ServerPort}
	case FormatEnvoy:
		s.parser = envoyParser{port: o.ServerPort}
	case FormatJSON:
		p, err := newJSONParser(o.Fields, o.ServerPort, time.Now)
		if err != nil {
			return nil, fmt.Errorf("access log %s: %w", o.Path, err)
		}
		s.parser = p
	default:
		return nil, fmt.Errorf("access log %s: unknown format %q (want nginx, envoy or json)", o.Path, o.Format)
	}
	if o.Format != FormatJSON && len(o.Fields) > 0 {
		return nil, fmt.Errorf("access log %s: field mapping applies to the json format only", o.Path)
	}
	return s, nil
}

// Ready reports whether the log is open and being followed; otherwise it
// says why not (not started, waiting for the file to appear, the path is not
// a regular file).
func (s *Source) Ready() error {
	t := s.tail.Load()
	if t == nil {
		return fmt.Errorf("access log %s: source not running", s.o.Path)
	}
	return t.ready()
}

// Collector exposes the source's own metrics.
func (s *Source) Collector() prometheus.Collector { return s.m }

// Run follows the log until ctx is cancelled, calling handle for every
// parsed line. The request is only valid during the call.
func (s *Source) Run(ctx context.Context, handle func(*traffic.Request)) error {
	logger := s.o.Logger.With("path", s.o.Path, "format", s.o.Format)
	var req traffic.Request
	t := newTailer(s.o.Path, s.o.FromStart, tailHooks{
		line: func(line []byte, lineNo int64) {
			if len(line) == 0 {
				return
			}
			s.m.lines.Inc()
			req = traffic.Request{RequestBodySize: -1, ResponseBodySize: -1, InputTokens: -1, OutputTokens: -1}
			if err := s.parser.parse(line, &req); err != nil {
				reason, field := reasonSyntax, ""
				var pe *parseError
				if errors.As(err, &pe) {
					reason, field = pe.reason, pe.field
				}
				s.m.parseErrors.WithLabelValues(reason).Inc()
				// Never the line itself: it can carry client data.
				logger.Debug("access log line rejected", "line", lineNo, "reason", reason, "field", field)
				return
			}
			s.m.requests.Inc()
			handle(&req)
		},
		tooLong: func(lineNo int64) {
			s.m.lines.Inc()
			s.m.parseErrors.WithLabelValues(reasonTooLong).Inc()
			logger.Debug("access log line rejected", "line", lineNo, "reason", reasonTooLong)
		},
		rotated: func(kind string) {
			s.m.rotations.WithLabelValues(kind).Inc()
			logger.Info("access log rotated", "kind", kind)
		},
		opened: func(open bool) {
			if open {
				s.m.open.Set(1)
				return
			}
			s.m.open.Set(0)
		},
		read: func(n int) { s.m.bytes.Add(float64(n)) },
		refused: func(err error) {
			logger.Error("access log refused, waiting for a regular file at its path", "err", err)
		},
	})
	t.poll, t.quiet = s.poll, s.quiet
	s.tail.Store(t)
	defer s.tail.Store(nil)
	logger.Info("following access log", "from_start", s.o.FromStart)
	if _, err := os.Stat(s.o.Path); errors.Is(err, fs.ErrNotExist) {
		logger.Warn("access log does not exist yet, waiting for it")
	}
	if err := t.run(ctx); err != nil {
		return fmt.Errorf("access log %s: %w", s.o.Path, err)
	}
	return nil
}
