// Command autoglm-llmsim is an OpenAI-compatible LLM API simulator (serve)
// and a load generator for it (load). See internal/llmsim/README.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/httpserver"
	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
)

const name = "autoglm-llmsim"

func main() {
	app := cli.New(name, "OpenAI-compatible LLM API simulator and load generator.", ":8000")

	serve := app.Command("serve", "Serve the simulated LLM API (and its own /metrics).").Default()
	defaults := llmsim.DefaultPacing()
	var (
		pacing     = defaults
		noPacing   = serve.Flag("pacing.disabled", "Answer immediately, without time to first token or token pacing (benchmarks).").Bool()
		alwaysUse  = serve.Flag("usage.always", "Send the usage chunk on every stream, even without stream_options.include_usage.").Bool()
		faultsFile = serve.Flag("faults.file", "YAML fault schedule (phases of errors and latency relative to start).").String()
		faultFlags = serve.Flag("fault", "A fault phase, repeatable: start=60s,duration=30s,errors=0.3,codes=500/503/429,latency=200ms,ttft=3,token=2,name=burst.").Strings()
		demo       = serve.Flag("faults.demo", "Use the demo incident: an error burst, then a latency regression.").Bool()
		demoWarmup = serve.Flag("faults.demo-warmup", "Quiet time before the demo incident starts.").Default("60s").Duration()
		repeat     = serve.Flag("faults.repeat", "Restart the fault schedule every this long (0: run it once).").Default("0s").Duration()
		models     = serve.Flag("models", "Comma-separated models listed by /v1/models.").Default(strings.Join(llmsim.DefaultModels, ",")).String()
		seed       = serve.Flag("seed", "Random seed (0: random).").Default("0").Uint64()
		metricsAt  = serve.Flag("metrics.listen-address", "Serve /metrics and the landing page here instead of on the API address, so scrapes are not API traffic.").String()
		accessLog  = serve.Flag("access-log", "Append one JSON line per finished API request to this file (read by the exporter's json access-log source); reopened on SIGHUP.").PlaceHolder("PATH").String()
	)
	serve.Flag("pacing.ttft-median", "Median time to first token (lognormal).").Default(defaults.TTFTMedian.String()).DurationVar(&pacing.TTFTMedian)
	serve.Flag("pacing.ttft-sigma", "Lognormal sigma of time to first token.").Default(fmt.Sprint(defaults.TTFTSigma)).Float64Var(&pacing.TTFTSigma)
	serve.Flag("pacing.token-min", "Shortest time between tokens.").Default(defaults.TokenMin.String()).DurationVar(&pacing.TokenMin)
	serve.Flag("pacing.token-max", "Longest time between tokens.").Default(defaults.TokenMax.String()).DurationVar(&pacing.TokenMax)
	serve.Flag("pacing.completion-median", "Median completion length when the request sets no max_tokens.").Default(fmt.Sprint(defaults.CompletionMedian)).IntVar(&pacing.CompletionMedian)
	serve.Flag("pacing.completion-sigma", "Lognormal sigma of the completion length.").Default(fmt.Sprint(defaults.CompletionSigma)).Float64Var(&pacing.CompletionSigma)
	serve.Flag("pacing.max-completion-tokens", "Upper bound of any completion.").Default(fmt.Sprint(defaults.MaxCompletionTokens)).IntVar(&pacing.MaxCompletionTokens)
	var eng llmsim.EngineOptions
	serve.Flag("engine.max-num-seqs", "Sequences the simulated engine runs at once (vLLM's --max-num-seqs); more requests queue.").Default("256").IntVar(&eng.MaxSeqs)
	serve.Flag("engine.kv-cache-tokens", "KV cache size of the simulated engine in tokens (0: 2,048 per sequence).").Default("0").IntVar(&eng.KVCacheTokens)

	load := app.Command("load", "Send load to an OpenAI-compatible API and print a JSON summary.")
	var (
		target      = load.Flag("target", "Base URL of the API.").Default("http://127.0.0.1:8000").String()
		mode        = load.Flag("mode", "trace (replay the Azure trace), open (constant rate) or closed (N workers).").Default(llmsim.ModeTrace).Enum(llmsim.ModeTrace, llmsim.ModeOpen, llmsim.ModeClosed)
		tracePath   = load.Flag("trace.path", "Azure LLM inference trace to replay: a directory of CSV (or .csv.gz) files or one file; empty replays the trace built into the binary.").Default("").String()
		speed       = load.Flag("trace.speed", "Replay this many times faster than recorded.").Default("1").Float64()
		rate        = load.Flag("rate", "Open loop arrival rate, requests per second.").Default("100").Float64()
		concurrency = load.Flag("concurrency", "Closed loop workers.").Default("16").Int()
		maxInFlight = load.Flag("max-in-flight", "Open modes: skip (and count) arrivals beyond this many outstanding requests.").Default("10000").Int()
		duration    = load.Flag("duration", "Stop sending after this long (0: no limit, trace mode only).").Default("1m").Duration()
		count       = load.Flag("count", "Stop after this many requests (0: no limit).").Default("0").Int()
		loadModels  = load.Flag("models", "Comma-separated models to spread requests over.").Default(strings.Join(llmsim.DefaultModels, ",")).String()
		routes      = load.Flag("routes", "Route mix as route=weight,... (default: mostly chat).").String()
		streamRatio = load.Flag("stream-ratio", "Share of chat and completion requests that stream.").Default("0.7").Float64()
		keepAlive   = load.Flag("keep-alive", "Reuse connections (--no-keep-alive opens one per request).").Default("true").Bool()
		timeout     = load.Flag("timeout", "Per-request timeout, including the whole body.").Default("2m").Duration()
		maxTokens   = load.Flag("max-tokens", "max_tokens outside trace mode (0: server decides).").Default("0").Int()
		promptTok   = load.Flag("prompt-tokens", "Prompt size in tokens outside trace mode.").Default("64").Int()
		maxPrompt   = load.Flag("max-prompt-tokens", "Cap trace prompt sizes (0: as recorded).").Default("0").Int()
		loadSeed    = load.Flag("seed", "Random seed for the route/model/stream mix (0: random).").Default("0").Uint64()
		output      = load.Flag("output", "Write the JSON summary here instead of stdout.").String()
	)

	cmd := kingpinMustParse(app)
	logger := app.Logger()
	ctx, stop := cli.SignalContext()
	defer stop()

	var err error
	switch cmd {
	case serve.FullCommand():
		err = runServe(ctx, app.Web, serveConfig{
			opts: llmsim.Options{Pacing: pacing, NoPacing: *noPacing, AlwaysUsage: *alwaysUse, Engine: eng,
				Models: splitList(*models), Seed: *seed, AccessLog: *accessLog, Logger: logger},
			faultsFile: *faultsFile, faults: *faultFlags, demo: *demo, demoWarmup: *demoWarmup, repeat: *repeat,
			metricsAddr: *metricsAt, timeouts: *app.Timeouts,
		}, logger)
	case load.FullCommand():
		o := llmsim.LoadOptions{
			Target: *target, Mode: *mode, Speed: *speed, Rate: *rate, Concurrency: *concurrency,
			MaxInFlight: *maxInFlight, Duration: *duration, Count: *count, Models: splitList(*loadModels),
			StreamRatio: *streamRatio, KeepAlive: *keepAlive, Timeout: *timeout, MaxTokens: *maxTokens,
			PromptTokens: *promptTok, MaxPromptTokens: *maxPrompt, Seed: *loadSeed,
		}
		err = runLoad(ctx, o, *tracePath, *routes, *output, logger)
	}
	if err != nil {
		logger.Error("exiting", "err", err)
		os.Exit(1)
	}
}

func kingpinMustParse(app *cli.App) string {
	cmd, err := app.Parse(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v (try --help)\n", name, err)
		os.Exit(2)
	}
	return cmd
}

type serveConfig struct {
	opts        llmsim.Options
	faultsFile  string
	faults      []string
	demo        bool
	demoWarmup  time.Duration
	repeat      time.Duration
	metricsAddr string
	timeouts    httpserver.Timeouts
}

func runServe(ctx context.Context, webFlags *web.FlagConfig, c serveConfig, logger *slog.Logger) (err error) {
	sched := &llmsim.Schedule{}
	switch {
	case c.faultsFile != "":
		s, err := llmsim.LoadSchedule(c.faultsFile)
		if err != nil {
			return err
		}
		sched = s
	case c.demo:
		sched = llmsim.DemoSchedule(c.demoWarmup)
	}
	for _, f := range c.faults {
		p, err := llmsim.ParsePhase(f)
		if err != nil {
			return err
		}
		sched.Phases = append(sched.Phases, p)
	}
	if c.repeat > 0 {
		sched.Repeat = c.repeat
	}
	c.opts.Schedule = sched
	sim, err := llmsim.NewServer(c.opts)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := sim.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if c.opts.AccessLog != "" {
		stopHUP := reopenOnHUP(sim, c.opts.AccessLog, logger)
		defer stopHUP()
		logger.Info("writing access log", "path", c.opts.AccessLog)
	}
	reg := sim.Registry()
	reg.MustRegister(versioncollector.NewCollector("autoglm_llmsim"))
	mux, err := httpserver.NewMux(httpserver.Options{
		Name: name, Description: "OpenAI-compatible LLM API simulator",
		Gatherer: reg, Registerer: reg,
		Links: []web.LandingLinks{{Address: llmsim.RouteModels, Text: "Models"}},
	})
	if err != nil {
		return err
	}
	api := mux
	if c.metricsAddr != "" {
		api = http.NewServeMux()
	}
	sim.Register(api)
	for _, p := range sched.Phases {
		logger.Info("fault phase scheduled", "name", p.Name, "start", p.Start, "duration", p.Duration,
			"error_ratio", p.ErrorRatio, "added_latency", p.AddedLatency, "ttft_multiplier", p.TTFTMultiplier)
	}
	logger.Info("simulator starting", "pacing", !c.opts.NoPacing, "listen", *webFlags.WebListenAddresses)
	// Streams can last minutes: no write timeout (the body and idle
	// timeouts of httpserver do not cut a stream short).
	srv := &http.Server{Handler: api}
	if c.metricsAddr == "" {
		return httpserver.Serve(ctx, srv, webFlags, c.timeouts, logger)
	}
	metricsSrv := &http.Server{Handler: mux}
	mctx, stopMetrics := context.WithCancel(ctx)
	defer stopMetrics()
	errc := make(chan error, 1)
	go func() {
		logger.Info("serving metrics", "address", c.metricsAddr)
		errc <- httpserver.ServeOn(mctx, metricsSrv, c.metricsAddr, c.timeouts)
	}()
	apiErr := httpserver.Serve(ctx, srv, webFlags, c.timeouts, logger)
	stopMetrics()
	if err := <-errc; err != nil && apiErr == nil {
		apiErr = fmt.Errorf("metrics server: %w", err)
	}
	return apiErr
}

// reopenOnHUP reopens the access log on SIGHUP, as logrotate's postrotate expects.
func reopenOnHUP(sim *llmsim.Server, path string, logger *slog.Logger) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-hup:
				if err := sim.ReopenAccessLog(); err != nil {
					logger.Error("reopen access log", "path", path, "err", err)
					continue
				}
				logger.Info("access log reopened", "path", path)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		close(done)
	}
}

func runLoad(ctx context.Context, o llmsim.LoadOptions, tracePath, routes, output string, logger *slog.Logger) error {
	if routes != "" {
		mix, err := llmsim.ParseRouteMix(routes)
		if err != nil {
			return err
		}
		o.Routes = mix
	}
	if o.Mode == llmsim.ModeTrace {
		recs, err := llmsim.LoadTrace(tracePath)
		if err != nil {
			return err
		}
		o.Trace = recs
		name := tracePath
		if name == "" {
			name = llmsim.EmbeddedTrace
		}
		logger.Info("trace loaded", "path", name, "requests", len(recs),
			"span", recs[len(recs)-1].Offset, "replay_span", time.Duration(float64(recs[len(recs)-1].Offset)/o.Speed))
	}
	sum, err := llmsim.Run(ctx, o)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	b = append(b, '\n')
	if output == "" {
		_, err = os.Stdout.Write(b)
		return err
	}
	if err := os.WriteFile(output, b, 0o644); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
