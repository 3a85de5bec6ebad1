package backtest

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/baseline"
)

// CLI is the backtest subcommand's input.
type CLI struct {
	Inputs  []string
	Kind    string // auto|rate|latency|ratio
	Output  string
	Report  string
	Workers int
}

// Output is the alerts.json document.
type Output struct {
	Series []SeriesOutput `json:"series"`
}

// SeriesOutput is one input's firing episodes.
type SeriesOutput struct {
	Input  string        `json:"input"`
	Model  string        `json:"model"`
	Alerts []AlertOutput `json:"alerts"`
}

// AlertOutput is one episode in RFC 3339.
type AlertOutput struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func kindOf(flag, input string) (sli.Kind, error) {
	switch flag {
	case "", "auto":
		return baseline.GuessKind(filepath.ToSlash(input)), nil
	case string(sli.KindRate), string(sli.KindLatency), string(sli.KindRatio):
		return sli.Kind(flag), nil
	}
	return "", fmt.Errorf("--kind %q: want auto, rate, latency or ratio", flag)
}

// Run reads every input, walks it forward and writes alerts.json (and the report).
func Run(ctx context.Context, c CLI, logger *slog.Logger) error {
	if len(c.Inputs) == 0 {
		return fmt.Errorf("no --input given")
	}
	if c.Output == "" {
		return fmt.Errorf("no --output given")
	}
	if _, err := kindOf(c.Kind, ""); err != nil {
		return err
	}
	workers := c.Workers
	if workers <= 0 {
		workers = 2
	}
	results := make([]Result, len(c.Inputs))
	errs := make([]error, len(c.Inputs))
	sem := make(chan struct{}, workers)
	var wg sync.WaitGroup
	for i, in := range c.Inputs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			start := time.Now()
			pts, err := ReadCSV(in)
			if err != nil {
				errs[i] = err
				return
			}
			kind, _ := kindOf(c.Kind, in)
			res, err := Walk(ctx, pts, Config{Options: baseline.Options{Kind: kind}})
			if err != nil {
				errs[i] = fmt.Errorf("%s: %w", in, err)
				return
			}
			results[i] = res
			logger.Info("series backtested", "input", in, "kind", string(kind), "model", res.Model,
				"points", len(pts), "alerts", len(res.Alerts), "duration", time.Since(start))
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	out := Output{Series: make([]SeriesOutput, len(results))}
	for i, r := range results {
		s := SeriesOutput{Input: c.Inputs[i], Model: r.Model, Alerts: make([]AlertOutput, len(r.Alerts))}
		for j, a := range r.Alerts {
			s.Alerts[j] = AlertOutput{Start: a.Start.UTC().Format(time.RFC3339), End: a.End.UTC().Format(time.RFC3339)}
		}
		out.Series[i] = s
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return fmt.Errorf("encode alerts: %w", err)
	}
	if err := writeFile(c.Output, append(b, '\n')); err != nil {
		return err
	}
	logger.Info("alerts written", "path", c.Output, "series", len(out.Series))
	if c.Report != "" {
		f, err := os.CreateTemp(filepath.Dir(c.Report), ".report-*")
		if err != nil {
			return fmt.Errorf("create report: %w", err)
		}
		werr := WriteReport(f, c.Inputs, results)
		if werr == nil {
			werr = f.Chmod(0o644)
		}
		if cerr := f.Close(); werr == nil {
			werr = cerr
		}
		if werr == nil {
			werr = os.Rename(f.Name(), c.Report)
		}
		if werr != nil {
			_ = os.Remove(f.Name())
			return fmt.Errorf("write report %s: %w", c.Report, werr)
		}
		logger.Info("report written", "path", c.Report)
	}
	return nil
}

// writeFile replaces path atomically so a reader never sees half a file.
func writeFile(path string, b []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".alerts-*")
	if err != nil {
		return fmt.Errorf("create output: %w", err)
	}
	_, werr := f.Write(b)
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
