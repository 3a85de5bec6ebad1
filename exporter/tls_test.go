package exporter

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// selfSigned writes a fresh self-signed certificate for 127.0.0.1 and its
// key as PEM files into dir.
func selfSigned(t testing.TB, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

// waitPort waits until something accepts connections on port.
func waitPort(t testing.TB, port int, what string) {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		c, err := net.Dial("tcp", testenv.Addr(port))
		if err == nil {
			_ = c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not start: %v", what, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// run starts a server process that lives as long as the test.
func run(t testing.TB, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	return cmd
}

// startGoTLSServer builds testdata/tlsserver with ldflags and serves HTTPS
// with it on a free port.
func startGoTLSServer(t testing.TB, certFile, keyFile, ldflags string) uint16 {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "tlsserver")
	build := exec.Command("go", "build", "-ldflags="+ldflags, "-o", bin, "./exporter/testdata/tlsserver")
	build.Dir = testenv.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build tlsserver: %v\n%s", err, out)
	}
	port := testenv.FreePort(t)
	run(t, bin, testenv.Addr(port), certFile, keyFile)
	waitPort(t, port, "go tls server")
	return uint16(port)
}

// nginxTLSConf terminates TLS and proxies to a plain upstream, streaming
// answers through unbuffered as LLM gateways do.
const nginxTLSConf = `daemon off;
master_process on;
worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    location / {
      proxy_pass http://127.0.0.1:%[5]d;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`

// startNginxTLS runs nginx with TLS on port in front of upstream.
func startNginxTLS(t testing.TB, port uint16, certFile, keyFile string, upstream uint16) {
	t.Helper()
	startNginxTLSConf(t, nginxTLSConf, port, certFile, keyFile, upstream)
}

// startNginxTLSConf is startNginxTLS with another configuration template.
func startNginxTLSConf(t testing.TB, tmpl string, port uint16, certFile, keyFile string, upstream uint16) {
	t.Helper()
	bin := testenv.Tool(t, "nginx")
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(tmpl, dir, port, certFile, keyFile, upstream)), 0o600); err != nil {
		t.Fatal(err)
	}
	run(t, bin, "-c", conf, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	waitPort(t, int(port), "nginx")
}

// waitTLSAttached waits until the exporter has attached probes for library
// in at least n processes.
func (h *harness) waitTLSAttached(library string, n float64) {
	h.t.Helper()
	labels := map[string]string{"library": library, "status": "attached"}
	deadline := time.Now().Add(30 * time.Second)
	for h.sum("autoglm_exporter_tls_processes", labels) < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("TLS probes for %s attached in %g processes, want %g", library, h.sum("autoglm_exporter_tls_processes", labels), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkTLSWorkload runs the workload over HTTPS twice, over keep-alive
// connections and over a fresh connection per request, and checks the
// exporter counted every request exactly from the decrypted plaintext.
func checkTLSWorkload(t *testing.T, h *harness, port uint16) {
	t.Helper()
	base := "https://" + testenv.Addr(int(port))
	conf := &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}} //nolint:gosec // the test's own self-signed certificate
	for _, tr := range []*http.Transport{
		{TLSClientConfig: conf, MaxIdleConnsPerHost: 2, DisableCompression: true},
		{TLSClientConfig: conf, DisableKeepAlives: true, DisableCompression: true},
	} {
		got := workloadWith(t, base, tr)
		tr.CloseIdleConnections()
		if got[200] != 50 || got[503] != 5 || got[404] != 5 {
			t.Fatalf("server answered %v", got)
		}
	}
	h.waitObserved(120)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{sli.HTTPDuration, nil, 120},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: "/v1/embeddings", sli.LabelStatus: "200"}, 10},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: "/v1/chat/completions", sli.LabelStatus: "200", sli.LabelErrorType: ""}, 60},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "/v1/models/{model}", sli.LabelStatus: "200"}, 30},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "503", sli.LabelErrorType: "503"}, 10},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "404", sli.LabelErrorType: ""}, 10},
		{sli.HTTPDuration, map[string]string{sli.LabelPort: strconv.Itoa(int(port))}, 120},
		{sli.GenAIDuration, map[string]string{sli.LabelOperation: "chat", sli.LabelModel: "glm-4"}, 60},
		{sli.GenAITTFT, map[string]string{sli.LabelRoute: "/v1/chat/completions", sli.LabelModel: "glm-4"}, 20},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "input", sli.LabelModel: "glm-4"}, 60 * 11},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "output", sli.LabelModel: "glm-4"}, 2 * (20*3 + 10*4)},
		{sli.HTTPActive, nil, 0},
		{"autoglm_exporter_parse_errors_total", nil, 0},
		{"autoglm_exporter_events_lost_total", map[string]string{"reason": "ringbuf_full"}, 0},
		{"autoglm_exporter_events_lost_total", map[string]string{"reason": "map_full"}, 0},
		{"autoglm_exporter_events_lost_total", map[string]string{"reason": "tls_no_socket"}, 0},
	} {
		if got := h.sum(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	if got := h.sum("autoglm_exporter_tls_events_total", map[string]string{"kind": "plaintext"}); got == 0 {
		t.Error("no plaintext events from the TLS probes")
	}
}

// tlsHarness starts an exporter for port whose TLS server is already up
// and waits for its probes.
func tlsHarness(t *testing.T, port uint16, library string, processes float64) *harness {
	h := start(t, port, true)
	h.waitTLSAttached(library, processes)
	return h
}

func TestTLSGoServer(t *testing.T) {
	testenv.Root(t)
	cert, key := selfSigned(t, t.TempDir())
	port := startGoTLSServer(t, cert, key, "")
	checkTLSWorkload(t, tlsHarness(t, port, "go", 1), port)
}

// TestTLSGoServerStripped covers binaries built without DWARF and symbol
// table (-s -w): functions from .gopclntab, field offsets from the Go version.
func TestTLSGoServerStripped(t *testing.T) {
	testenv.Root(t)
	cert, key := selfSigned(t, t.TempDir())
	port := startGoTLSServer(t, cert, key, "-s -w")
	checkTLSWorkload(t, tlsHarness(t, port, "go", 1), port)
}

func TestTLSPythonServer(t *testing.T) {
	testenv.Root(t)
	cert, key := selfSigned(t, t.TempDir())
	port := startPythonServer(t, cert, key)
	checkTLSWorkload(t, tlsHarness(t, port, "openssl", 1), port)
}

// TestTLSNginx starts nginx (two workers, TLS, proxying to the Go server)
// after the exporter: its first connection makes the exporter find the
// master and both workers, which hold the listening socket, and probe them.
func TestTLSNginx(t *testing.T) {
	testenv.Root(t)
	cert, key := selfSigned(t, t.TempDir())
	port := uint16(testenv.FreePort(t))
	h := start(t, port, true)
	startNginxTLS(t, port, cert, key, startGoServer(t))
	h.waitTLSAttached("openssl", 3)
	checkTLSWorkload(t, h, port)
}
