// Package promapi reads SLI history over the Prometheus HTTP API. It only
// uses the standard range-query and series endpoints, so Prometheus, Thanos,
// Mimir and VictoriaMetrics all work. Long ranges are cut into chunks that
// stay under the per-series point limit, queried in parallel (bounded) with
// a timeout and retries each.
package promapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// MaxPointsPerQuery is Prometheus' limit of points per series in one range query.
const MaxPointsPerQuery = 11000

// Options configure a Reader.
type Options struct {
	URL string
	// RoundTripper carries auth and TLS (from the HTTP client config); nil uses the default.
	RoundTripper http.RoundTripper
	Step         time.Duration
	ChunkSize    time.Duration
	Parallelism  int
	Timeout      time.Duration
	Retries      int
	// MaxSeries bounds the series read per query; the rest are dropped (sorted by labels) and logged.
	MaxSeries int
	// QueryErrors counts failed query attempts; nil disables counting.
	QueryErrors prometheus.Counter
	// InitialBackoff is the first retry delay (default 500ms).
	InitialBackoff time.Duration
}

// Reader reads history.
type Reader struct {
	api    v1.API
	opts   Options
	logger *slog.Logger
}

// Series is the history of one label set.
type Series struct {
	Labels model.Metric
	Points []baseline.Point
	// Dropped counts NaN/Inf samples removed.
	Dropped int
}

// New returns a Reader.
func New(opts Options, logger *slog.Logger) (*Reader, error) {
	if opts.Step <= 0 {
		return nil, errors.New("step must be positive")
	}
	if opts.Parallelism < 1 {
		opts.Parallelism = 1
	}
	if opts.InitialBackoff <= 0 {
		opts.InitialBackoff = 500 * time.Millisecond
	}
	rt := opts.RoundTripper
	if rt == nil {
		rt = api.DefaultRoundTripper
	}
	c, err := api.NewClient(api.Config{Address: opts.URL, RoundTripper: rt})
	if err != nil {
		return nil, fmt.Errorf("query client for %s: %w", opts.URL, err)
	}
	return &Reader{api: v1.NewAPI(c), opts: opts, logger: logger}, nil
}

// Chunks cuts [start, end] into step-aligned ranges of at most MaxPointsPerQuery
// points that do not overlap, so merged results carry every point once.
func Chunks(start, end time.Time, step, size time.Duration) []v1.Range {
	start = start.Truncate(step)
	if end.Before(start) {
		return nil
	}
	points := int(size / step)
	if points < 1 {
		points = 1
	}
	if points > MaxPointsPerQuery {
		points = MaxPointsPerQuery
	}
	span := time.Duration(points-1) * step
	var out []v1.Range
	for s := start; !s.After(end); s = s.Add(span + step) {
		e := s.Add(span)
		if e.After(end) {
			e = end
		}
		out = append(out, v1.Range{Start: s, End: e, Step: step})
	}
	return out
}

func permanent(err error) bool {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		// Bad queries do not get better by asking again; overload and timeouts might.
		return apiErr.Type == v1.ErrBadData
	}
	return false
}

func (r *Reader) queryRange(ctx context.Context, query string, rng v1.Range) (model.Matrix, error) {
	op := func() (model.Matrix, error) {
		qctx, cancel := context.WithTimeout(ctx, r.opts.Timeout)
		defer cancel()
		v, warnings, _, err := r.api.QueryRange(qctx, query, rng)
		if err != nil {
			if r.opts.QueryErrors != nil {
				r.opts.QueryErrors.Inc()
			}
			if errors.Is(qctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
				err = fmt.Errorf("timed out after %s: %w", r.opts.Timeout, err)
			}
			if permanent(err) || ctx.Err() != nil {
				return nil, backoff.Permanent(err)
			}
			return nil, err
		}
		if len(warnings) > 0 {
			r.logger.Warn("query returned warnings", "query", query, "warnings", strings.Join(warnings, "; "))
		}
		m, ok := v.(model.Matrix)
		if !ok {
			return nil, backoff.Permanent(fmt.Errorf("range query returned %s, want a matrix", v.Type()))
		}
		return m, nil
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = r.opts.InitialBackoff
	return backoff.Retry(ctx, op,
		backoff.WithBackOff(b),
		backoff.WithMaxTries(uint(r.opts.Retries)+1),
		backoff.WithMaxElapsedTime(0),
		backoff.WithNotify(func(err error, d time.Duration) {
			r.logger.Warn("range query failed, retrying", "query", query, "start", rng.Start, "end", rng.End, "retry_in", d, "err", err)
		}))
}

// History returns the series of query over [start, end], at most MaxSeries of
// them, with NaN and Inf samples dropped. One failed chunk fails the whole
// read: a fit on silently missing days is worse than no fit.
func (r *Reader) History(ctx context.Context, query string, start, end time.Time) ([]Series, error) {
	chunks := Chunks(start, end, r.opts.Step, r.opts.ChunkSize)
	results := make([]model.Matrix, len(chunks))
	errs := make([]error, len(chunks))
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sem := make(chan struct{}, r.opts.Parallelism)
	var wg sync.WaitGroup
	for i, c := range chunks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-sem }()
			m, err := r.queryRange(ctx, query, c)
			if err != nil {
				errs[i] = fmt.Errorf("query %s from %s to %s: %w", query, c.Start.UTC().Format(time.RFC3339), c.End.UTC().Format(time.RFC3339), err)
				cancel()
				return
			}
			results[i] = m
		}()
	}
	wg.Wait()
	if err := parent.Err(); err != nil {
		return nil, fmt.Errorf("query %s: %w", query, context.Cause(parent))
	}
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r.merge(query, results), nil
}

func (r *Reader) merge(query string, results []model.Matrix) []Series {
	byFP := map[model.Fingerprint]*Series{}
	for _, m := range results {
		for _, ss := range m {
			fp := ss.Metric.Fingerprint()
			s, ok := byFP[fp]
			if !ok {
				s = &Series{Labels: ss.Metric}
				byFP[fp] = s
			}
			if cap(s.Points) == 0 {
				s.Points = make([]baseline.Point, 0, len(ss.Values)*len(results))
			}
			for _, p := range ss.Values {
				v := float64(p.Value)
				if math.IsNaN(v) || math.IsInf(v, 0) {
					s.Dropped++
					continue
				}
				s.Points = append(s.Points, baseline.Point{T: p.Timestamp.Time(), V: v})
			}
		}
	}
	out := make([]Series, 0, len(byFP))
	for _, s := range byFP {
		sort.Slice(s.Points, func(i, j int) bool { return s.Points[i].T.Before(s.Points[j].T) })
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Labels.String() < out[j].Labels.String() })
	if r.opts.MaxSeries > 0 && len(out) > r.opts.MaxSeries {
		r.logger.Warn("too many series, keeping the first ones", "query", query, "series", len(out), "max_series", r.opts.MaxSeries)
		out = out[:r.opts.MaxSeries]
	}
	return out
}
