package stack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func waitFailed(t *testing.T, g *group, within time.Duration) error {
	t.Helper()
	select {
	case <-g.failed:
		return g.err()
	case <-time.After(within):
		t.Fatalf("no failure reported within %s", within)
		return nil
	}
}

func TestGroupReportsAProcessThatDies(t *testing.T) {
	dir := t.TempDir()
	g := newGroup(nil)
	script := "for i in $(seq 1 30); do echo line $i; done; exec sleep 60"
	p, err := start(dir, "worker", "/bin/sh", []string{"-c", script}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.add(p)
	quiet, err := start(dir, "quiet", "/bin/sh", []string{"-c", "exec sleep 60"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.add(quiet)
	defer func() {
		if err := g.stopAll(5 * time.Second); err != nil {
			t.Error(err)
		}
	}()
	// Let the script write its lines before it is killed.
	for deadline := time.Now().Add(5 * time.Second); !strings.Contains(p.tail(4096), "line 30"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("script did not write its lines")
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err = waitFailed(t, g, 5*time.Second)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Name != "worker" {
		t.Fatalf("got %v, want an ExitError naming worker", err)
	}
	msg := err.Error()
	for _, want := range []string{"worker exited unexpectedly", "signal: killed", filepath.Join(dir, "worker.log"), "line 30", fmt.Sprintf("line %d", 30-tailLines+1)} {
		if !strings.Contains(msg, want) {
			t.Errorf("failure %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, fmt.Sprintf("line %d\n", 30-tailLines)) {
		t.Errorf("failure quotes more than the last %d lines: %q", tailLines, msg)
	}
}

func TestGroupIgnoresStopsItAskedFor(t *testing.T) {
	g := newGroup(nil)
	p, err := start(t.TempDir(), "server", "/bin/sh", []string{"-c", "exec sleep 60"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	g.add(p)
	np, err := g.restart(p, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.stopAll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := g.err(); err != nil {
		t.Fatalf("a restart and a stop were taken for failures: %v", err)
	}
	if exited, _ := np.Exited(); !exited {
		t.Fatal("restarted process outlived stopAll")
	}
}

// A process whose clean exit is the end of its work is started again; the
// same clean exit before its work is done is a failure that says so.
func TestGroupRestartsFinishedWorkAndFailsEarlyExit(t *testing.T) {
	dir := t.TempDir()
	g := newGroup(nil)
	var runs atomic.Int32
	p, err := start(dir, "replay", "/bin/sh", []string{"-c", "echo replayed; exit 0"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	p.finished = func(*Process) bool { return runs.Add(1) < 3 }
	g.add(p)
	err = waitFailed(t, g, 10*time.Second)
	if runs.Load() != 3 {
		t.Fatalf("ran %d times, want 2 restarts then the failure", runs.Load())
	}
	if err == nil || !strings.Contains(err.Error(), "before its work was done") || !strings.Contains(err.Error(), "exit status 0") {
		t.Fatalf("got %v", err)
	}
	if err := g.stopAll(5 * time.Second); err != nil {
		t.Fatal(err)
	}
}

// Killing the load generator of a running quickstart ends the watch with an
// error naming it and quoting the last lines of its log.
func TestKilledLoadGeneratorStopsTheQuickstart(t *testing.T) {
	testenv.Prometheus(t)
	testenv.Alertmanager(t)
	testenv.Promtool(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{
		Repo: testenv.RepoRoot(t), Work: filepath.Join(t.TempDir(), "stack"), Bin: bins(t), Ports: freePorts(t),
		// The test ends long before calibration would.
		Calibration: time.Hour, Speed: 4, Source: "accesslog",
		Say: func(format string, args ...any) { t.Logf(format, args...) },
	})
	if err != nil {
		t.Fatalf("start stack: %v", err)
	}
	defer func() {
		if err := s.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		assertStopped(t, s)
	}()
	load := s.Process("loadgen")
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(load.tail(4096), "trace loaded"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("load generator never said it loaded the trace:\n%s", load.tail(4096))
		}
	}
	// `kill <pid>`: the generator stops cleanly (exit status 0), which is
	// still not the end of its work.
	if err := load.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	err = s.Watch(wctx, time.Hour, nil)
	var ee *ExitError
	if !errors.As(err, &ee) || ee.Name != "loadgen" {
		t.Fatalf("Watch returned %v, want the load generator's exit", err)
	}
	if !strings.Contains(err.Error(), "trace loaded") || !strings.Contains(err.Error(), "loadgen.log") {
		t.Errorf("failure does not quote the load generator's log: %v", err)
	}
	if !errors.Is(s.Err(), err) && s.Err().Error() != err.Error() {
		t.Errorf("Err() = %v, Watch returned %v", s.Err(), err)
	}
}

// Without Prometheus and Alertmanager installed, the stack builds them from
// source once, saying first what it builds and how long that takes, and
// finds the builds in its cache afterwards. A fake `go` stands in for the
// toolchain (the real builds take minutes).
func TestMissingToolsAreBuiltOnceWithNotice(t *testing.T) {
	bin := t.TempDir()
	calls := filepath.Join(t.TempDir(), "calls")
	fakeGo := `#!/bin/sh
echo "$@" >> ` + calls + `
shift
mkdir -p "$GOBIN"
for pkg in "$@"; do
	name=$(basename "${pkg%@*}")
	printf '#!/bin/sh\n' > "$GOBIN/$name" && chmod +x "$GOBIN/$name"
done
`
	if err := os.WriteFile(filepath.Join(bin, "go"), []byte(fakeGo), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tool := range []string{"sh", "basename", "printf", "chmod", "mkdir"} {
		p, err := exec.LookPath(tool)
		if err != nil {
			t.Skipf("no %s", tool)
		}
		if err := os.Symlink(p, filepath.Join(bin, tool)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin)
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	var said []string
	o := Options{Work: t.TempDir(), Say: func(f string, a ...any) { said = append(said, fmt.Sprintf(f, a...)) }}
	tl, err := findTools(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{tl.prometheus, tl.promtool, tl.alertmanager} {
		if !strings.HasPrefix(p, filepath.Join(cache, "autoglm-monitor")) {
			t.Errorf("tool %s is not in the cache %s", p, cache)
		}
	}
	if len(said) == 0 || !strings.Contains(said[0], "prometheus and alertmanager not installed") || !strings.Contains(said[0], "about 10 minutes") {
		t.Errorf("no notice of the source build and its duration before it: %q", said)
	}
	b, err := os.ReadFile(calls)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(string(b), "install"); got != 2 {
		t.Errorf("go install ran %d times, want 2 (Prometheus with promtool, Alertmanager):\n%s", got, b)
	}
	said = nil
	if _, err := findTools(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if len(said) != 0 {
		t.Errorf("second start built again: %q", said)
	}
}
