package exporter

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/open-autoglm/autoglm-monitor/exporter/testdata/llmapi"
	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// llmHandler is a tiny OpenAI-style API: streaming and plain chat
// completions with usage, a model route, an error route and 404 for the rest.
func llmHandler() http.Handler { return llmapi.Handler() }

// startGoServer serves llmHandler on a free loopback port.
func startGoServer(t testing.TB) uint16 {
	t.Helper()
	port := testenv.FreePort(t)
	ln, err := net.Listen("tcp", testenv.Addr(port))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: llmHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return uint16(port)
}

const pythonServer = `
import json, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def send_json(self, code, obj):
        b = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(b)))
        self.end_headers()
        self.wfile.write(b)
    def do_GET(self):
        if self.path.startswith("/v1/models/"):
            self.send_json(200, {"id": self.path.rsplit("/", 1)[1]})
        elif self.path == "/fail":
            self.send_json(503, {"error": "overloaded"})
        else:
            self.send_json(404, {"error": "not found"})
    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(n) or b"{}")
        model = body.get("model", "")
        if self.path == "/v1/embeddings":
            self.send_json(200, {"model": model, "data": [{"embedding": [0.123456] * 6000}], "usage": {"prompt_tokens": 5}})
            return
        if not body.get("stream"):
            self.send_json(200, {"model": model, "choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 3}})
            return
        # An event stream without a length ends when the connection closes.
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        for i in range(4):
            self.wfile.write(('data: {"model": "%s", "choices": [{"delta": {"content": "t%d"}}]}\n\n' % (model, i)).encode())
            self.wfile.flush()
            time.sleep(0.002)
        self.wfile.write(b'data: {"choices": [], "usage": {"prompt_tokens": 11, "completion_tokens": 4}}\n\ndata: [DONE]\n\n')
        self.wfile.flush()
        self.close_connection = True

srv = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), H)
if len(sys.argv) > 3:
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(sys.argv[2], sys.argv[3])
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
srv.serve_forever()
`

// startPythonServer runs a Python standard-library HTTP/1.1 keep-alive
// server; given a certificate and key file it serves HTTPS (the ssl module).
func startPythonServer(t testing.TB, certKey ...string) uint16 {
	t.Helper()
	py := testenv.Tool(t, "python3")
	script := filepath.Join(t.TempDir(), "server.py")
	if err := os.WriteFile(script, []byte(pythonServer), 0o600); err != nil {
		t.Fatal(err)
	}
	port := testenv.FreePort(t)
	cmd := exec.Command(py, append([]string{script, strconv.Itoa(port)}, certKey...)...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// Python starts slowly on a busy machine.
	deadline := time.Now().Add(45 * time.Second)
	for {
		c, err := net.Dial("tcp", testenv.Addr(port))
		if err == nil {
			_ = c.Close()
			return uint16(port)
		}
		if time.Now().After(deadline) {
			t.Fatalf("python server did not start: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// proxySource is a user-space stand-in for the eBPF source: a loopback TCP
// proxy in front of a server that reports what the server read and wrote as
// traffic.Events. It lets the pipeline be tested without privileges.
type proxySource struct {
	ln     net.Listener
	target string
	port   uint16
	events chan traffic.Event
	nextID traffic.ConnID
	mu     sync.Mutex
	wg     sync.WaitGroup
}

func newProxySource(t testing.TB, serverPort uint16) *proxySource {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxySource{ln: ln, target: testenv.Addr(int(serverPort)), port: serverPort, events: make(chan traffic.Event, 4096)}
	go p.accept()
	return p
}

// Addr is where clients connect.
func (p *proxySource) Addr() string { return p.ln.Addr().String() }

func (p *proxySource) accept() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		p.nextID++
		id := p.nextID
		p.mu.Unlock()
		p.wg.Add(1)
		go p.serve(id, c)
	}
}

func (p *proxySource) serve(id traffic.ConnID, client net.Conn) {
	defer p.wg.Done()
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = client.Close()
		return
	}
	remote := netip.MustParseAddrPort(client.RemoteAddr().String())
	p.events <- traffic.Event{Kind: traffic.Open, Conn: id, Time: time.Now(),
		Local: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), p.port), Remote: remote}
	var wg sync.WaitGroup
	pump := func(dst, src net.Conn, dir traffic.Direction) {
		defer wg.Done()
		buf := make([]byte, 4096)
		for {
			n, err := src.Read(buf)
			if n > 0 {
				p.events <- traffic.Event{Kind: traffic.Data, Conn: id, Time: time.Now(), Dir: dir,
					Size: uint32(n), Data: append([]byte(nil), buf[:n]...)}
				if _, werr := dst.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
		}
	}
	wg.Add(2)
	go pump(server, client, traffic.Ingress)
	go pump(client, server, traffic.Egress)
	wg.Wait()
	_ = client.Close()
	_ = server.Close()
	p.events <- traffic.Event{Kind: traffic.Close, Conn: id, Time: time.Now()}
}

func (p *proxySource) Run(ctx context.Context, handle func(*traffic.Event)) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case ev := <-p.events:
			handle(&ev)
		}
	}
}

func (p *proxySource) Collector() prometheus.Collector { return noMetrics{} }

// noMetrics is a collector without metrics (the proxy has no self metrics).
type noMetrics struct{}

func (noMetrics) Describe(chan<- *prometheus.Desc) {}
func (noMetrics) Collect(chan<- prometheus.Metric) {}

func (p *proxySource) Close() error { return p.ln.Close() }

// drain reads and discards a response body.
func drain(r io.ReadCloser) {
	_, _ = io.Copy(io.Discard, r)
	_ = r.Close()
}
