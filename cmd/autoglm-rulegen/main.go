// Command autoglm-rulegen fits dynamic baselines to SLI history and keeps
// Prometheus recording and alerting rules in step with them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/rulegen/backtest"
	"github.com/open-autoglm/autoglm-monitor/rulegen/forecast"
	"github.com/open-autoglm/autoglm-monitor/rulegen/rules"
	"github.com/open-autoglm/autoglm-monitor/rulegen/service"
	"github.com/open-autoglm/autoglm-monitor/rulegen/slo"
	"github.com/open-autoglm/autoglm-monitor/rulegen/target"
)

const name = "autoglm-rulegen"

func main() {
	app := cli.New(name, "Fits dynamic baselines to LLM-API SLIs and writes Prometheus rules.", ":9811")
	runCmd := app.Command("run", "Run the service: refit on a schedule, expose baselines on /metrics.").Default()
	genCmd := app.Command("generate", "Fit once and write the rule files into a directory.")
	genOut := genCmd.Flag("output", "Directory for the generated rule files.").Required().String()
	btCmd := app.Command("backtest", "Replay CSV series walk-forward and report the alerts the rules would have fired.")
	btInputs := btCmd.Flag("input", "CSV file with a timestamp,value header, plain or gzipped (repeatable).").Required().Strings()
	btKind := btCmd.Flag("kind", "Series kind: rate, latency, ratio, or auto to decide from each input's values (within [0,1]: ratio; else a level alerted both ways).").Default("auto").Enum("auto", "rate", "latency", "ratio")
	btOutput := btCmd.Flag("output", "Where to write alerts.json.").String()
	btForecast := btCmd.Flag("forecast", "Score request-rate forecasts 1h, 6h and 24h ahead against seasonal-naive instead (walk-forward, leave-one-series-out); prints a table.").Bool()
	btReport := btCmd.Flag("report", "Optional self-contained HTML report (.html) with bands and alerts.").String()
	btStrict := btCmd.Flag("strict", "Fail when any input cannot be scored (default: only when none can).").Bool()
	btWorkers := btCmd.Flag("workers", "Series backtested in parallel.").Default(fmt.Sprint(runtime.NumCPU())).Int()
	sloCmd := app.Command("slo", "Write the SLO rules of Sloth prometheus/v1 specs (and of the config file's slos:, if given) without reading any history.")
	sloInputs := sloCmd.Flag("input", "Sloth prometheus/v1 spec file (repeatable).").Strings()
	sloWindow := sloCmd.Flag("window", "SLO period of the Sloth specs (Sloth's --default-slo-period).").Default("30d").String()
	sloOutput := sloCmd.Flag("output", "Rule file to write (- for standard output).").Default("-").String()

	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := app.Logger()
	ctx, cancel := cli.SignalContext()
	defer cancel()

	if cmd == btCmd.FullCommand() && *btForecast {
		cmd += "/forecast"
	}
	switch cmd {
	case runCmd.FullCommand():
		err = serve(ctx, app, logger)
	case genCmd.FullCommand():
		err = generate(ctx, *app.ConfigFile, *genOut, logger)
	case sloCmd.FullCommand():
		err = writeSLORules(*app.ConfigFile, *sloInputs, *sloWindow, *sloOutput)
	case btCmd.FullCommand() + "/forecast":
		if *btOutput != "" || *btReport != "" || *btStrict {
			// Accepting them would leave the user waiting for files that never come.
			err = errors.New("--forecast prints a table of forecast errors; --output, --report and --strict belong to the alert backtest")
			break
		}
		err = forecastTable(ctx, *btInputs, *btKind, *btWorkers)
	case btCmd.FullCommand():
		err = backtest.Run(ctx, backtest.CLI{Inputs: *btInputs, Kind: *btKind, Output: *btOutput, Report: *btReport, Strict: *btStrict, Workers: *btWorkers}, logger)
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
	cfg, err := loadConfig(path)
	if err != nil {
		return err
	}
	svc, err := build(cfg, out, nil, logger)
	if err != nil {
		return err
	}
	return svc.Refit(ctx)
}

// forecastTable is backtest --forecast.
func forecastTable(ctx context.Context, inputs []string, kind string, workers int) error {
	series, rows, err := forecast.Backtest(ctx, inputs, sli.Kind(kind), kind == "auto", workers)
	if err != nil {
		return err
	}
	return forecast.WriteTable(os.Stdout, series, rows)
}

// loadConfig reads the configuration and the SLO specs it names, so a bad
// Sloth spec stops the start (or the reload) with its file and line.
func loadConfig(path string) (*config.File, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	specs, err := slo.Load(cfg)
	if err == nil {
		_, err = slo.Build(specs...)
	}
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// writeSLORules is the slo subcommand: Sloth's `generate`, in our generator.
func writeSLORules(configFile string, inputs []string, window, output string) error {
	d, err := model.ParseDuration(window)
	if err != nil {
		return fmt.Errorf("--window: %w", err)
	}
	var specs []slo.Spec
	if configFile != "" {
		cfg, err := loadConfig(configFile)
		if err != nil {
			return err
		}
		if specs, err = slo.Load(cfg); err != nil {
			return err
		}
	}
	for _, in := range inputs {
		s, err := slo.LoadSloth(in, time.Duration(d))
		if err != nil {
			return err
		}
		specs = append(specs, s)
	}
	if len(specs) == 0 {
		return errors.New("nothing to do: give --input Sloth specs or --config.file with slos:")
	}
	g, err := slo.Build(specs...)
	if err != nil {
		return err
	}
	b, err := rules.Render(g)
	if err != nil {
		return err
	}
	if output == "-" {
		_, err = os.Stdout.Write(b)
		return err
	}
	return target.WriteAtomic(output, b)
}

func serve(ctx context.Context, app *cli.App, logger *slog.Logger) error {
	cfg, err := loadConfig(*app.ConfigFile)
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
			next, err := loadConfig(*app.ConfigFile)
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
	g.Add(func() error { return httpserver.Serve(ctx, srv, app.Web, *app.Timeouts, logger) }, func(error) { cancel() })
	return g.Run()
}
