// Command autoglm-exporter observes LLM API traffic on this node (eBPF, or
// access logs) and exposes RED and GenAI metrics for Prometheus.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/open-autoglm/autoglm-monitor/exporter"
	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
)

const name = "autoglm-exporter"

func main() {
	app := cli.New(name, "Exports LLM API traffic metrics (HTTP/1.x and SSE) captured with eBPF or read from access logs.", ":9810")
	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := app.Logger()
	if err := serve(app, logger); err != nil {
		// One line, so a host that cannot run eBPF says exactly what is missing.
		fmt.Fprintln(os.Stderr, name+":", err)
		os.Exit(1)
	}
}

func serve(app *cli.App, logger *slog.Logger) error {
	cfg, err := config.Load(*app.ConfigFile)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	exp, err := exporter.New(exporter.Options{Config: cfg, Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	defer func() {
		if err := exp.Close(); err != nil {
			logger.Error("closing source", "err", err)
		}
	}()
	mux, err := httpserver.NewMux(httpserver.Options{
		Name:        name,
		Description: "LLM API traffic metrics",
		Gatherer:    reg,
		Registerer:  reg,
		Ready:       exp.Ready,
	})
	if err != nil {
		return err
	}
	logger.Info("starting", "capture", cfg.Exporter.Source, "ports", cfg.Exporter.Ports, "config", *app.ConfigFile)

	ctx, cancel := cli.SignalContext()
	defer cancel()
	var g run.Group
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return exp.Run(ctx) }, func(error) { cancel() })
	}
	{
		ctx, cancel := context.WithCancel(ctx)
		srv := &http.Server{Handler: mux}
		g.Add(func() error { return httpserver.Serve(ctx, srv, app.Web, *app.Timeouts, logger) }, func(error) { cancel() })
	}
	{
		g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	}
	return g.Run()
}
