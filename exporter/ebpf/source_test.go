package ebpf

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"golang.org/x/sys/unix"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// recorder keeps copies of every event a Source hands out.
type recorder struct {
	mu  sync.Mutex
	evs []traffic.Event
}

func (r *recorder) handle(ev *traffic.Event) {
	c := *ev
	c.Data = bytes.Clone(ev.Data)
	if ev.Skip != nil {
		sk := *ev.Skip
		c.Skip = &sk
	}
	r.mu.Lock()
	r.evs = append(r.evs, c)
	r.mu.Unlock()
}

func (r *recorder) snapshot() []traffic.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]traffic.Event(nil), r.evs...)
}

// waitFor polls until cond holds on the events seen so far, failing after a bound.
func (r *recorder) waitFor(t *testing.T, what string, cond func([]traffic.Event) bool) []traffic.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		evs := r.snapshot()
		if cond(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; %d events seen:\n%s", what, len(evs), dump(evs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dump(evs []traffic.Event) string {
	var b strings.Builder
	for i, e := range evs {
		if i == 200 {
			b.WriteString("...\n")
			break
		}
		fmt.Fprintf(&b, "%v conn=%d fd=%d dir=%v size=%d local=%v remote=%v data=%q\n", e.Kind, e.Conn, e.FD, e.Dir, e.Size, e.Local, e.Remote, firstLine(e.Data))
	}
	return b.String()
}

func firstLine(b []byte) []byte {
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		return b[:i]
	}
	return b
}

// startSource loads a Source for ports and runs it until the test ends.
func startSource(t *testing.T, o Options) (*Source, *recorder) {
	t.Helper()
	testenv.Root(t)
	src, err := New(o)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	rec := &recorder{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- src.Run(ctx, rec.handle) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after cancel")
		}
		if err := src.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return src, rec
}

func serveHTTP(t *testing.T, h http.Handler) (uint16, string) {
	t.Helper()
	port := testenv.FreePort(t)
	addr := testenv.Addr(port)
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return uint16(port), addr
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if err := resp.Body.Close(); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
}

// rawRequest sends one HTTP/1.1 request on an open connection and reads the full response.
func rawRequest(t *testing.T, conn net.Conn, br *bufio.Reader, path string, closeConn bool) {
	t.Helper()
	hdr := ""
	if closeConn {
		hdr = "Connection: close\r\n"
	}
	if _, err := fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: test\r\n%s\r\n", path, hdr); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
}

// streams concatenates each connection's captured bytes in direction dir.
// A message can arrive over several reads (net/http's background read takes
// the first byte of the next request on its own), so tests look at streams.
func streams(evs []traffic.Event, dir traffic.Direction) map[traffic.ConnID][]byte {
	out := map[traffic.ConnID][]byte{}
	for _, e := range evs {
		if e.Kind == traffic.Data && e.Dir == dir {
			out[e.Conn] = append(out[e.Conn], e.Data...)
		}
	}
	return out
}

// connsWith returns the ids of connections whose stream in dir contains s.
func connsWith(evs []traffic.Event, dir traffic.Direction, s string) map[traffic.ConnID]bool {
	ids := map[traffic.ConnID]bool{}
	for id, b := range streams(evs, dir) {
		if bytes.Contains(b, []byte(s)) {
			ids[id] = true
		}
	}
	return ids
}

func TestCaptureNetHTTP(t *testing.T) {
	testenv.Root(t)
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "hello "+r.URL.Path)
	})
	port, addr := serveHTTP(t, hello)
	otherPort, otherAddr := serveHTTP(t, hello)

	// A connection that exists before capture starts.
	before, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer before.Close()
	beforeBR := bufio.NewReader(before)
	rawRequest(t, before, beforeBR, "/before-start", false)

	src, rec := startSource(t, Options{Ports: []uint16{port}})
	sent := time.Now()

	const n = 5
	keepAlive := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	defer keepAlive.CloseIdleConnections()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	for i := range n {
		get(t, keepAlive, fmt.Sprintf("http://%s/keepalive/%d", addr, i))
		get(t, fresh, fmt.Sprintf("http://%s/fresh/%d", addr, i))
		get(t, fresh, fmt.Sprintf("http://%s/otherport/%d", otherAddr, i))
	}
	rawRequest(t, before, beforeBR, "/after-start", true)

	evs := rec.waitFor(t, "all requests, responses and closes", func(evs []traffic.Event) bool {
		fr := connsWith(evs, traffic.Ingress, "GET /fresh/")
		closed := 0
		for _, e := range evs {
			if e.Kind == traffic.Close && fr[e.Conn] {
				closed++
			}
		}
		return len(connsWith(evs, traffic.Ingress, fmt.Sprintf("GET /keepalive/%d ", n-1))) == 1 &&
			len(fr) == n && closed == n &&
			len(connsWith(evs, traffic.Ingress, "GET /after-start ")) == 1
	})

	opens := map[traffic.ConnID]traffic.Event{}
	done := time.Now()
	for _, e := range evs {
		// Kernel times are converted to wall time; allow for clock granularity.
		if e.Time.Before(sent.Add(-time.Millisecond)) || e.Time.After(done) {
			t.Errorf("%v event at %v, outside the test's window %v..%v", e.Kind, e.Time, sent, done)
		}
		switch e.Kind {
		case traffic.Open:
			if _, dup := opens[e.Conn]; dup {
				t.Errorf("conn %d opened twice", e.Conn)
			}
			opens[e.Conn] = e
			if e.Local.Port() != port {
				t.Errorf("open event for local %v, want port %d (other port %d must not be tracked)", e.Local, port, otherPort)
			}
			if !e.Local.Addr().IsLoopback() || !e.Remote.Addr().IsLoopback() || e.Remote.Port() == 0 {
				t.Errorf("open event addresses local=%v remote=%v, want loopback with ports", e.Local, e.Remote)
			}
		case traffic.Data:
			if _, ok := opens[e.Conn]; !ok {
				t.Errorf("data on conn %d before its open event", e.Conn)
			}
			if e.Size == 0 || len(e.Data) > int(e.Size) || e.Truncated != (len(e.Data) < int(e.Size)) {
				t.Errorf("data event size=%d len=%d truncated=%v inconsistent", e.Size, len(e.Data), e.Truncated)
			}
			if bytes.Contains(e.Data, []byte("/otherport/")) {
				t.Errorf("traffic of port %d captured: %q", otherPort, firstLine(e.Data))
			}
		}
	}

	keepConns := connsWith(evs, traffic.Ingress, "GET /keepalive/")
	if len(keepConns) != 1 {
		t.Errorf("keep-alive requests spread over %d conns, want 1", len(keepConns))
	}
	freshConns := connsWith(evs, traffic.Ingress, "GET /fresh/")
	for id := range freshConns {
		if keepConns[id] {
			t.Errorf("conn %d carries both keep-alive and fresh requests", id)
		}
	}
	egress200 := connsWith(evs, traffic.Egress, "HTTP/1.1 200 OK")
	for id := range freshConns {
		if !egress200[id] {
			t.Errorf("no HTTP/1.1 200 response captured on fresh conn %d", id)
		}
	}
	for id := range keepConns {
		if !egress200[id] {
			t.Errorf("no HTTP/1.1 200 response captured on keep-alive conn %d", id)
		}
	}

	// The connection from before start is picked up at its first read and
	// its peer is the dialing socket.
	beforeConns := connsWith(evs, traffic.Ingress, "GET /after-start ")
	for id := range beforeConns {
		if got, want := opens[id].Remote.String(), before.LocalAddr().String(); got != want {
			t.Errorf("pre-existing conn remote %s, want %s", got, want)
		}
	}
	if ids := connsWith(evs, traffic.Ingress, "/before-start"); len(ids) != 0 {
		t.Errorf("request sent before start was captured on %v", ids)
	}

	st, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RingbufFull != 0 || st.MapFull != 0 || st.Malformed != 0 {
		t.Errorf("lost events: %+v", st)
	}
	if st.Events < uint64(len(evs)) {
		t.Errorf("stats count %d events, handler saw %d", st.Events, len(evs))
	}
	t.Logf("%d events for %d requests on %d connections; stats %+v", len(evs), 2*n+1, len(opens), st)
}

func TestFDReuseGetsNewConnID(t *testing.T) {
	port, addr := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	_, rec := startSource(t, Options{Ports: []uint16{port}})

	closedFD := map[uint32]traffic.ConnID{}
	for i := range 20 {
		conn, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		path := fmt.Sprintf("/reuse/%d", i)
		rawRequest(t, conn, bufio.NewReader(conn), path, true)
		_ = conn.Close()
		evs := rec.waitFor(t, "close of "+path, func(evs []traffic.Event) bool {
			ids := connsWith(evs, traffic.Ingress, path+" ")
			for _, e := range evs {
				if e.Kind == traffic.Close && ids[e.Conn] {
					return true
				}
			}
			return false
		})
		var open traffic.Event
		ids := connsWith(evs, traffic.Ingress, path+" ")
		for _, e := range evs {
			if e.Kind == traffic.Open && ids[e.Conn] {
				open = e
			}
		}
		if prev, ok := closedFD[open.FD]; ok {
			if prev == open.Conn {
				t.Fatalf("fd %d reused with the same conn id %d", open.FD, open.Conn)
			}
			return // reuse seen with a fresh id
		}
		closedFD[open.FD] = open.Conn
	}
	t.Fatalf("server never reused an fd in 20 connections: %v", closedFD)
}

// rawServer accepts connections on port and runs serve on each raw fd.
func rawServer(t testing.TB, serve func(fd int) error) (uint16, string) {
	t.Helper()
	port := testenv.FreePort(t)
	addr := testenv.Addr(port)
	ln, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				f, err := c.(*net.TCPConn).File() // a blocking dup of the socket
				if err != nil {
					t.Error(err)
					return
				}
				defer f.Close()
				if err := serve(int(f.Fd())); err != nil {
					t.Error(err)
				}
			}()
		}
	}()
	return uint16(port), addr
}

func TestCaptureSyscallVariants(t *testing.T) {
	testenv.Root(t)
	const (
		req  = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"
		head = "HTTP/1.1 200 OK\r\n"
		rest = "Content-Type: text/event-stream\r\n\r\n"
		body = "data: {\"x\":1}\n\n"
	)
	file := filepath.Join(t.TempDir(), "body")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		// serve reads the request and writes head+rest+body with the syscalls under test.
		serve func(fd int) error
		// wantEgress is what must be captured of the response; "" for sendfile, which carries no data.
		wantEgress string
	}{
		{"readv/writev", func(fd int) error {
			a, b := make([]byte, 7), make([]byte, 1024)
			if _, err := unix.Readv(fd, [][]byte{a, b}); err != nil {
				return err
			}
			_, err := unix.Writev(fd, [][]byte{[]byte(head), []byte(rest), []byte(body)})
			return err
		}, head + rest + body},
		{"recvfrom/sendto", func(fd int) error {
			buf := make([]byte, 1024)
			if _, _, err := unix.Recvfrom(fd, buf, 0); err != nil {
				return err
			}
			return unix.Sendto(fd, []byte(head+rest+body), 0, nil)
		}, head + rest + body},
		{"recvmsg/sendmsg", func(fd int) error {
			a, b := make([]byte, 5), make([]byte, 1024)
			if _, _, _, _, err := unix.RecvmsgBuffers(fd, [][]byte{a, b}, nil, 0); err != nil {
				return err
			}
			_, err := unix.SendmsgBuffers(fd, [][]byte{[]byte(head), []byte(rest + body)}, nil, nil, 0)
			return err
		}, head + rest + body},
		{"read/sendfile", func(fd int) error {
			buf := make([]byte, 1024)
			if _, err := unix.Read(fd, buf); err != nil {
				return err
			}
			if _, err := unix.Write(fd, []byte(head+rest)); err != nil {
				return err
			}
			f, err := os.Open(file)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = unix.Sendfile(fd, int(f.Fd()), nil, len(body))
			return err
		}, head + rest},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			port, addr := rawServer(t, tc.serve)
			_, rec := startSource(t, Options{Ports: []uint16{port}})
			conn, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if _, err := io.WriteString(conn, req); err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(io.LimitReader(conn, int64(len(head+rest+body))))
			if err != nil || string(got) != head+rest+body {
				t.Fatalf("client read %q, %v", got, err)
			}
			evs := rec.waitFor(t, "request, response and close", func(evs []traffic.Event) bool {
				var in, out int
				closed := false
				for _, e := range evs {
					switch {
					case e.Kind == traffic.Data && e.Dir == traffic.Ingress:
						in += int(e.Size)
					case e.Kind == traffic.Data && e.Dir == traffic.Egress:
						out += int(e.Size)
					case e.Kind == traffic.Close:
						closed = true
					}
				}
				return in == len(req) && out == len(head+rest+body) && closed
			})
			var in, out []byte
			for _, e := range evs {
				if e.Kind != traffic.Data {
					continue
				}
				if e.Dir == traffic.Ingress {
					in = append(in, e.Data...)
				} else {
					out = append(out, e.Data...)
				}
			}
			if string(in) != req {
				t.Errorf("ingress captured %q, want %q", in, req)
			}
			if string(out) != tc.wantEgress {
				t.Errorf("egress captured %q, want %q", out, tc.wantEgress)
			}
		})
	}
}

func TestCaptureTruncatesLongWrites(t *testing.T) {
	const size, capture = 10000, 256
	payload := bytes.Repeat([]byte("0123456789"), size/10)
	port, addr := rawServer(t, func(fd int) error {
		buf := make([]byte, 1024)
		if _, err := unix.Read(fd, buf); err != nil {
			return err
		}
		_, err := unix.Write(fd, payload)
		return err
	})
	src, rec := startSource(t, Options{Ports: []uint16{port}, CaptureBytes: capture})
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET / HTTP/1.1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(io.LimitReader(conn, size)); err != nil {
		t.Fatal(err)
	}
	evs := rec.waitFor(t, "the long write", func(evs []traffic.Event) bool {
		for _, e := range evs {
			if e.Kind == traffic.Data && e.Dir == traffic.Egress {
				return true
			}
		}
		return false
	})
	for _, e := range evs {
		if e.Kind != traffic.Data || e.Dir != traffic.Egress {
			continue
		}
		if e.Size != size || len(e.Data) != capture || !e.Truncated || !bytes.Equal(e.Data, payload[:capture]) {
			t.Errorf("egress event size=%d len=%d truncated=%v, want size %d, the first %d bytes, truncated", e.Size, len(e.Data), e.Truncated, size, capture)
		}
	}
	st, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Truncated != 1 {
		t.Errorf("truncated count %d, want 1", st.Truncated)
	}
}

func TestCollectorMetrics(t *testing.T) {
	port, addr := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	src, rec := startSource(t, Options{Ports: []uint16{port}})
	conn, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	rawRequest(t, conn, bufio.NewReader(conn), "/metrics-test", false)
	rec.waitFor(t, "the response", func(evs []traffic.Event) bool {
		return len(connsWith(evs, traffic.Egress, "HTTP/1.1 200")) == 1
	})

	c := src.Collector()
	problems, err := testutil.CollectAndLint(c)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
	trackedIs(t, c, 1)
	want := `
# HELP autoglm_exporter_events_lost_total Kernel socket events lost or cut short, by reason (ringbuf_full, map_full, truncated, malformed, tls_no_socket).
# TYPE autoglm_exporter_events_lost_total counter
autoglm_exporter_events_lost_total{reason="malformed"} 0
autoglm_exporter_events_lost_total{reason="map_full"} 0
autoglm_exporter_events_lost_total{reason="ringbuf_full"} 0
autoglm_exporter_events_lost_total{reason="tls_no_socket"} 0
autoglm_exporter_events_lost_total{reason="truncated"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "autoglm_exporter_events_lost_total"); err != nil {
		t.Error(err)
	}
	if n := testutil.CollectAndCount(c, "autoglm_exporter_events_total"); n != 1 {
		t.Errorf("events_total series %d, want 1", n)
	}

	_ = conn.Close()
	rec.waitFor(t, "the close", func(evs []traffic.Event) bool {
		return slicesContainsKind(evs, traffic.Close)
	})
	trackedIs(t, c, 0)
}

func slicesContainsKind(evs []traffic.Event, k traffic.Kind) bool {
	for _, e := range evs {
		if e.Kind == k {
			return true
		}
	}
	return false
}

func trackedIs(t *testing.T, c prometheus.Collector, n int) {
	t.Helper()
	want := fmt.Sprintf(`
# HELP autoglm_exporter_tracked_connections Server connections currently tracked by the eBPF programs.
# TYPE autoglm_exporter_tracked_connections gauge
autoglm_exporter_tracked_connections %d
`, n)
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "autoglm_exporter_tracked_connections"); err != nil {
		t.Error(err)
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	cases := []struct {
		name string
		o    Options
		want string
	}{
		{"no ports", Options{}, "at least one port"},
		{"port zero", Options{Ports: []uint16{8000, 0}}, "ports[1]"},
		{"capture too large", Options{Ports: []uint16{1}, CaptureBytes: MaxCaptureBytes + 1}, "capture bytes"},
		{"negative capture", Options{Ports: []uint16{1}, CaptureBytes: -1}, "capture bytes"},
		{"ring not power of two", Options{Ports: []uint16{1}, RingBufferBytes: 3 << 20}, "power of two"},
		{"ring too small", Options{Ports: []uint16{1}, RingBufferBytes: 1024}, "power of two"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New(%+v) error %v, want it to mention %q", tc.o, err, tc.want)
			}
		})
	}
}

// pythonServer runs a one-connection server in a Python process: it answers
// one request with recv/sendall (recvfrom/sendto underneath) and, when
// stdin closes, exits without closing the connection.
type pythonServer struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	addr  string
	port  uint16
}

const pythonServerScript = `
import os, socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
print("ready", flush=True)
c, _ = s.accept()
c.recv(4096)
c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
sys.stdin.read()
os._exit(0)
`

func startPython(t *testing.T) *pythonServer {
	t.Helper()
	py, err := exec.LookPath("python3")
	if err != nil {
		if testenv.Required() {
			t.Fatal("python3 not found")
		}
		t.Skip("python3 not found")
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(py, "-c", pythonServerScript, strconv.Itoa(port))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || line != "ready\n" {
		t.Fatalf("python server: %q, %v", line, err)
	}
	return &pythonServer{cmd: cmd, stdin: stdin, addr: testenv.Addr(port), port: uint16(port)}
}

// request sends one request and reads the two-byte response body.
func (p *pythonServer) request(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp4", p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	if _, err := io.WriteString(conn, "GET /py HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(resp.Body); string(b) != "ok" {
		t.Fatalf("python server answered %q", b)
	}
	return conn
}

func TestExitedProcessConnectionsAreReaped(t *testing.T) {
	testenv.Root(t)
	py := startPython(t)
	src, rec := startSource(t, Options{Ports: []uint16{py.port}})
	py.request(t)
	evs := rec.waitFor(t, "python request and response", func(evs []traffic.Event) bool {
		return len(connsWith(evs, traffic.Ingress, "GET /py ")) == 1 && len(connsWith(evs, traffic.Egress, "HTTP/1.1 200 OK")) == 1
	})
	var conn traffic.ConnID
	for id := range connsWith(evs, traffic.Ingress, "GET /py ") {
		conn = id
	}
	for _, e := range evs {
		if e.Conn == conn && e.PID != uint32(py.cmd.Process.Pid) {
			t.Errorf("event pid %d, want the python server %d", e.PID, py.cmd.Process.Pid)
		}
	}

	// Exit without close(2): the kernel side never sees the connection end.
	if err := py.stdin.Close(); err != nil {
		t.Fatal(err)
	}
	if err := py.cmd.Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.TrackedConnections != 1 {
		t.Fatalf("tracked connections %d before reaping, want 1", st.TrackedConnections)
	}
	src.reap(rec.handle)
	if st, _ := src.Stats(); st.TrackedConnections != 0 {
		t.Errorf("tracked connections %d after reaping, want 0", st.TrackedConnections)
	}
	closes := 0
	for _, e := range rec.snapshot() {
		if e.Kind == traffic.Close && e.Conn == conn {
			closes++
		}
	}
	if closes != 1 {
		t.Errorf("%d close events for the exited process's connection, want 1", closes)
	}
}

// cgroup2Root finds where the cgroup v2 hierarchy is mounted.
func cgroup2Root(t *testing.T) string {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		pre, post, ok := strings.Cut(line, " - ")
		if !ok {
			continue
		}
		if fs := strings.Fields(post); len(fs) > 0 && fs[0] == "cgroup2" {
			if f := strings.Fields(pre); len(f) >= 5 {
				return f[4]
			}
		}
	}
	t.Skip("no cgroup v2 hierarchy mounted")
	return ""
}

func TestCgroupFilter(t *testing.T) {
	testenv.Root(t)
	dir := filepath.Join(cgroup2Root(t), fmt.Sprintf("autoglm-ebpf-test-%d", os.Getpid()))
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	py := startPython(t)
	// Registered after startPython so it runs first: the process must be
	// gone before its cgroup can be removed.
	t.Cleanup(func() {
		_ = py.cmd.Process.Kill()
		_ = py.cmd.Wait()
		if err := os.Remove(dir); err != nil {
			t.Errorf("removing cgroup: %v", err)
		}
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(py.cmd.Process.Pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	goPort, goAddr := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))

	_, rec := startSource(t, Options{Ports: []uint16{py.port, goPort}, CgroupPath: dir})
	get(t, http.DefaultClient, "http://"+goAddr+"/outside-cgroup")
	py.request(t)
	evs := rec.waitFor(t, "the python server's response", func(evs []traffic.Event) bool {
		return len(connsWith(evs, traffic.Egress, "HTTP/1.1 200 OK")) == 1
	})
	for _, e := range evs {
		if e.PID != uint32(py.cmd.Process.Pid) {
			t.Errorf("event from pid %d outside the cgroup: %v %q", e.PID, e.Kind, firstLine(e.Data))
		}
	}
	if len(connsWith(evs, traffic.Ingress, "/outside-cgroup")) != 0 {
		t.Error("request to a server outside the cgroup was captured")
	}
}

// TestImplicitCloses covers fds that stop being connections without
// close(2): replaced by dup2, or closed by close_range and then reused by
// accept. Both must end the old connection and never mix it with the next.
func TestImplicitCloses(t *testing.T) {
	testenv.Root(t)
	port := testenv.FreePort(t)
	lfd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	if err := unix.SetsockoptInt(lfd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(lfd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(lfd, 8); err != nil {
		t.Fatal(err)
	}
	devNull, err := unix.Open("/dev/null", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(devNull)
	_, rec := startSource(t, Options{Ports: []uint16{uint16(port)}})

	// serveOne accepts one connection, answers one request and drops the
	// fd the way drop says; it returns the fd number.
	serveOne := func(path string, drop func(fd int) error) int {
		t.Helper()
		conn, err := net.Dial("tcp4", testenv.Addr(port))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := io.WriteString(conn, "GET "+path+" HTTP/1.1\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		nfd, _, err := unix.Accept4(lfd, unix.SOCK_CLOEXEC)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 512)
		if _, err := unix.Read(nfd, buf); err != nil {
			t.Fatal(err)
		}
		if _, err := unix.Write(nfd, []byte("HTTP/1.1 204 No Content\r\n\r\n")); err != nil {
			t.Fatal(err)
		}
		if err := drop(nfd); err != nil {
			t.Fatal(err)
		}
		return nfd
	}
	closedOnce := func(path string) traffic.ConnID {
		t.Helper()
		var id traffic.ConnID
		rec.waitFor(t, "close of the conn serving "+path, func(evs []traffic.Event) bool {
			for id = range connsWith(evs, traffic.Ingress, "GET "+path+" ") {
			}
			n := 0
			for _, e := range evs {
				if e.Kind == traffic.Close && e.Conn == id {
					n++
				}
			}
			return id != 0 && n == 1
		})
		return id
	}

	fd := serveOne("/dup2", func(fd int) error { return unix.Dup2(devNull, fd) })
	closedOnce("/dup2")
	if err := unix.Close(fd); err != nil { // now /dev/null
		t.Fatal(err)
	}

	closeRange := func(fd int) error { return unix.CloseRange(uint(fd), uint(fd), 0) }
	prevFD := serveOne("/close-range/0", closeRange)
	for i := 1; i <= 10; i++ {
		fd := serveOne(fmt.Sprintf("/close-range/%d", i), closeRange)
		if fd == prevFD {
			// The accept that reused the fd ended the old connection.
			closedOnce(fmt.Sprintf("/close-range/%d", i-1))
			return
		}
		prevFD = fd
	}
	t.Fatal("accept never reused the fd dropped by close_range")
}

func TestStatsAfterClose(t *testing.T) {
	testenv.Root(t)
	src, err := New(Options{Ports: []uint16{uint16(testenv.FreePort(t))}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := src.Stats(); err != nil {
		t.Fatalf("stats while open: %v", err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := src.Stats(); err == nil {
		t.Fatal("stats after close succeeded")
	}
	// A scrape after close reports the failure instead of panicking.
	if n := testutil.CollectAndCount(src.Collector(), "autoglm_exporter_ebpf_stats_up"); n != 1 {
		t.Fatalf("%d stats_up series after close, want 1", n)
	}
	if err := src.Run(context.Background(), func(*traffic.Event) {}); err == nil {
		t.Fatal("Run on a closed source returned nil")
	}
}

// TestBurstIsComplete sends a burst of keep-alive requests from several
// clients and checks that every request and response was captured and
// nothing was lost.
func TestBurstIsComplete(t *testing.T) {
	const clients, perClient = 8, 250
	port, addr := serveHTTP(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, `{"usage":{"completion_tokens":1}}`)
	}))
	src, rec := startSource(t, Options{Ports: []uint16{port}})
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients}}
	defer client.CloseIdleConnections()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				resp, err := client.Get(fmt.Sprintf("http://%s/burst/%d/%d", addr, c, i))
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
		})
	}
	wg.Wait()
	countResponses := func(evs []traffic.Event) int {
		n := 0
		for _, b := range streams(evs, traffic.Egress) {
			n += bytes.Count(b, []byte("HTTP/1.1 200 OK"))
		}
		return n
	}
	evs := rec.waitFor(t, "every response", func(evs []traffic.Event) bool { return countResponses(evs) >= clients*perClient })
	for _, e := range evs {
		if e.Kind == traffic.Data && e.Truncated {
			t.Fatalf("small message truncated: %d of %d bytes", len(e.Data), e.Size)
		}
	}
	paths := map[string]bool{}
	for _, stream := range streams(evs, traffic.Ingress) {
		for _, line := range bytes.Split(stream, []byte("\r\n")) {
			if p, ok := bytes.CutPrefix(line, []byte("GET /burst/")); ok {
				paths[string(p)] = true
			}
		}
	}
	if len(paths) != clients*perClient {
		t.Errorf("%d distinct requests captured, want %d", len(paths), clients*perClient)
	}
	if n := countResponses(evs); n != clients*perClient {
		t.Errorf("%d responses captured, want %d", n, clients*perClient)
	}
	st, err := src.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.RingbufFull != 0 || st.MapFull != 0 || st.Malformed != 0 {
		t.Errorf("lost events: %+v", st)
	}
}
