package stack

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ports are the loopback ports of every service.
type Ports struct {
	LLMSim, Exporter, Rulegen, Receiver, Prometheus, Alertmanager, SMTP int
}

// DefaultPorts are the ports written in deploy/ (and docker-compose.yml).
func DefaultPorts() Ports {
	return Ports{LLMSim: 8000, Exporter: 9810, Rulegen: 9811, Receiver: 9812, Prometheus: 9090, Alertmanager: 9093, SMTP: 1025}
}

func (p Ports) named() map[string]int {
	return map[string]int{
		"autoglm-llmsim": p.LLMSim, "autoglm-exporter": p.Exporter, "autoglm-rulegen": p.Rulegen,
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
	// Trace is the Azure LLM trace directory replayed as traffic.
	Trace string
	// Ports; zero means DefaultPorts.
	Ports Ports
	// Source forces the exporter source ("ebpf" or "accesslog"); "" picks eBPF when root.
	Source string
	// Warmup is the quiet time before the scheduled incident starts.
	Warmup time.Duration
	// Speed replays the trace this many times faster than recorded.
	Speed float64
	// LoadDuration bounds the load generator (0: an hour).
	LoadDuration time.Duration
	// Calibration is how long live traffic runs before its levels seed the backfilled history.
	Calibration time.Duration
	// Say prints a progress line for a person.
	Say    func(format string, args ...any)
	Logger *slog.Logger
}

// Stack is a running chain.
type Stack struct {
	opts    Options
	procs   group
	mail    *MailCatcher
	lock    string
	Source  string
	started time.Time
	Load    *Process
}

// URL returns http://127.0.0.1:port.
func URL(port int) string { return "http://127.0.0.1:" + strconv.Itoa(port) }

// Start brings the whole chain up, in dependency order, and returns once every service is ready.
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
	if err := os.MkdirAll(o.Work, 0o755); err != nil {
		return nil, fmt.Errorf("create working directory: %w", err)
	}
	s := &Stack{opts: o, started: time.Now()}
	if s.lock, err = acquireLock(o.Work); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			_ = s.Stop()
		}
	}()
	if err := portsFree(o.Ports.named()); err != nil {
		return nil, err
	}
	tools, err := findTools(ctx, o)
	if err != nil {
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
		{"prometheus", tools.prometheus, []string{
			"--config.file=" + s.path("prometheus", "prometheus.yml"),
			"--storage.tsdb.path=" + s.path("prometheus", "data"),
			"--web.listen-address=" + addr(o.Ports.Prometheus),
			"--web.enable-lifecycle",
			"--storage.tsdb.retention.time=30d",
		}, URL(o.Ports.Prometheus) + "/-/ready"},
		{"alertmanager", tools.alertmanager, []string{
			"--config.file=" + s.path("alertmanager.yml"),
			"--storage.path=" + s.path("alertmanager-data"),
			"--web.listen-address=" + addr(o.Ports.Alertmanager),
			"--cluster.listen-address=",
		}, URL(o.Ports.Alertmanager) + "/-/ready"},
		{"autoglm-receiver", s.bin("autoglm-receiver"), []string{
			"--config.file=" + s.path("autoglm.yml"),
			"--web.listen-address=" + addr(o.Ports.Receiver),
		}, URL(o.Ports.Receiver) + "/-/ready"},
		{"autoglm-llmsim", s.bin("autoglm-llmsim"), append([]string{"serve",
			"--web.listen-address=" + addr(o.Ports.LLMSim),
			"--faults.file=" + s.path("llmsim-faults.yml"),
		}, s.llmsimLogArgs()...), URL(o.Ports.LLMSim) + "/v1/models"},
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
		if err := waitHTTP(ctx, p, st.ready, 90*time.Second); err != nil {
			return nil, err
		}
		o.Say("%-17s up  %s  (log: %s)", st.name, URL(portOf(st.ready)), p.LogPath())
	}
	if err := s.startLoad(); err != nil {
		return nil, err
	}
	o.Say("traffic flowing: replaying the Azure LLM trace at %gx into %s; measuring live levels for a minute", o.Speed, URL(o.Ports.LLMSim))
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(o.Calibration):
	}
	if err := s.backfill(ctx, tools.promtool); err != nil {
		return nil, err
	}
	rg, err := start(o.Work, "autoglm-rulegen", s.bin("autoglm-rulegen"), []string{"run",
		"--config.file=" + s.path("autoglm.yml"),
		"--web.listen-address=" + addr(o.Ports.Rulegen),
	}, nil)
	if err != nil {
		return nil, err
	}
	s.procs.add(rg)
	if err := waitHTTP(ctx, rg, URL(o.Ports.Rulegen)+"/-/healthy", 90*time.Second); err != nil {
		return nil, err
	}
	o.Say("%-17s up  %s  (log: %s)", "autoglm-rulegen", URL(o.Ports.Rulegen), rg.LogPath())
	return s, nil
}

func (s *Stack) startLoad() error {
	o := s.opts
	load, err := start(o.Work, "loadgen", s.bin("autoglm-llmsim"), []string{"load",
		"--target=" + URL(o.Ports.LLMSim),
		"--mode=trace",
		"--trace.path=" + o.Trace,
		"--trace.speed=" + strconv.FormatFloat(o.Speed, 'f', -1, 64),
		"--duration=" + o.LoadDuration.String(),
		"--max-prompt-tokens=2048",
		"--output=" + s.path("loadgen-summary.json"),
	}, nil)
	if err != nil {
		return err
	}
	s.procs.add(load)
	s.Load = load
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

// findTools uses installed Prometheus and Alertmanager (Debian packages or
// PATH) and otherwise builds pinned versions from the Go module proxy into a cache.
func findTools(ctx context.Context, o Options) (tools, error) {
	var t tools
	var err error
	if t.prometheus, err = findOrBuild(ctx, o, []string{"prometheus"}, "github.com/prometheus/prometheus/cmd/prometheus@v0.316.0"); err != nil {
		return t, err
	}
	if t.promtool, err = findOrBuild(ctx, o, []string{"promtool"}, "github.com/prometheus/prometheus/cmd/promtool@v0.316.0"); err != nil {
		return t, err
	}
	if t.alertmanager, err = findOrBuild(ctx, o, []string{"alertmanager", "prometheus-alertmanager"}, "github.com/prometheus/alertmanager/cmd/alertmanager@v0.28.1"); err != nil {
		return t, err
	}
	return t, nil
}

func findOrBuild(ctx context.Context, o Options, names []string, module string) (string, error) {
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = filepath.Join(o.Work, ".cache")
	}
	dir := filepath.Join(cache, "autoglm-monitor", "bin", strings.ReplaceAll(strings.SplitN(module, "@", 2)[1], "/", "_"))
	bin := filepath.Join(dir, names[0])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	o.Say("building %s from the Go module proxy (first time only; Prometheus takes about 5 minutes)", module)
	cmd := exec.CommandContext(ctx, "go", "install", module)
	cmd.Env = append(os.Environ(), "GOBIN="+dir, "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w\n%s\ninstall it instead: apt-get install prometheus prometheus-alertmanager", module, err, out)
	}
	return bin, nil
}
