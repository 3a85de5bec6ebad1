package backtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// CLI is the backtest subcommand's input.
type CLI struct {
	Inputs []string
	Kind   string // auto|rate|latency|ratio
	Output string
	// Report is an HTML file (.html or .htm) with the bands and alerts.
	Report string
	// Strict makes any unreadable input an error; otherwise the run fails
	// only when no input could be scored.
	Strict  bool
	Workers int
}

// Output is the alerts.json document.
type Output struct {
	Series []SeriesOutput `json:"series"`
}

// SeriesOutput is one input's outcome: its firing episodes, or why it
// could not be scored.
type SeriesOutput struct {
	Input string `json:"input"`
	// Kind is how the series was treated (rate, latency, ratio, or level:
	// both bounds on its own scale) and KindFrom why: "--kind" or the
	// evidence the values gave under --kind auto.
	Kind     string        `json:"kind,omitempty"`
	KindFrom string        `json:"kind_from,omitempty"`
	Model    string        `json:"model,omitempty"`
	Points   int           `json:"points,omitempty"`
	Warnings []string      `json:"warnings,omitempty"`
	Error    string        `json:"error,omitempty"`
	Alerts   []AlertOutput `json:"alerts"`
}

// AlertOutput is one episode in RFC 3339.
type AlertOutput struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

// ErrNothingScored is returned when no input could be scored.
var ErrNothingScored = errors.New("no input could be scored")

func kindFlag(flag string) (sli.Kind, bool, error) {
	switch flag {
	case "", "auto":
		return "", true, nil
	case string(sli.KindRate), string(sli.KindLatency), string(sli.KindRatio):
		return sli.Kind(flag), false, nil
	}
	return "", false, fmt.Errorf("--kind %q: want auto, rate, latency or ratio", flag)
}

// checkReport accepts the report formats the backtest writes: one
// self-contained HTML page (inline SVG charts).
func checkReport(path string) error {
	if path == "" {
		return nil
	}
	switch strings.ToLower(filepath.Ext(path)) {
	case ".html", ".htm":
		return nil
	}
	return fmt.Errorf("--report %q: the report is a self-contained HTML page; name it .html (no %s output)", path, strings.TrimPrefix(filepath.Ext(path), "."))
}

// Run backtests every input and writes alerts.json (and the report). An
// input that cannot be read or walked is reported in the output and the
// log with its file and line, and the others are still scored; Run fails
// when nothing could be scored, or with Strict when anything failed.
func Run(ctx context.Context, c CLI, logger *slog.Logger) error {
	if len(c.Inputs) == 0 {
		return fmt.Errorf("no --input given")
	}
	if c.Output == "" {
		return fmt.Errorf("no --output given")
	}
	if _, _, err := kindFlag(c.Kind); err != nil {
		return err
	}
	if err := checkReport(c.Report); err != nil {
		return err
	}
	workers := c.Workers
	if workers <= 0 {
		workers = 2
	}
	outs := make([]SeriesOutput, len(c.Inputs))
	results := make([]Result, len(c.Inputs))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, in := range c.Inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			outs[i], results[i] = backtestFile(ctx, in, c.Kind)
			o := outs[i]
			if o.Error != "" {
				logger.Error("input not scored", "input", in, "err", o.Error)
				return
			}
			for _, w := range o.Warnings {
				logger.Warn("input repaired", "input", in, "warning", w)
			}
			logger.Info("series backtested", "input", in, "kind", o.Kind, "kind_from", o.KindFrom, "model", o.Model,
				"points", o.Points, "alerts", len(o.Alerts), "duration", time.Since(start))
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	var failed []string
	for _, o := range outs {
		if o.Error != "" {
			failed = append(failed, o.Error)
		}
	}
	b, err := json.MarshalIndent(Output{Series: outs}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	if err := writeAtomic(c.Output, ".alerts-*", func(w io.Writer) error {
		_, err := w.Write(append(b, '\n'))
		return err
	}); err != nil {
		return err
	}
	logger.Info("alerts written", "path", c.Output, "series", len(outs), "failed", len(failed))
	if c.Report != "" {
		if err := writeAtomic(c.Report, ".report-*", func(w io.Writer) error { return WriteReport(w, outs, results) }); err != nil {
			return fmt.Errorf("write report: %w", err)
		}
		logger.Info("report written", "path", c.Report)
	}
	switch {
	case len(failed) == len(outs):
		return fmt.Errorf("%w: %s", ErrNothingScored, strings.Join(failed, "; "))
	case c.Strict && len(failed) > 0:
		return fmt.Errorf("--strict: %d of %d inputs could not be scored: %s", len(failed), len(outs), strings.Join(failed, "; "))
	}
	return nil
}

// backtestFile reads one input twice in bounded memory: once for the kind
// (under --kind auto) and to find unreadable rows before any work, once
// streaming into the walk.
func backtestFile(ctx context.Context, path, flag string) (SeriesOutput, Result) {
	out := SeriesOutput{Input: path, Alerts: []AlertOutput{}}
	kind, auto, _ := kindFlag(flag)
	out.Kind, out.KindFrom = string(kind), "--kind"
	if auto {
		var ev baseline.KindEvidence
		var stats ReadStats
		err := eachRow(path, &stats, func(p baseline.Point) error { ev.Add(p.V); return nil })
		if err == nil && stats.Rows == 0 {
			err = fmt.Errorf("%s: no data rows after the header", path)
		}
		if err != nil {
			out.Error = err.Error()
			return out, Result{}
		}
		d := ev.Detect()
		kind, out.Kind, out.KindFrom = d.Kind, d.Name(), "values: "+d.Evidence
	}
	cfg := Config{Options: baseline.Options{Kind: kind}}
	res, stats, err := walkFile(ctx, path, cfg)
	if err != nil {
		out.Error = err.Error()
		return out, Result{}
	}
	out.Model, out.Points, out.Warnings = res.Model, res.Points, stats.Warnings()
	for _, a := range res.Alerts {
		out.Alerts = append(out.Alerts, AlertOutput{Start: a.Start.UTC().Format(time.RFC3339), End: a.End.UTC().Format(time.RFC3339)})
	}
	return out, res
}

// walkFile streams path through a Walker; a file whose rows go back
// further than the reorder horizon is read whole and sorted instead.
func walkFile(ctx context.Context, path string, cfg Config) (Result, ReadStats, error) {
	w := NewWalker(cfg)
	n := 0
	stats, err := StreamFile(path, func(p baseline.Point) error {
		n++
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return w.Push(p)
	})
	if errors.Is(err, errTooLate) {
		var pts []baseline.Point
		pts, stats, err = ReadFile(path)
		if err != nil {
			return Result{}, stats, err
		}
		stats.SortedInMemory = true
		res, err := Walk(ctx, pts, cfg)
		if err != nil {
			return Result{}, stats, fmt.Errorf("%s: %w", path, err)
		}
		return res, stats, nil
	}
	if err != nil {
		return Result{}, stats, err
	}
	res, err := w.Finish()
	if err != nil {
		return Result{}, stats, fmt.Errorf("%s: %w", path, err)
	}
	return res, stats, nil
}

// writeAtomic replaces path so a reader never sees half a file.
func writeAtomic(path, pattern string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(filepath.Dir(path), pattern)
	if err != nil {
		return fmt.Errorf("create %s: %w", path, err)
	}
	werr := write(f)
	if werr == nil {
		werr = f.Chmod(0o644)
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = os.Rename(f.Name(), path)
	}
	if werr != nil {
		_ = os.Remove(f.Name())
		return fmt.Errorf("write %s: %w", path, werr)
	}
	return nil
}
