package exporter

import (
	"bufio"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/sli"
	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

// harness is a running exporter observing one server.
type harness struct {
	t    testing.TB
	exp  *Exporter
	reg  *prometheus.Registry
	base string // where clients send requests
	ebpf bool
}

// start runs an exporter for serverPort, with the real eBPF source when
// useEBPF is set (root only), else the user-space proxy.
func start(t testing.TB, serverPort uint16, useEBPF bool) *harness {
	t.Helper()
	return startWith(t, serverPort, useEBPF, testEndpoints)
}

// testEndpoints are the metrics.endpoints of start.
const testEndpoints = `[/v1/chat/completions, /v1/embeddings, "/v1/models/{model}"]`

// startWith is start with the given metrics.endpoints (a YAML list).
func startWith(t testing.TB, serverPort uint16, useEBPF bool, endpoints string) *harness {
	t.Helper()
	return startConfig(t, serverPort, useEBPF, endpoints, "")
}

// startConfig is startWith with more keys of the exporter: section (indented YAML).
func startConfig(t testing.TB, serverPort uint16, useEBPF bool, endpoints, exporterYAML string) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte("metrics:\n  endpoints: "+endpoints+"\nexporter:\n  ports: ["+
		strconv.Itoa(int(serverPort))+"]\n"+exporterYAML), "test.yml")
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, reg: prometheus.NewPedanticRegistry(), ebpf: useEBPF}
	o := Options{Config: cfg, Registerer: h.reg}
	if useEBPF {
		testenv.Root(t)
		h.base = "http://" + testenv.Addr(int(serverPort))
	} else {
		p := newProxySource(t, serverPort)
		o.Events = p
		h.base = "http://" + p.Addr()
	}
	h.exp = runExporter(t, o)
	return h
}

// runExporter runs an exporter built from o until the test ends.
func runExporter(t testing.TB, o Options) *Exporter {
	t.Helper()
	exp, err := New(o)
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
	return exp
}

// waitObserved waits until the exporter has measured n requests, then a
// moment longer so that any extra (wrong) request would show up too.
func (h *harness) waitObserved(n uint64) {
	h.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for h.exp.Observed() < n {
		if time.Now().After(deadline) {
			h.t.Fatalf("observed %d requests, want %d", h.exp.Observed(), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
}

// sum adds up the sample counts (histograms) or values (counters, gauges)
// of every series of name whose labels include want.
func (h *harness) sum(name string, want map[string]string) float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatalf("gather: %v", err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for k, v := range want {
				if !hasLabel(m, k, v) {
					continue series
				}
			}
			switch {
			case m.Histogram != nil:
				total += float64(m.Histogram.GetSampleCount())
			case m.Counter != nil:
				total += m.Counter.GetValue()
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			}
		}
	}
	return total
}

func hasLabel(m *dto.Metric, k, v string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == k {
			return l.GetValue() == v
		}
	}
	return v == ""
}

// workload sends a fixed mix over keep-alive connections and returns how many responses of each status came back.
func workload(t testing.TB, base string) map[int]int {
	return workloadWith(t, base, &http.Transport{MaxIdleConnsPerHost: 2, DisableCompression: true})
}

// workloadWith sends the mix of workload through tr.
func workloadWith(t testing.TB, base string, tr *http.Transport) map[int]int {
	t.Helper()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	got := map[int]int{}
	do := func(method, path, body string) {
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		drain(resp.Body)
		got[resp.StatusCode]++
	}
	// Clients often put the (large) messages before the model.
	messages := `{"messages":[{"role":"user","content":"` + strings.Repeat("private prompt text ", 40) + `"}],`
	for i := 0; i < 20; i++ {
		do("POST", "/v1/chat/completions", messages+`"model":"glm-4"}`)
	}
	for i := 0; i < 10; i++ {
		do("POST", "/v1/chat/completions", messages+`"stream":true,"model":"glm-4"}`)
	}
	for i := 0; i < 15; i++ {
		do("GET", "/v1/models/glm-4", "")
	}
	for i := 0; i < 5; i++ {
		do("POST", "/v1/embeddings", `{"input":"x","model":"emb-1"}`)
	}
	for i := 0; i < 5; i++ {
		do("GET", "/fail", "")
		do("GET", "/nope", "")
	}
	return got
}

func checkWorkload(t *testing.T, h *harness) {
	got := workload(t, h.base)
	if got[200] != 50 || got[503] != 5 || got[404] != 5 {
		t.Fatalf("server answered %v", got)
	}
	h.waitObserved(60)
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{sli.HTTPDuration, nil, 60},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: "/v1/embeddings", sli.LabelStatus: "200"}, 5},
		{sli.GenAIDuration, map[string]string{sli.LabelOperation: "embeddings", sli.LabelModel: "emb-1"}, 5},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "POST", sli.LabelRoute: "/v1/chat/completions", sli.LabelStatus: "200", sli.LabelErrorType: ""}, 30},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "/v1/models/{model}", sli.LabelStatus: "200"}, 15},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "503", sli.LabelErrorType: "503"}, 5},
		{sli.HTTPDuration, map[string]string{sli.LabelMethod: "GET", sli.LabelRoute: "other", sli.LabelStatus: "404", sli.LabelErrorType: ""}, 5},
		{sli.GenAIDuration, map[string]string{sli.LabelOperation: "chat", sli.LabelModel: "glm-4"}, 30},
		{sli.GenAITTFT, map[string]string{sli.LabelRoute: "/v1/chat/completions", sli.LabelModel: "glm-4"}, 10},
		{sli.GenAITPOT, map[string]string{sli.LabelModel: "glm-4"}, 10},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "input", sli.LabelModel: "glm-4"}, 30 * 11},
		{sli.GenAITokens, map[string]string{sli.LabelTokenType: "output", sli.LabelModel: "glm-4"}, 20*3 + 10*4},
		{sli.ClientRequests, map[string]string{sli.LabelClient: "127.0.0.0/24"}, 60},
		{sli.HTTPActive, nil, 0},
		{"autoglm_exporter_parse_errors_total", nil, 0},
	} {
		if got := h.sum(tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %g, want %g", tc.name, tc.labels, got, tc.want)
		}
	}
	if h.ebpf {
		for _, reason := range []string{"ringbuf_full", "map_full", "malformed"} {
			if got := h.sum("autoglm_exporter_events_lost_total", map[string]string{"reason": reason}); got != 0 {
				t.Errorf("lost events (%s) = %g, want 0", reason, got)
			}
		}
	}
}

func TestPipelineGoServer(t *testing.T) { checkWorkload(t, start(t, startGoServer(t), false)) }

func TestPipelinePythonServer(t *testing.T) { checkWorkload(t, start(t, startPythonServer(t), false)) }

func TestEBPFGoServer(t *testing.T) {
	testenv.Root(t)
	checkWorkload(t, start(t, startGoServer(t), true))
}

func TestEBPFPythonServer(t *testing.T) {
	testenv.Root(t)
	checkWorkload(t, start(t, startPythonServer(t), true))
}

func TestAdversarialProxy(t *testing.T) { adversarial(t, false) }

func TestAdversarialEBPF(t *testing.T) {
	testenv.Root(t)
	adversarial(t, true)
}

// adversarial throws non-HTTP and hostile bytes at a server, then checks the
// exporter survived, counted them, and still measures real requests exactly.
func adversarial(t *testing.T, useEBPF bool) {
	h := start(t, startGoServer(t), useEBPF)
	addr := strings.TrimPrefix(h.base, "http://")
	send := func(payload []byte, halfClose bool) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(payload); err != nil {
			return
		}
		if halfClose {
			_ = c.(*net.TCPConn).CloseWrite()
		}
		_, _ = bufio.NewReader(c).ReadString(0)
	}
	// A TLS ClientHello, from a real TLS client talking to a plain HTTP port.
	func() {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		_ = tls.Client(c, &tls.Config{ServerName: "x", InsecureSkipVerify: true}).Handshake() //nolint:gosec // the handshake is meant to fail
	}()
	send([]byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00"), false)
	send([]byte("\x00\x01\x02\x03garbage\xff\xfe\r\n\r\n"), false)
	send([]byte("GET /v1/models/x HTTP/1.1\r\nHost: a\r\nX-Huge: "+strings.Repeat("h", 64<<10)+"\r\n\r\n"), false)
	// Half-closed: the request is complete, the client stops sending and still reads the answer.
	send([]byte("GET /v1/models/half HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), true)

	// Thousands of short connections, a few at a time.
	const short = 2000
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for i := 0; i < short; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			send([]byte("GET /v1/models/short HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"), false)
		}()
	}
	wg.Wait()

	// 2000 short + 1 half-closed.
	h.waitObserved(short + 1)
	if got := h.sum(sli.HTTPDuration, map[string]string{sli.LabelRoute: "/v1/models/{model}", sli.LabelStatus: "200"}); got != short+1 {
		t.Errorf("model route requests = %g, want %d", got, short+1)
	}
	// The eBPF source does not hand the parser TLS records of a process
	// whose TLS library it probes (here the test binary's crypto/tls): their
	// plaintext comes from the probes, and this handshake never has any.
	wantNotHTTP := 2.0
	if useEBPF {
		wantNotHTTP = 1
	}
	if got := h.sum("autoglm_exporter_parse_errors_total", map[string]string{"reason": "not_http"}); got != wantNotHTTP {
		t.Errorf("not_http errors = %g, want %g (TLS, garbage)", got, wantNotHTTP)
	}
	// The HTTP/2 preface is followed, and the HTTP/1.1 server's answer to it is no HTTP/2 frame.
	if got := h.sum("autoglm_exporter_parse_errors_total", map[string]string{"reason": "h2_protocol"}); got != 1 {
		t.Errorf("h2_protocol errors = %g, want 1 (preface answered in HTTP/1.1)", got)
	}
	huge := h.sum("autoglm_exporter_parse_errors_total", map[string]string{"reason": "header_too_large"}) +
		h.sum("autoglm_exporter_parse_errors_total", map[string]string{"reason": "truncated"})
	if huge != 1 {
		t.Errorf("huge header counted %g times as header_too_large or truncated, want 1", huge)
	}
	deadline := time.Now().Add(10 * time.Second)
	for h.sum("autoglm_exporter_parser_connections", nil) != 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if got := h.sum("autoglm_exporter_parser_connections", nil); got != 0 {
		t.Errorf("%g connections still tracked after all closed", got)
	}
	if got := h.sum(sli.HTTPActive, nil); got != 0 {
		t.Errorf("active requests = %g after all finished", got)
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if ms.HeapInuse > 256<<20 {
		t.Errorf("heap in use %d MiB after the adversarial run", ms.HeapInuse>>20)
	}
	// Real traffic is still measured exactly afterwards.
	before := h.exp.Observed()
	c := &http.Client{Timeout: 5 * time.Second}
	for i := 0; i < 3; i++ {
		resp, err := c.Get(h.base + "/v1/models/after")
		if err != nil {
			t.Fatal(err)
		}
		drain(resp.Body)
	}
	h.waitObserved(before + 3)
	if got := h.exp.Observed(); got != before+3 {
		t.Errorf("observed %d new requests, want 3", got-before)
	}
}
