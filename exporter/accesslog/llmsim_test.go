package accesslog

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
	"github.com/open-autoglm/autoglm-monitor/internal/config"
	"github.com/open-autoglm/autoglm-monitor/internal/llmsim"
)

// documentedFields loads the exporter block README.md gives for the
// simulator's log through the real configuration loader, so the documented
// block is the one tested.
func documentedFields(t *testing.T) map[string]string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## The simulator's access log")
	if !ok {
		t.Fatal("README.md has no section on the simulator's access log")
	}
	_, block, ok := strings.Cut(section, "```yaml\n")
	if !ok {
		t.Fatal("the simulator section of README.md has no yaml block")
	}
	block, _, _ = strings.Cut(block, "```")
	path := filepath.Join(t.TempDir(), "autoglm.yml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatalf("the README's configuration block does not load: %v", err)
	}
	al := cfg.Exporter.AccessLog
	if cfg.Exporter.Source != config.SourceAccessLog || al.Format != FormatJSON || len(al.Fields) == 0 {
		t.Fatalf("README block: source %q format %q fields %v", cfg.Exporter.Source, al.Format, al.Fields)
	}
	return al.Fields
}

// TestSimulatorAccessLog follows the simulator's own access log while the
// load generator runs (injected errors and streams included), once with the
// default JSON mapping and once with README.md's block, and checks the
// requests against the load generator's summary.
func TestSimulatorAccessLog(t *testing.T) {
	const (
		model      = "m-sim"
		maxTokens  = 4
		promptToks = 16
		count      = 240
		fakePort   = 9999 // Options.ServerPort, used where the log has no server_port
	)
	logPath := filepath.Join(t.TempDir(), "llmsim-access.log")
	sim, err := llmsim.NewServer(llmsim.Options{
		Pacing: llmsim.Pacing{TTFTMedian: 3 * time.Millisecond, TTFTSigma: 0.1, TokenMin: time.Millisecond,
			TokenMax: 2 * time.Millisecond, CompletionMedian: 4, CompletionSigma: 0.1, MaxCompletionTokens: 64},
		Seed: 7, AccessLog: logPath,
		Schedule: &llmsim.Schedule{Phases: []llmsim.Phase{
			{Name: "errs", Duration: time.Hour, ErrorRatio: 0.2, StatusCodes: []int{500, 503, 429}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	defer func() {
		hs.Close()
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	}()
	simPort := uint16(hs.Listener.Addr().(*net.TCPAddr).Port)

	type key struct {
		path   string
		status int
	}
	type seen struct {
		counts  map[key]int64
		streams int64
	}
	mappings := []struct {
		name   string
		fields map[string]string
		tokens bool
		port   uint16
	}{
		{"default mapping", nil, false, fakePort},
		{"README mapping", documentedFields(t), true, simPort},
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var (
		mu      sync.Mutex
		wg      sync.WaitGroup
		results = make([]seen, len(mappings))
		sources = make([]*Source, len(mappings))
	)
	for i, m := range mappings {
		src, err := New(Options{Path: logPath, Format: FormatJSON, Fields: m.fields, FromStart: true, ServerPort: fakePort})
		if err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
		src.poll = 20 * time.Millisecond
		sources[i] = src
		results[i].counts = map[key]int64{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := src.Run(ctx, func(r *traffic.Request) {
				if err := checkSimRequest(r, m.tokens, m.port, model, maxTokens, promptToks); err != nil {
					t.Errorf("%s: %v: %+v", m.name, err, r)
				}
				mu.Lock()
				defer mu.Unlock()
				results[i].counts[key{r.Path, r.Status}]++
				if r.Streaming {
					results[i].streams++
				}
			})
			if err != nil {
				t.Errorf("%s: %v", m.name, err)
			}
		}()
	}

	sum, err := llmsim.Run(ctx, llmsim.LoadOptions{Target: hs.URL, Mode: llmsim.ModeClosed, Concurrency: 4, Count: count,
		KeepAlive: true, StreamRatio: 0.5, MaxTokens: maxTokens, PromptTokens: promptToks, Models: []string{model},
		Seed: 13, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Responses != count || sum.Streams == 0 || len(sum.ByStatus) < 2 {
		t.Fatalf("load generator: %d responses, %d streams, statuses %v (errors %v); want %d responses with streams and errors",
			sum.Responses, sum.Streams, sum.ByStatus, sum.Errors, count)
	}
	want := map[key]int64{}
	for route, m := range sum.ByRoute {
		for code, n := range m {
			c, err := strconv.Atoi(code)
			if err != nil {
				t.Fatal(err)
			}
			want[key{route, c}] = n
		}
	}
	equal := func(s seen) bool {
		if len(s.counts) != len(want) || s.streams != sum.Streams {
			return false
		}
		for k, n := range want {
			if s.counts[k] != n {
				return false
			}
		}
		return true
	}
	// The simulator flushes its log within a fifth of a second; the sources poll every 20ms.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		mu.Lock()
		done := equal(results[0]) && equal(results[1])
		snapshot := fmt.Sprintf("%+v", results)
		mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log sources saw %s; load generator got %v with %d streams", snapshot, want, sum.Streams)
		}
	}
	cancel()
	wg.Wait()
	for i, src := range sources {
		if got := testutil.ToFloat64(src.m.requests); got != count {
			t.Errorf("%s: requests_total %g, want %d", mappings[i].name, got, count)
		}
		if got := testutil.ToFloat64(src.m.lines); got != count {
			t.Errorf("%s: lines_total %g, want %d (no line may be rejected)", mappings[i].name, got, count)
		}
	}
}

// checkSimRequest checks one request read from the simulator's log against
// what the simulator must have done for the load generator's requests.
func checkSimRequest(r *traffic.Request, tokens bool, port uint16, model string, maxTokens, promptTokens int64) error {
	switch {
	case r.Method == "" || !strings.HasPrefix(r.Path, "/v1/"):
		return fmt.Errorf("method %q path %q", r.Method, r.Path)
	case !r.Client.IsLoopback():
		return fmt.Errorf("client %s is not loopback", r.Client)
	case r.ServerPort != port:
		return fmt.Errorf("server port %d, want %d", r.ServerPort, port)
	case r.End.Before(r.Start) || time.Since(r.End) > time.Minute || r.End.After(time.Now().Add(time.Second)):
		return fmt.Errorf("implausible times %s .. %s", r.Start, r.End)
	case r.ResponseBodySize <= 0:
		return fmt.Errorf("response size %d", r.ResponseBodySize)
	case r.Method == http.MethodPost && r.RequestBodySize <= 0:
		return fmt.Errorf("request size %d on a POST", r.RequestBodySize)
	case r.Path != llmsim.RouteModels && r.Model != model:
		return fmt.Errorf("model %q, want %q", r.Model, model)
	}
	if r.Streaming != !r.FirstToken.IsZero() {
		return fmt.Errorf("streaming %v but first token %s", r.Streaming, r.FirstToken)
	}
	if r.Streaming && (r.Status != http.StatusOK || r.FirstToken.Before(r.Start) || r.FirstToken.After(r.End)) {
		return fmt.Errorf("stream with status %d or first token outside the request", r.Status)
	}
	wantIn, wantOut := int64(-1), int64(-1)
	if tokens && r.Status == http.StatusOK {
		switch r.Path {
		case llmsim.RouteChat, llmsim.RouteCompletions, llmsim.RouteGenerate:
			wantIn, wantOut = promptTokens, maxTokens
		case llmsim.RouteEmbeddings:
			wantIn = promptTokens
		}
	}
	if r.InputTokens != wantIn || r.OutputTokens != wantOut {
		return fmt.Errorf("tokens %d/%d, want %d/%d", r.InputTokens, r.OutputTokens, wantIn, wantOut)
	}
	return nil
}
