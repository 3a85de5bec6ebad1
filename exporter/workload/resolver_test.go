package workload

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

const hostNS = 4026531840

// fakeProc writes the files of /proc the resolver reads, for processes that
// do not exist on this machine.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) fakeProc {
	f := fakeProc{t: t, root: t.TempDir()}
	f.add(1, 1, "systemd", "/usr/lib/systemd/systemd", hostNS, "0::/init.scope\n")
	return f
}

func (f fakeProc) add(pid uint32, start uint64, comm, exe string, netns uint64, cgroup string) {
	dir := filepath.Join(f.root, strconv.Itoa(int(pid)))
	must := func(err error) {
		if err != nil {
			f.t.Fatal(err)
		}
	}
	must(os.RemoveAll(dir))
	must(os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
	// A command name with a space and a parenthesis, as processes may set.
	stat := fmt.Sprintf("%d (%s) S 1 %d %d 0 -1 4194560 120 0 0 0 3 1 0 0 20 0 4 0 %d 1843200 512 18446744073709551615\n", pid, comm, pid, pid, start)
	must(os.WriteFile(filepath.Join(dir, "stat"), []byte(stat), 0o644))
	must(os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cgroup), 0o644))
	must(os.Symlink(exe, filepath.Join(dir, "exe")))
	must(os.Symlink(fmt.Sprintf("net:[%d]", netns), filepath.Join(dir, "ns", "net")))
}

func (f fakeProc) exit(pid uint32) {
	if err := os.RemoveAll(filepath.Join(f.root, strconv.Itoa(int(pid)))); err != nil {
		f.t.Fatal(err)
	}
}

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func open(pid uint32, port uint16) *traffic.Event {
	return &traffic.Event{Kind: traffic.Open, PID: pid, Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port)}
}

func workloadOf(t *testing.T, s *traffic.Server) key {
	t.Helper()
	w := s.Workload()
	if w == nil {
		t.Fatal("no workload")
	}
	return keyOf(w)
}

func TestResolverOutsideKubernetes(t *testing.T) {
	fp := newFakeProc(t)
	// A named network namespace: ip netns add binds the namespace to a file
	// under /run/netns; the resolver maps the file's inode to its name.
	netnsDir := t.TempDir()
	named := filepath.Join(netnsDir, "blue")
	if err := os.WriteFile(named, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(named, &st); err != nil {
		t.Fatal(err)
	}
	fp.add(100, 5000, "vllm", "/opt/venv/bin/python3.11", hostNS, "0::/system.slice/vllm.service\n")
	fp.add(101, 5001, "text-embeddings", "/usr/local/bin/text-embeddings-router", hostNS, "0::/system.slice/tei.service\n")
	fp.add(102, 5002, "python3 (srv)", "/usr/bin/python3.11", st.Ino, "0::/user.slice\n")
	fp.add(103, 5003, "python3 (srv)", "/usr/bin/python3.11", 4026532999, "0::/user.slice\n")
	fp.add(104, 5004, "uvicorn", "/usr/bin/python3.11", hostNS, "0::/user.slice\n")

	var retired []*traffic.Workload
	clk := &clock{t: time.Unix(1_800_000_000, 0)}
	r := New(Options{
		Proc: fp.root, NetnsDirs: []string{netnsDir}, Grace: 10 * time.Second, Now: clk.now,
		Rules: []Rule{
			{Name: "chat-api", Ports: []uint16{9000}},
			{Name: "gateway", Ports: []uint16{8000}, Process: "uvicorn"},
		},
		OnRetire: func(w *traffic.Workload) { retired = append(retired, w) },
	})

	for _, tc := range []struct {
		name string
		pid  uint32
		port uint16
		want key
	}{
		{"process name", 100, 8000, key{service: "vllm"}},
		{"comm cut at 15 bytes, executable name", 101, 8000, key{service: "text-embeddings-router"}},
		{"named network namespace", 102, 8000, key{service: "python3 (srv)", netns: "blue"}},
		{"unnamed network namespace", 103, 8000, key{service: "python3 (srv)", netns: "4026532999"}},
		{"rule by port", 100, 9000, key{service: "chat-api"}},
		{"rule by port and process", 104, 8000, key{service: "gateway"}},
		{"rule port matches, process does not", 100, 8000, key{service: "vllm"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := workloadOf(t, r.Identify(open(tc.pid, tc.port))); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}

	// One process, one Server per service name; one Workload per label set.
	a, b := r.Identify(open(100, 8000)), r.Identify(open(100, 8000))
	if a != b {
		t.Error("two connections of one process got different servers")
	}
	if r.Identify(open(999, 8000)) != nil || r.Identify(&traffic.Event{Kind: traffic.Open}) != nil {
		t.Error("a process that is gone (or no pid) was named")
	}

	// pid reuse: 103 exits, a different process takes its pid. Connections of
	// the old process keep their name; new ones get the new process's.
	old := r.Identify(open(103, 8000))
	fp.add(103, 7777, "nginx", "/usr/sbin/nginx", hostNS, "0::/system.slice/nginx.service\n")
	if got := workloadOf(t, r.Identify(open(103, 8000))); got != (key{service: "nginx"}) {
		t.Errorf("reused pid named %+v, want nginx", got)
	}
	if got := workloadOf(t, old); got.netns != "4026532999" {
		t.Errorf("old process's connections renamed to %+v", got)
	}

	// The namespaced servers' processes are gone: their workloads retire
	// after the grace period, host ones never.
	fp.exit(102)
	r.Sweep()
	clk.add(9 * time.Second)
	r.Sweep()
	if len(retired) != 0 {
		t.Fatalf("retired before the grace period: %+v", retired)
	}
	clk.add(time.Second)
	fp.exit(100)
	r.Sweep()
	got := map[string]bool{}
	for _, w := range retired {
		got[w.NetNS] = true
		if !w.Retired() {
			t.Errorf("%+v handed to OnRetire but not retired", w)
		}
	}
	if len(retired) != 2 || !got["blue"] || !got["4026532999"] {
		t.Errorf("retired %+v, want the blue and 4026532999 namespaces only", retired)
	}
	if old.Workload().Retired() != true {
		t.Error("old process's workload should be retired")
	}
	clk.add(time.Hour)
	r.Sweep()
	if len(retired) != 2 {
		t.Errorf("host workloads retired: %+v", retired[2:])
	}
	// A namespace that comes back gets a fresh, live workload.
	fp.add(102, 9000, "python3 (srv)", "/usr/bin/python3.11", st.Ino, "0::/user.slice\n")
	if w := r.Identify(open(102, 8000)).Workload(); w.Retired() || w.NetNS != "blue" {
		t.Errorf("returning namespace: %+v retired=%v", w, w.Retired())
	}
}

func netipPort(p uint16) netip.AddrPort {
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p)
}

// On the real /proc a known process is checked through its pidfd: once it
// has exited, its pid names nothing until the resolver reads /proc again.
func TestResolverRealProcessExit(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := uint32(cmd.Process.Pid)
	r := New(Options{})
	s := r.Identify(open(pid, 8000))
	if got := workloadOf(t, s); got.service != "sleep" || got.netns != "" {
		t.Fatalf("named %+v, want sleep in the host namespace", got)
	}
	r.mu.Lock()
	fd := r.procs[pid].pidfd
	r.mu.Unlock()
	if fd < 0 {
		t.Error("no pidfd for a process of this machine")
	}
	if r.Identify(open(pid, 8000)) != s {
		t.Error("a known process was resolved again")
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	if got := r.Identify(open(pid, 8000)); got != nil {
		t.Errorf("an exited process is still named %+v", got.Workload())
	}
	r.Sweep()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.procs) != 0 {
		t.Errorf("%d processes cached after their exit", len(r.procs))
	}
}
