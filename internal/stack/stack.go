package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
)

// Ports are the loopback ports of every service.
type Ports struct {
	// LLMSim serves the simulated API; LLMSimMetrics its own /metrics, apart
	// so Prometheus' scrapes are not API traffic the exporter would count.
	LLMSim, LLMSimMetrics, Exporter, Rulegen, Receiver, Prometheus, Alertmanager, SMTP int
}

// DefaultPorts are the ports written in deploy/ (and docker-compose.yml).
func DefaultPorts() Ports {
	return Ports{LLMSim: 8000, LLMSimMetrics: 8001, Exporter: 9810, Rulegen: 9811, Receiver: 9812, Prometheus: 9090, Alertmanager: 9093, SMTP: 1025}
}

func (p Ports) named() map[string]int {
	return map[string]int{
		"autoglm-llmsim": p.LLMSim, "autoglm-llmsim metrics": p.LLMSimMetrics, "autoglm-exporter": p.Exporter, "autoglm-rulegen": p.Rulegen,
		"autoglm-receiver": p.Receiver, "prometheus": p.Prometheus, "alertmanager": p.Alertmanager, "mail catcher": p.SMTP,
	}
}

// Options configure a stack.
type Options struct {
	// Repo is the repository root (deploy/ and mixins/ are read from it).
	Repo string
	// Work is the working directory the stack creates and writes into.
	Work string
	// Bin holds our binaries (make build).
	Bin string
	// Trace is the Azure LLM trace directory replayed as traffic; empty
	// replays the trace built into autoglm-llmsim.
	Trace string
	// Ports; zero means DefaultPorts.
	Ports Ports
	// Source forces the exporter source ("ebpf" or "accesslog"); "" picks eBPF when root.
	Source string
	// FaultsFile is the simulator's fault schedule; "" means deploy/autoglm/llmsim-faults.yml.
	FaultsFile string
	// Speed replays the trace this many times faster than recorded.
	Speed float64
	// LoadDuration bounds the load generator (0: an hour).
	LoadDuration time.Duration
	// Calibration is how long live traffic runs before its levels seed the backfilled history.
	Calibration time.Duration
	// History is the span of backfilled history (0: a week).
	History time.Duration
	// Rewrite, when set, may change each configuration file after ports and
	// paths were set and before it is written; file is its path relative to
	// Work (autoglm.yml, prometheus/prometheus.yml, alertmanager.yml, ...).
	Rewrite func(file string, content []byte) []byte
	// BeforeTraffic, when set, runs once every service is up and before the
	// load generator starts (tests measure exact request counts there).
	BeforeTraffic func(ctx context.Context, s *Stack) error
	// Say prints a progress line for a person.
	Say    func(format string, args ...any)
	Logger *slog.Logger
}

// Stack is a running chain.
type Stack struct {
	opts    Options
	tools   tools
	procs   *group
	mail    *MailCatcher
	lock    string
	Source  string
	started time.Time
	// loadStarted is when traffic began, to judge how much of a rate window it fills.
	loadStarted time.Time
	// faults is the simulator's schedule; faultsStart when its clock began.
	faults      *llmsim.Schedule
	faultsStart time.Time

	cancel   context.CancelFunc
	prepared chan struct{}
	prepErr  error
}

// URL returns http://127.0.0.1:port.
func URL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// Start brings the whole chain up in dependency order and returns once
// every service is ready and traffic flows. Calibration, the history
// backfill and rulegen follow in the background (see Prepared), so the
// caller can narrate while they happen.
func Start(ctx context.Context, o Options) (_ *Stack, err error) {
	if o.Ports == (Ports{}) {
		o.Ports = DefaultPorts()
	}
	if o.Say == nil {
		o.Say = func(string, ...any) {}
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Speed <= 0 {
		o.Speed = 1
	}
	if o.Calibration <= 0 {
		o.Calibration = time.Minute
	}
	if o.LoadDuration <= 0 {
		o.LoadDuration = time.Hour
	}
	if o.History <= 0 {
		o.History = 7 * 24 * time.Hour
	}
	if o.FaultsFile == "" {
		o.FaultsFile = filepath.Join(o.Repo, "deploy", "autoglm", "llmsim-faults.yml")
	}
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, fmt.Errorf("create working directory: %w", err)
	}
	s := &Stack{opts: o, started: time.Now(), prepared: make(chan struct{}), procs: newGroup(o.Say)}
	if s.lock, err = acquireLock(o.Work); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			if serr := s.Stop(); serr != nil {
				o.Logger.Warn("stop after failed start", "err", serr)
			}
		}
	}()
	if err := portsFree(o.Ports.named()); err != nil {
		return nil, err
	}
	if s.faults, err = llmsim.LoadSchedule(o.FaultsFile); err != nil {
		return nil, err
	}
	if s.tools, err = findTools(ctx, o); err != nil {
		return nil, err
	}
	s.Source = o.Source
	if s.Source == "" {
		s.Source = "accesslog"
		if os.Geteuid() == 0 {
			s.Source = "ebpf"
		}
	}
	if s.Source == "accesslog" && o.Source == "" {
		o.Say("not running as root: the exporter falls back to the access-log source (run as root for eBPF)")
	}
	if err := s.writeConfigs(); err != nil {
		return nil, err
	}
	o.Say("configuration written to %s", o.Work)

	steps := []struct {
		name  string
		bin   string
		args  []string
		ready string
	}{
		{"prometheus", s.tools.prometheus, []string{
			"--config.file=" + s.path("prometheus", "prometheus.yml"),
			"--storage.tsdb.path=" + s.path("prometheus", "data"),
			"--web.listen-address=" + addr(o.Ports.Prometheus),
			// Alerts link back to this address (the generator URL in messages).
			"--web.external-url=" + URL(o.Ports.Prometheus),
			"--web.enable-lifecycle",
			"--storage.tsdb.retention.time=30d",
		}, URL(o.Ports.Prometheus) + "/-/ready"},
		{"alertmanager", s.tools.alertmanager, []string{
			"--config.file=" + s.path("alertmanager.yml"),
			"--storage.path=" + s.path("alertmanager-data"),
			"--web.listen-address=" + addr(o.Ports.Alertmanager),
			"--web.external-url=" + URL(o.Ports.Alertmanager),
			"--cluster.listen-address=",
		}, URL(o.Ports.Alertmanager) + "/-/ready"},
		{"autoglm-receiver", s.bin("autoglm-receiver"), []string{
			"--config.file=" + s.path("autoglm.yml"),
			"--web.listen-address=" + addr(o.Ports.Receiver),
		}, URL(o.Ports.Receiver) + "/-/ready"},
		{"autoglm-llmsim", s.bin("autoglm-llmsim"), append([]string{"serve",
			"--web.listen-address=" + addr(o.Ports.LLMSim),
			"--metrics.listen-address=" + addr(o.Ports.LLMSimMetrics),
			"--faults.file=" + s.path("llmsim-faults.yml"),
		}, s.llmsimLogArgs()...), URL(o.Ports.LLMSimMetrics) + "/-/ready"},
		{"autoglm-exporter", s.bin("autoglm-exporter"), []string{
			"--config.file=" + s.path("autoglm.yml"),
			"--web.listen-address=" + addr(o.Ports.Exporter),
		}, URL(o.Ports.Exporter) + "/-/ready"},
	}
	s.mail, err = StartMailCatcher(addr(o.Ports.SMTP), s.path("mail"), o.Logger)
	if err != nil {
		return nil, err
	}
	for _, st := range steps {
		p, err := start(o.Work, st.name, st.bin, st.args, nil)
		if err != nil {
			return nil, err
		}
		s.procs.add(p)
		if st.name == "autoglm-llmsim" {
			// The fault schedule is relative to the simulator's start.
			s.faultsStart = p.started
		}
		if err := waitHTTP(ctx, p, st.ready, 90*time.Second); err != nil {
			return nil, err
		}
		if err := s.procs.err(); err != nil {
			return nil, err
		}
		o.Say("%-17s up  %s  (log: %s)", st.name, URL(portOf(st.ready)), p.LogPath())
	}
	// Traffic starts now: rate windows are judged from here.
	s.loadStarted = time.Now()
	if o.BeforeTraffic != nil {
		if err := o.BeforeTraffic(ctx, s); err != nil {
			return nil, err
		}
	}
	if err := s.startLoad(); err != nil {
		return nil, err
	}
	o.Say("traffic flowing: replaying the Azure LLM trace at %gx into %s; measuring live levels for %s", o.Speed, URL(o.Ports.LLMSim), o.Calibration)
	bg, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.cancel = cancel
	go func() {
		defer close(s.prepared)
		s.prepErr = s.prepare(bg)
		if s.prepErr != nil && bg.Err() == nil && s.procs.err() == nil {
			o.Say("baselines unavailable: %v", s.prepErr)
		}
	}()
	return s, nil
}

// prepare calibrates, backfills history and starts rulegen.
func (s *Stack) prepare(ctx context.Context) error {
	o := s.opts
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.procs.failed:
		return s.procs.err()
	case <-time.After(o.Calibration):
	}
	if err := s.backfill(ctx); err != nil {
		return err
	}
	rg, err := start(o.Work, "autoglm-rulegen", s.bin("autoglm-rulegen"), []string{"run",
		"--config.file=" + s.path("autoglm.yml"),
		"--web.listen-address=" + addr(o.Ports.Rulegen),
	}, nil)
	if err != nil {
		return err
	}
	if !s.procs.add(rg) {
		rg.Kill()
		return errors.New("stack stopped")
	}
	if err := waitHTTP(ctx, rg, URL(o.Ports.Rulegen)+"/-/healthy", 90*time.Second); err != nil {
		return err
	}
	o.Say("%-17s up  %s  (log: %s)", "autoglm-rulegen", URL(o.Ports.Rulegen), rg.LogPath())
	return nil
}

// Prepared waits until calibration, backfill and rulegen's start are done,
// and returns their error.
func (s *Stack) Prepared(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.prepared:
		return s.prepErr
	}
}

// Faults returns the simulator's fault schedule.
func (s *Stack) Faults() *llmsim.Schedule { return s.faults }

// Err returns the first supervised process that ended while the stack
// needed it (an *ExitError naming it, with the last lines of its log), or nil.
func (s *Stack) Err() error { return s.procs.err() }

// Process returns the supervised process named name, or nil.
func (s *Stack) Process(name string) *Process { return s.procs.get(name) }

// Tails returns the last lines of every process log, for failure messages.
func (s *Stack) Tails(n int64) string {
	var b strings.Builder
	for _, p := range s.procs.list() {
		fmt.Fprintf(&b, "\n===== %s (%s) =====\n%s", p.Name, p.LogPath(), p.tail(n))
	}
	return b.String()
}

func (s *Stack) startLoad() error {
	o := s.opts
	args := []string{"load",
		"--target=" + URL(o.Ports.LLMSim),
		"--mode=trace",
		"--trace.speed=" + strconv.FormatFloat(o.Speed, 'f', -1, 64),
		"--duration=" + o.LoadDuration.String(),
		"--max-prompt-tokens=2048",
		"--output=" + s.path("loadgen-summary.json"),
	}
	if o.Trace != "" {
		args = append(args, "--trace.path="+o.Trace)
	}
	// The generator ends by itself once it has replayed the trace (or run
	// for LoadDuration): that is the end of its work and it replays again,
	// as docker-compose.yml's restart policy does. Ending sooner is a failure.
	planned := o.LoadDuration
	if recs, err := llmsim.LoadTrace(o.Trace); err != nil {
		return fmt.Errorf("load generator: %w", err)
	} else if len(recs) == 0 {
		return fmt.Errorf("load generator: the trace %q has no requests", o.Trace)
	} else if span := time.Duration(float64(recs[len(recs)-1].Offset) / o.Speed); span < planned {
		planned = span
	}
	load, err := start(o.Work, "loadgen", s.bin("autoglm-llmsim"), args, nil)
	if err != nil {
		return err
	}
	load.finished = func(p *Process) bool { return time.Since(p.started) >= planned-planned/20 }
	s.procs.add(load)
	return nil
}

// Mail is the local mail catcher.
func (s *Stack) Mail() *MailCatcher { return s.mail }

// Ports returns the ports in use.
func (s *Stack) Ports() Ports { return s.opts.Ports }

// Path returns a path inside the working directory.
func (s *Stack) Path(parts ...string) string { return s.path(parts...) }

func (s *Stack) path(parts ...string) string {
	return filepath.Join(append([]string{s.opts.Work}, parts...)...)
}

func (s *Stack) bin(name string) string { return filepath.Join(s.opts.Bin, name) }

// Stop ends every process (newest first), the mail catcher and the lock.
func (s *Stack) Stop() error {
	var errs []error
	if s.cancel != nil {
		s.cancel()
		<-s.prepared
	}
	if err := s.procs.stopAll(10 * time.Second); err != nil {
		errs = append(errs, err)
	}
	if s.mail != nil {
		if err := s.mail.Close(); err != nil {
			errs = append(errs, fmt.Errorf("stop mail catcher: %w", err))
		}
	}
	if s.lock != "" {
		if err := os.Remove(s.lock); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove lock: %w", err))
		}
	}
	return errors.Join(errs...)
}

func addr(port int) string { return "127.0.0.1:" + strconv.Itoa(port) }

func portOf(url string) int {
	rest := strings.TrimPrefix(url, "http://127.0.0.1:")
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		rest = rest[:i]
	}
	p, _ := strconv.Atoi(rest)
	return p
}

// acquireLock makes a second stack in the same directory fail with a clear message.
func acquireLock(dir string) (string, error) {
	path := filepath.Join(dir, "stack.pid")
	for range 2 {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			_, werr := fmt.Fprintf(f, "%d\n", os.Getpid())
			if cerr := f.Close(); werr == nil {
				werr = cerr
			}
			return path, werr
		}
		if !errors.Is(err, os.ErrExist) {
			return "", fmt.Errorf("create lock %s: %w", path, err)
		}
		b, _ := os.ReadFile(path)
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if pid > 0 && syscall.Kill(pid, 0) == nil {
			return "", fmt.Errorf("the quickstart is already running (pid %d, working directory %s); stop it with Ctrl-C in its terminal or `kill %d`", pid, dir, pid)
		}
		// The previous run died without cleaning up.
		if err := os.Remove(path); err != nil {
			return "", fmt.Errorf("remove stale lock %s: %w", path, err)
		}
	}
	return "", fmt.Errorf("cannot take the lock %s", path)
}

type tools struct{ prometheus, alertmanager, promtool string }

// sourceBuild is a tool built from the Go module proxy when it is not installed.
type sourceBuild struct {
	// names are the commands looked up in PATH, the first also the binary built.
	names []string
	// pkgs are go install arguments; tools of one module build together.
	pkgs    []string
	minutes int
	dst     *string
}

// findTools uses installed Prometheus and Alertmanager (Debian packages or
// PATH) and otherwise builds pinned versions from the Go module proxy into a
// cache, saying first what it builds and how long that takes.
func findTools(ctx context.Context, o Options) (tools, error) {
	var t tools
	const prom = "github.com/prometheus/prometheus/cmd/%s@v0.316.0"
	builds := []sourceBuild{
		// Measured cold: 923 CPU-seconds and 2.5 GB of modules for both.
		{names: []string{"prometheus"}, pkgs: []string{fmt.Sprintf(prom, "prometheus"), fmt.Sprintf(prom, "promtool")}, minutes: 8, dst: &t.prometheus},
		{names: []string{"promtool"}, pkgs: []string{fmt.Sprintf(prom, "promtool")}, minutes: 1, dst: &t.promtool},
		// Measured cold: 177 CPU-seconds.
		{names: []string{"alertmanager", "prometheus-alertmanager"}, pkgs: []string{"github.com/prometheus/alertmanager/cmd/alertmanager@v0.28.1"}, minutes: 2, dst: &t.alertmanager},
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(o.Work, ".cache")
	}
	var todo []sourceBuild
	for _, b := range builds {
		if p := installed(b.names, cache, b.pkgs[0]); p != "" {
			*b.dst = p
			continue
		}
		todo = append(todo, b)
	}
	if len(todo) == 0 {
		return t, nil
	}
	minutes := 0
	var what []string
	for _, b := range todo {
		// promtool comes with the Prometheus build when both are missing.
		if b.names[0] == "promtool" && t.prometheus == "" {
			continue
		}
		minutes += b.minutes
		what = append(what, strings.SplitN(path.Base(b.pkgs[0]), "@", 2)[0])
	}
	o.Say("%s not installed (as root: apt-get install prometheus prometheus-alertmanager, or make demo, avoids this): building %s from source with the Go module proxy into %s — about %d minutes on two idle cores and 2.5 GB of modules, first time only",
		strings.Join(what, " and "), strings.Join(what, ", "), filepath.Join(cache, "autoglm-monitor"), minutes)
	for _, b := range todo {
		if p := installed(b.names, cache, b.pkgs[0]); p != "" {
			*b.dst = p // built along with another tool
			continue
		}
		begin := time.Now()
		dir := cacheDir(cache, b.pkgs[0])
		cmd := exec.CommandContext(ctx, "go", append([]string{"install"}, b.pkgs...)...)
		cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			return t, fmt.Errorf("build %s: %w\n%s\ninstall it instead: apt-get install prometheus prometheus-alertmanager", strings.Join(b.pkgs, " "), err, out)
		}
		*b.dst = filepath.Join(dir, b.names[0])
		o.Say("built %s in %s", b.names[0], time.Since(begin).Round(time.Second))
	}
	return t, nil
}

// installed finds a tool in PATH or in the cache of earlier source builds.
func installed(names []string, cache, pkg string) string {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
	}
	bin := filepath.Join(cacheDir(cache, pkg), names[0])
	if _, err := os.Stat(bin); err == nil {
		return bin
	}
	return ""
}

// cacheDir is where the source build of pkg (module@version) goes: one
// directory per version, shared by the tools of one module.
func cacheDir(cache, pkg string) string {
	version := strings.SplitN(pkg, "@", 2)[1]
	return filepath.Join(cache, "autoglm-monitor", "bin", strings.ReplaceAll(version, "/", "_"))
}
