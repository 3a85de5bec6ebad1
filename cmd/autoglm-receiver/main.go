// Command autoglm-receiver takes Alertmanager webhook notifications and
// delivers them to DingTalk, WeCom, email, SMS and webhooks, durably.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
	"github.com/open-autoglm/autoglm-monitor/receiver/config"
	"github.com/open-autoglm/autoglm-monitor/receiver/service"
)

const name = "autoglm-receiver"

func main() {
	app := cli.New(name, "Alertmanager webhook receiver for DingTalk, WeCom, email and SMS with a durable outbox.", ":9812")
	if _, err := app.Parse(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	logger := app.Logger()
	if err := serve(app); err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func serve(app *cli.App) error {
	logger := app.Logger()
	cfg, err := config.Load(*app.ConfigFile)
	if err != nil {
		return err
	}
	if err := cfg.CheckWebConfig(*app.Web.WebConfigFile); err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("autoglm_receiver"),
	)
	svc, err := service.New(cfg, service.Options{Logger: logger, Registerer: reg})
	if err != nil {
		return err
	}
	reload := func() error {
		next, err := config.Load(*app.ConfigFile)
		if err == nil {
			err = next.CheckWebConfig(*app.Web.WebConfigFile)
		}
		if err != nil {
			logger.Error("reload failed, keeping the running configuration", "err", err)
			return err
		}
		if err := svc.Reload(next); err != nil {
			logger.Error("reload failed, keeping the running configuration", "err", err)
			return err
		}
		logger.Info("configuration reloaded")
		return nil
	}
	mux, err := httpserver.NewMux(httpserver.Options{
		Name:        name,
		Description: "Alertmanager webhook receiver: routing, escalation, durable outbox and audit log.",
		Gatherer:    reg,
		Registerer:  reg,
		Ready:       svc.Ready,
		Reload:      reload,
		Links: []web.LandingLinks{
			{Address: "/api/v1/notifications", Text: "Audit log (notifications)"},
			{Address: "/api/v1/oncall", Text: "On call now and next"},
		},
	})
	if err != nil {
		return err
	}
	svc.Register(mux)
	srv := &http.Server{Handler: svc.Protect(mux)}

	ctx, cancel := cli.SignalContext()
	defer cancel()
	var g run.Group
	{
		sctx, stop := context.WithCancel(ctx)
		g.Add(func() error { return httpserver.Serve(sctx, srv, app.Web, *app.Timeouts, logger) }, func(error) { stop() })
	}
	{
		dctx, stop := context.WithCancel(context.Background())
		g.Add(func() error { return svc.Run(dctx) }, func(error) { stop() })
	}
	{
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		// Not tied to the signal context: the HTTP server must finish its
		// graceful shutdown before the store closes.
		hctx, stop := context.WithCancel(context.Background())
		g.Add(func() error {
			for {
				select {
				case <-hup:
					_ = reload()
				case <-hctx.Done():
					return nil
				}
			}
		}, func(error) { stop(); signal.Stop(hup) })
	}
	logger.Info("starting", "listen", *app.Web.WebListenAddresses, "storage", cfg.Storage.Path,
		"channels", len(cfg.Channels), "routes", len(cfg.Routes), "auth", cfg.AuthToken() != "")
	return g.Run()
}
