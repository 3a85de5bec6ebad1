// Command autoglm-rulegen fits dynamic baselines to SLI history and keeps
// Prometheus recording and alerting rules in step with them.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
	"github.com/open-autoglm/autoglm-monitor/rulegen/backtest"
	"github.com/open-autoglm/autoglm-monitor/rulegen/service"
)

const name = "autoglm-rulegen"

func main() {
	app := cli.New(name, "Fits dynamic baselines to LLM-API SLIs and writes Prometheus rules.", ":9811")
	runCmd := app.Command("run", "Run the service: refit on a schedule, expose baselines on /metrics.").Default()
	genCmd := app.Command("generate", "Fit once and write the rule files into a directory.")
	genOut := genCmd.Flag("output", "Directory for the generated rule files.").Required().String()
	btCmd := app.Command("backtest", "Replay CSV series walk-forward and report the alerts the rules would have fired.")
	btInputs := btCmd.Flag("input", "CSV file with a timestamp,value header (repeatable).").Required().Strings()
	btKind := btCmd.Flag("kind", "Series kind: auto, rate, latency or ratio.").Default("auto").Enum("auto", "rate", "latency", "ratio")
	btOutput := btCmd.Flag("output", "Where to write alerts.json.").Required().String()
	btReport := btCmd.Flag("report", "Optional HTML or PNG report with bands and alerts.").String()
	btWorkers := btCmd.Flag("workers", "Series backtested in parallel.").Default(fmt.Sprint(runtime.NumCPU())).Int()

	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := app.Logger()
	ctx, cancel := cli.SignalContext()
	defer cancel()

	switch cmd {
	case runCmd.FullCommand():
		err = serve(ctx, app, logger)
	case genCmd.FullCommand():
		err = generate(ctx, *app.ConfigFile, *genOut, logger)
	case btCmd.FullCommand():
		err = backtest.Run(ctx, backtest.CLI{Inputs: *btInputs, Kind: *btKind, Output: *btOutput, Report: *btReport, Workers: *btWorkers}, logger)
	}
	if err != nil {
		logger.Error("exiting", "command", cmd, "err", err)
		os.Exit(1)
	}
}

func build(cfg *config.File, outputDir string, reg prometheus.Registerer, logger *slog.Logger) (*service.Service, error) {
	reader, _, err := service.NewReader(cfg, reg, logger)
	if err != nil {
		return nil, err
	}
	targets, err := service.NewTargets(cfg, outputDir)
	if err != nil {
		return nil, err
	}
	return service.New(service.Options{Config: cfg, History: reader, Targets: targets, Registerer: reg, Logger: logger})
}

func generate(ctx context.Context, path, out string, logger *slog.Logger) error {
	cfg, err := config.Load(path)
	if err != nil {
		return err
	}
	svc, err := build(cfg, out, nil, logger)
	if err != nil {
		return err
	}
	return svc.Refit(ctx)
}

func serve(ctx context.Context, app *cli.App, logger *slog.Logger) error {
	cfg, err := config.Load(*app.ConfigFile)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	svc, err := build(cfg, "", reg, logger)
	if err != nil {
		return err
	}
	mux, err := httpserver.NewMux(httpserver.Options{
		Name:        name,
		Description: "Dynamic baselines and generated Prometheus rules for LLM-API SLIs.",
		Gatherer:    reg,
		Registerer:  reg,
		Ready:       svc.Ready,
		Reload: func() error {
			// Query and output settings are wired at start; a reload applies
			// thresholds, modes and SLI settings and refits now.
			next, err := config.Load(*app.ConfigFile)
			if err != nil {
				return err
			}
			svc.SetConfig(next)
			svc.Trigger()
			logger.Info("configuration reloaded")
			return nil
		},
	})
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: mux}
	logger.Info("starting", "mode", cfg.Rulegen.Mode, "prometheus", cfg.Rulegen.Prometheus.URL)
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	g.Add(func() error { return svc.Run(ctx) }, func(error) { cancel() })
	g.Add(func() error { return httpserver.Serve(ctx, srv, app.Web, logger) }, func(error) { cancel() })
	return g.Run()
}
