package exporter

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// serveEnv tells the test binary, started again inside a network namespace,
// to serve llmHandler on that address instead of running tests.
const serveEnv = "AUTOGLM_TEST_NETNS_SERVE"

// TestNetnsServerProcess is the server of TestTwoServersOnOnePortInTwoNetworkNamespaces.
func TestNetnsServerProcess(t *testing.T) {
	addr := os.Getenv(serveEnv)
	if addr == "" {
		t.Skip("only runs as the helper server of the network namespace test")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	_ = http.Serve(ln, llmHandler())
}

// netns is a network namespace joined to the host by a veth pair, with a
// /30 of the benchmarking range (RFC 2544) that is unique to this test run.
type netns struct {
	name, hostIf string
	host, peer   netip.Addr
}

func ipRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newNetns(t *testing.T, ip, name string, block int) netns {
	t.Helper()
	base := netip.AddrFrom4([4]byte{198, 18 + byte(block>>14), byte(block >> 6), byte(block<<2) & 0xfc})
	n := netns{name: name, hostIf: name + "h", host: base.Next(), peer: base.Next().Next()}
	ipRun(t, ip, "netns", "add", n.name)
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", n.name).Run() })
	ipRun(t, ip, "link", "add", n.hostIf, "type", "veth", "peer", "name", name+"n", "netns", n.name)
	t.Cleanup(func() { _ = exec.Command(ip, "link", "del", n.hostIf).Run() })
	ipRun(t, ip, "addr", "add", n.host.String()+"/30", "dev", n.hostIf)
	ipRun(t, ip, "link", "set", n.hostIf, "up")
	ipRun(t, ip, "-n", n.name, "addr", "add", n.peer.String()+"/30", "dev", name+"n")
	ipRun(t, ip, "-n", n.name, "link", "set", name+"n", "up")
	ipRun(t, ip, "-n", n.name, "link", "set", "lo", "up")
	return n
}

// serve starts this test binary as an HTTP server inside the namespace.
func (n netns) serve(t *testing.T, ip string, port int) {
	t.Helper()
	cmd := exec.Command(ip, "netns", "exec", n.name, os.Args[0], "-test.run=^TestNetnsServerProcess$")
	cmd.Env = append(os.Environ(), serveEnv+"="+netip.AddrPortFrom(n.peer, uint16(port)).String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make([]byte, len("listening"))
	if _, err := io.ReadFull(out, line); err != nil || string(line) != "listening" {
		t.Fatalf("server in %s did not start: %v %q\n%s", n.name, err, line, stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
}

// TestTwoServersOnOnePortInTwoNetworkNamespaces runs two real HTTP servers
// on the same port, each in a network namespace of its own, drives each with
// a known number of requests over veth pairs and checks that the exporter
// (real eBPF) keeps them apart: one exact series per namespace, no mixing.
func TestTwoServersOnOnePortInTwoNetworkNamespaces(t *testing.T) {
	testenv.Root(t)
	ip := testenv.Tool(t, "ip")
	port := testenv.FreePort(t)
	pid := os.Getpid()
	a := newNetns(t, ip, fmt.Sprintf("agw%da", pid), (2*pid)%(1<<15))
	b := newNetns(t, ip, fmt.Sprintf("agw%db", pid), (2*pid+1)%(1<<15))

	cfg, err := config.Parse([]byte("metrics:\n  endpoints: [/v1/chat/completions]\nexporter:\n  ports: ["+strconv.Itoa(port)+"]\n"), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewPedanticRegistry()
	exp, err := New(Options{Config: cfg, Registerer: reg})
	if err != nil {
		t.Fatalf("start exporter: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
		if err := exp.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	a.serve(t, ip, port)
	b.serve(t, ip, port)

	want := map[string]int{a.name: 7, b.name: 13}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}, Timeout: 10 * time.Second}
	for _, n := range []netns{a, b} {
		url := "http://" + netip.AddrPortFrom(n.peer, uint16(port)).String() + "/v1/chat/completions"
		for i := range want[n.name] {
			body := fmt.Sprintf(`{"model":"glm-4","stream":%t,"messages":[]}`, i%3 == 0)
			resp, err := client.Post(url, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatalf("%s: %v", n.name, err)
			}
			drain(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%s: status %d", n.name, resp.StatusCode)
			}
		}
	}
	client.CloseIdleConnections()

	// Every request of this test's port, by network namespace and service name.
	got := func() map[string]int {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, mf := range mfs {
			if mf.GetName() != sli.HTTPDuration {
				continue
			}
			for _, m := range mf.GetMetric() {
				if !hasLabel(m, sli.LabelPort, strconv.Itoa(port)) {
					continue
				}
				var ns, svc string
				for _, l := range m.GetLabel() {
					switch l.GetName() {
					case sli.LabelNetNS:
						ns = l.GetValue()
					case sli.LabelServiceName:
						svc = l.GetValue()
					}
				}
				out[ns+"/"+svc] += int(m.GetHistogram().GetSampleCount())
			}
		}
		return out
	}
	// No service configured: the process name (comm, or the executable's
	// name where comm was cut at 15 bytes) is the service name.
	name := filepath.Base(os.Args[0])
	expect := map[string]int{a.name + "/" + name: 7, b.name + "/" + name: 13}
	deadline := time.Now().Add(20 * time.Second)
	for {
		g := got()
		if fmt.Sprint(g) == fmt.Sprint(expect) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("requests by netns/service_name = %v, want exactly %v", g, expect)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Nothing else arrives late (a mixed-up count would show up here).
	time.Sleep(300 * time.Millisecond)
	if g := got(); fmt.Sprint(g) != fmt.Sprint(expect) {
		t.Fatalf("requests by netns/service_name = %v, want exactly %v", g, expect)
	}
}
