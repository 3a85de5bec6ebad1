// Package stack starts and supervises the whole Open-AutoGLM chain on
// loopback — simulator, exporter, Prometheus, rulegen, Alertmanager,
// receiver and a mail catcher — for the native quickstart and the
// end-to-end test, which therefore exercise the very same wiring.
package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Process is one supervised child process.
type Process struct {
	Name    string
	dir     string
	bin     string
	args    []string
	env     []string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{}
	err     error
	started time.Time
	// stopping is set before the stack ends the process itself, so its exit
	// is not taken for a failure.
	stopping atomic.Bool
	// finished, when set, tells whether a clean exit (status 0) is the end of
	// the process's work (a load generator that replayed its whole trace),
	// which the group answers by starting it again; any other exit is a failure.
	finished func(p *Process) bool
}

// ExitError is a supervised process that ended while the stack still needed it.
type ExitError struct {
	Name    string
	LogPath string
	// Err is the wait status (nil for a clean exit that came too early).
	Err error
	// Why says what was expected instead, when the exit status alone does not.
	Why  string
	Tail string
}

func (e *ExitError) Error() string {
	status := "exit status 0"
	if e.Err != nil {
		status = e.Err.Error()
	}
	why := ""
	if e.Why != "" {
		why = ": " + e.Why
	}
	return fmt.Sprintf("%s exited unexpectedly (%s)%s; last lines of %s:\n%s", e.Name, status, why, e.LogPath, e.Tail)
}

// LogPath is where the process's stdout and stderr go.
func (p *Process) LogPath() string { return p.logPath }

// Exited reports whether the process has ended, and with which error.
func (p *Process) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// start launches name with args, logging to dir/<name>.log.
func start(dir, name, bin string, args []string, env []string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	// Appending keeps the log of a restarted process in one file.
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log of %s: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// Own process group, so Ctrl-C in the terminal reaches us first and we stop children in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, bin, err)
	}
	p := &Process{Name: name, dir: dir, bin: bin, args: args, env: env, cmd: cmd, logPath: logPath, done: make(chan struct{}), started: time.Now()}
	go func() {
		p.err = cmd.Wait()
		_ = logf.Close()
		close(p.done)
	}()
	return p, nil
}

// Stop sends SIGTERM and waits up to grace before killing.
func (p *Process) Stop(grace time.Duration) error {
	p.stopping.Store(true)
	if exited, _ := p.Exited(); exited {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	return fmt.Errorf("%s did not stop within %s and was killed", p.Name, grace)
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill() {
	p.stopping.Store(true)
	_ = p.cmd.Process.Kill()
	<-p.done
}

// tail returns the last n bytes of the process log, for error messages.
func (p *Process) tail(n int64) string {
	f, err := os.Open(p.logPath)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := st.Size() - n
	if off < 0 {
		off = 0
	}
	b := make([]byte, st.Size()-off)
	_, _ = f.ReadAt(b, off)
	return string(b)
}

// tailLines returns at most the last n lines of the process log.
func (p *Process) tailLines(n int) string {
	text := strings.TrimRight(p.tail(64<<10), "\n")
	lines := strings.Split(text, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitHTTP polls url until it answers 200, the process dies, or timeout passes.
func waitHTTP(ctx context.Context, p *Process, url string, timeout time.Duration) error {
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if exited, err := p.Exited(); exited {
			return fmt.Errorf("%s exited (%v) before it was ready; last lines of %s:\n%s", p.Name, err, p.logPath, p.tailLines(tailLines))
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s not ready at %s after %s; last lines of %s:\n%s", p.Name, url, timeout, p.logPath, p.tailLines(tailLines))
}

// portsFree checks that every named port on 127.0.0.1 can be bound.
func portsFree(ports map[string]int) error {
	names := make([]string, 0, len(ports))
	for name := range ports {
		names = append(names, name)
	}
	sort.Slice(names, func(i, j int) bool { return ports[names[i]] < ports[names[j]] })
	var busy []string
	for _, name := range names {
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", ports[name]))
		if err != nil {
			busy = append(busy, fmt.Sprintf("%d (%s)", ports[name], name))
			continue
		}
		_ = l.Close()
	}
	if len(busy) == 0 {
		return nil
	}
	return fmt.Errorf("port %s already in use on 127.0.0.1: is another quickstart or a local Prometheus/Alertmanager running? Stop it (`ss -ltnp` shows who listens) and start again",
		strings.Join(busy, ", "))
}

// tailLines is how many log lines a failure message quotes.
const tailLines = 20

// restart stops p and starts it again with the same arguments, in place in the group.
func (g *group) restart(p *Process, grace time.Duration) (*Process, error) {
	if err := p.Stop(grace); err != nil {
		return nil, err
	}
	return g.replace(p)
}

// replace starts p again with the same arguments and supervises the new
// process in p's place.
func (g *group) replace(p *Process) (*Process, error) {
	np, err := start(p.dir, p.Name, p.bin, p.args, p.env)
	if err != nil {
		return nil, err
	}
	np.finished = p.finished
	g.mu.Lock()
	g.all = append(g.all, np)
	if g.stopped {
		g.mu.Unlock()
		np.Kill()
		return nil, errors.New("stack stopped")
	}
	for i, q := range g.procs {
		if q == p {
			g.procs[i] = np
		}
	}
	g.mu.Unlock()
	go g.supervise(np)
	return np, nil
}

// group stops processes in reverse start order, and reports the first one
// that ends by itself while the stack still runs.
type group struct {
	mu      sync.Mutex
	procs   []*Process
	stopped bool
	// all keeps every process ever supervised, to prove none outlives Stop.
	all []*Process
	// failed is closed at the first unexpected exit; failure says which.
	failed  chan struct{}
	failure error
	// say narrates restarts of processes that finished their work.
	say func(format string, args ...any)
}

func newGroup(say func(format string, args ...any)) *group {
	return &group{failed: make(chan struct{}), say: say}
}

// add supervises p; it reports false once the group was stopped, when the
// caller must end p itself.
func (g *group) add(p *Process) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.procs = append(g.procs, p)
	g.all = append(g.all, p)
	go g.supervise(p)
	return true
}

// supervise waits for p to end. An exit the stack did not ask for fails the
// group, unless it is the clean end of work p.finished recognises, which
// starts p again.
func (g *group) supervise(p *Process) {
	<-p.done
	if p.stopping.Load() {
		return
	}
	g.mu.Lock()
	current := !g.stopped && slices.Contains(g.procs, p)
	g.mu.Unlock()
	if !current {
		return
	}
	why := ""
	if p.err == nil && p.finished != nil {
		if p.finished(p) {
			if _, err := g.replace(p); err != nil {
				g.fail(fmt.Errorf("start %s again: %w", p.Name, err))
				return
			}
			if g.say != nil {
				g.say("%s finished its work after %s; started it again", p.Name, time.Since(p.started).Round(time.Second))
			}
			return
		}
		why = fmt.Sprintf("it stopped after %s, before its work was done (was it sent a signal?)", time.Since(p.started).Round(time.Second))
	}
	g.fail(&ExitError{Name: p.Name, LogPath: p.logPath, Err: p.err, Why: why, Tail: p.tailLines(tailLines)})
}

func (g *group) fail(err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.failure != nil || g.stopped {
		return
	}
	g.failure = err
	close(g.failed)
}

// err returns the first unexpected exit, or nil.
func (g *group) err() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.failure
}

func (g *group) get(name string) *Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, p := range g.procs {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (g *group) list() []*Process {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]*Process(nil), g.procs...)
}

func (g *group) stopAll(grace time.Duration) error {
	g.mu.Lock()
	procs := g.procs
	g.procs, g.stopped = nil, true
	g.mu.Unlock()
	var errs []error
	for i := len(procs) - 1; i >= 0; i-- {
		if err := procs[i].Stop(grace); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
