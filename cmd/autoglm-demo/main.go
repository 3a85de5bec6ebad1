// Command autoglm-demo is the native quickstart: it starts the whole chain on
// loopback and narrates an incident travelling from traffic to a person.
package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/prometheus/common/promslog"
	"github.com/prometheus/common/version"

	"github.com/open-autoglm/autoglm-monitor/internal/cli"
	"github.com/open-autoglm/autoglm-monitor/internal/stack"
)

func main() {
	app := kingpin.New("autoglm-demo", "Run the Open-AutoGLM quickstart on loopback: LLM API simulator, exporter, Prometheus, rulegen, Alertmanager, receiver.")
	app.Version(version.Print("autoglm-demo"))
	var (
		repo   = app.Flag("repo", "Repository root (deploy/ and mixins/ are read from it).").Default(".").String()
		work   = app.Flag("work-dir", "Working directory to create for configs, data and logs.").Default(".demo").String()
		bin    = app.Flag("bin-dir", "Directory of the built binaries (make build).").Default("bin").String()
		trace  = app.Flag("trace", "Azure LLM inference trace directory to replay (default: the trace built into autoglm-llmsim).").Default("").String()
		source = app.Flag("exporter.source", "Force the exporter source: ebpf or accesslog (default: ebpf when root).").Default("").Enum("", "ebpf", "accesslog")
		speed  = app.Flag("speed", "Replay the trace this many times faster than recorded.").Default("1").Float64()
		dur    = app.Flag("duration", "Stop by itself after this long (0: run until Ctrl-C).").Default("0s").Duration()
		calib  = app.Flag("calibration", "How long live traffic runs before its levels seed the backfilled week of history.").Default("45s").Duration()
	)
	kingpin.MustParse(app.Parse(os.Args[1:]))

	start := time.Now()
	say := func(format string, args ...any) {
		fmt.Printf("[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
	abs := func(p string) string {
		a, err := filepath.Abs(p)
		if err != nil {
			return p
		}
		return a
	}
	ctx, cancel := cli.SignalContext()
	defer cancel()
	if *dur > 0 {
		var stop context.CancelFunc
		ctx, stop = context.WithTimeout(ctx, *dur)
		defer stop()
	}
	say("starting the Open-AutoGLM quickstart in %s (Ctrl-C stops everything)", abs(*work))
	st, err := stack.Start(ctx, stack.Options{
		Repo: abs(*repo), Work: abs(*work), Bin: abs(*bin), Trace: *trace,
		Source: *source, Speed: *speed, Calibration: *calib, Say: say,
		Logger: promslog.New(&promslog.Config{}),
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "autoglm-demo:", err)
		os.Exit(1)
	}
	p := st.Ports()
	say("stack up. Where to look:")
	say("  Prometheus     %s/alerts", stack.URL(p.Prometheus))
	say("  Alertmanager   %s", stack.URL(p.Alertmanager))
	say("  receiver audit %s/api/v1/notifications", stack.URL(p.Receiver))
	say("  exporter       %s/metrics", stack.URL(p.Exporter))
	say("  rulegen        %s/metrics (baselines), rules in %s", stack.URL(p.Rulegen), st.Path("prometheus", "rulegen"))
	say("  mail           %s", st.Path("mail"))
	say("  llmsim         %s (API), %s/metrics", stack.URL(p.LLMSim), stack.URL(p.LLMSimMetrics))
	if sched := st.Faults(); sched != nil {
		for _, ph := range sched.Phases {
			say("fault scheduled: %s", stack.DescribeFault(ph))
		}
		if sched.Repeat > 0 {
			say("the schedule repeats every %s; each fault must reach a person within %s of its start", sched.Repeat, stack.FaultDeadline)
		}
	}
	say("waiting for alerts")
	werr := st.Watch(ctx, 15*time.Second, func(d stack.Delivery) {
		say("first notification reached a person %.0fs after start (channel %s, alert %s)", time.Since(start).Seconds(), d.Channel, d.Alertname)
	})
	if werr != nil {
		say("stopping: a process of the quickstart failed")
		if err := st.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "autoglm-demo:", err)
		}
		fmt.Fprintln(os.Stderr, "autoglm-demo:", werr)
		os.Exit(1)
	}
	say("stopping")
	if err := st.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "autoglm-demo:", err)
		os.Exit(1)
	}
	say("stopped cleanly")
}
