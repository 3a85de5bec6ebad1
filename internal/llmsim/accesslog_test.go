package llmsim

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logLine is one access log line as the exporter's default JSON mapping
// (plus the token and stream keys) reads it.
type logLine struct {
	Time         string   `json:"time_iso8601"`
	Client       string   `json:"remote_addr"`
	ServerPort   int      `json:"server_port"`
	Method       string   `json:"method"`
	Path         string   `json:"uri"`
	Status       int      `json:"status"`
	Duration     float64  `json:"request_time"`
	TTFT         *float64 `json:"ttft"`
	RequestBytes *int64   `json:"request_length"`
	BodyBytes    *int64   `json:"body_bytes_sent"`
	Model        string   `json:"model"`
	InputTokens  *int64   `json:"input_tokens"`
	OutputTokens *int64   `json:"output_tokens"`
	Stream       *bool    `json:"stream"`
}

func readLogLines(t *testing.T, path string) []logLine {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []logLine
	for i, raw := range bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n")) {
		if len(raw) == 0 {
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		var l logLine
		if err := dec.Decode(&l); err != nil {
			t.Fatalf("line %d is not a valid log line: %v\n%s", i+1, err, raw)
		}
		lines = append(lines, l)
	}
	return lines
}

func quickPacing() Pacing {
	return Pacing{TTFTMedian: 3 * time.Millisecond, TTFTSigma: 0.1, TokenMin: time.Millisecond, TokenMax: 2 * time.Millisecond,
		CompletionMedian: 4, CompletionSigma: 0.1, MaxCompletionTokens: 64}
}

func TestAccessLogOneLinePerRequest(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	sim, err := NewServer(Options{Pacing: quickPacing(), Seed: 3, AccessLog: path, Schedule: &Schedule{Phases: []Phase{
		{Name: "errs", Duration: time.Hour, ErrorRatio: 0.2, StatusCodes: []int{500, 503, 429}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	began := time.Now()

	const model = "m-load"
	sum, err := Run(context.Background(), LoadOptions{Target: hs.URL, Mode: ModeClosed, Concurrency: 4, Count: 240,
		KeepAlive: true, StreamRatio: 0.5, MaxTokens: 4, PromptTokens: 16, Models: []string{model}, Seed: 9, Timeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Responses != 240 || sum.Streams == 0 {
		t.Fatalf("load generator: %d responses, %d streams (errors %v), want 240 and some streams", sum.Responses, sum.Streams, sum.Errors)
	}
	// Requests the load generator never sends: bad JSON, a wrong method and an unknown path.
	extra := []struct {
		method, path, body string
		status             int
	}{
		{http.MethodPost, RouteChat, `{"model":`, http.StatusBadRequest},
		{http.MethodGet, RouteEmbeddings, "", http.StatusMethodNotAllowed},
		{http.MethodPost, "/v1/nope", `{}`, http.StatusNotFound},
	}
	for _, x := range extra {
		req, err := http.NewRequest(x.method, hs.URL+x.path, strings.NewReader(x.body))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != x.status {
			t.Fatalf("%s %s: status %d, want %d", x.method, x.path, resp.StatusCode, x.status)
		}
	}
	hs.Close() // waits for every handler, so every line has been handed to the log
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	ended := time.Now()

	type key struct {
		path   string
		status int
	}
	want := map[key]int64{}
	for route, m := range sum.ByRoute {
		for code, n := range m {
			c, _ := strconv.Atoi(code)
			want[key{route, c}] += n
		}
	}
	for _, x := range extra {
		want[key{x.path, x.status}]++
	}
	wantModel := sum.Responses
	for _, n := range sum.ByRoute[RouteModels] {
		wantModel -= n
	}

	lines := readLogLines(t, path)
	got := map[key]int64{}
	var streams, withModel int64
	for i, l := range lines {
		got[key{l.Path, l.Status}]++
		end, err := time.Parse(time.RFC3339Nano, l.Time)
		if err != nil || !strings.Contains(l.Time, ".") || end.Before(began.Add(-time.Second)) || end.After(ended.Add(time.Second)) {
			t.Errorf("line %d: time %q is not a sub-second RFC 3339 time within the run (%v)", i+1, l.Time, err)
		}
		if l.Client != "127.0.0.1" || l.ServerPort != hs.Listener.Addr().(*net.TCPAddr).Port || l.Method == "" || l.Duration < 0 {
			t.Errorf("line %d: implausible %+v", i+1, l)
		}
		if l.BodyBytes == nil || *l.BodyBytes <= 0 || l.Stream == nil {
			t.Errorf("line %d: body bytes or stream flag missing: %+v", i+1, l)
		}
		if l.Model == model {
			withModel++
		}
		if l.Stream != nil && *l.Stream {
			streams++
			if l.TTFT == nil || *l.TTFT <= 0 || *l.TTFT > l.Duration {
				t.Errorf("line %d: stream without a plausible ttft (%v of %gs)", i+1, l.TTFT, l.Duration)
			}
		} else if l.TTFT != nil {
			t.Errorf("line %d: ttft on a non-stream", i+1)
		}
		ok := l.Status == http.StatusOK
		switch {
		case ok && (l.Path == RouteChat || l.Path == RouteCompletions || l.Path == RouteGenerate):
			if l.InputTokens == nil || *l.InputTokens != 16 || l.OutputTokens == nil || *l.OutputTokens != 4 {
				t.Errorf("line %d: tokens %v/%v, want the simulator's usage 16/4", i+1, l.InputTokens, l.OutputTokens)
			}
		case ok && l.Path == RouteEmbeddings:
			if l.InputTokens == nil || *l.InputTokens != 16 || l.OutputTokens != nil {
				t.Errorf("line %d: embedding tokens %v/%v, want 16 input only", i+1, l.InputTokens, l.OutputTokens)
			}
		default:
			if l.InputTokens != nil || l.OutputTokens != nil {
				t.Errorf("line %d: tokens on a request that produced none", i+1)
			}
		}
		if l.Method == http.MethodPost && l.Status != http.StatusMethodNotAllowed && (l.RequestBytes == nil || *l.RequestBytes <= 0) {
			t.Errorf("line %d: request bytes missing on a POST", i+1)
		}
	}
	if n := int64(len(lines)); n != sum.Responses+int64(len(extra)) {
		t.Errorf("%d lines, want one per request: %d", n, sum.Responses+int64(len(extra)))
	}
	if len(got) != len(want) {
		t.Errorf("path/status pairs in the log %v, want %v", got, want)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("%s %d: %d lines, want %d", k.path, k.status, got[k], n)
		}
	}
	if streams != sum.Streams {
		t.Errorf("%d stream lines, load generator saw %d streams", streams, sum.Streams)
	}
	if withModel != wantModel {
		t.Errorf("%d lines name model %q, want %d", withModel, model, wantModel)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// Prompt text is "abc abc ...", completion text cycles through words.
	for _, text := range []string{"abc abc", "answers"} {
		if bytes.Contains(raw, []byte(text)) {
			t.Errorf("access log contains request or response text %q", text)
		}
	}
}

// waitForLines polls the file (as the exporter does) until it holds n lines.
func waitForLines(t *testing.T, path string, n int) []logLine {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if c := bytes.Count(b, []byte("\n")); c >= n {
			return readLogLines(t, path)
		} else if time.Now().After(deadline) {
			t.Fatalf("%s holds %d lines after 2s, want %d: lines must reach the file while the server runs", path, c, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAccessLogLiveAndReopen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	// A line from before start must be kept: the file is appended to.
	if err := os.WriteFile(path, []byte("{\"old\":1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sim, err := NewServer(Options{NoPacing: true, Seed: 1, AccessLog: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := sim.Close(); err != nil {
			t.Error(err)
		}
	})
	hs := httptest.NewServer(sim.Handler())
	t.Cleanup(hs.Close)

	resp := post(t, hs.URL+RouteChat, `{"model":"m1","max_tokens":3,"stream":true}`)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	if !bytes.HasPrefix(b, []byte("{\"old\":1}\n")) {
		t.Fatalf("existing content was not kept: %q", b)
	}
	if err := os.WriteFile(path, b[len("{\"old\":1}\n"):], 0o600); err != nil {
		t.Fatal(err)
	}
	lines := waitForLines(t, path, 1)
	if l := lines[0]; l.Model != "m1" || l.Stream == nil || !*l.Stream || l.OutputTokens == nil || *l.OutputTokens != 3 {
		t.Fatalf("stream line %+v", l)
	}

	// logrotate: rename, then ask for a reopen.
	rotated := filepath.Join(dir, "access.log.1")
	if err := os.Rename(path, rotated); err != nil {
		t.Fatal(err)
	}
	resp = post(t, hs.URL+RouteEmbeddings, `{"model":"m2","input":"abcd"}`)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if l := waitForLines(t, rotated, 2)[1]; l.Model != "m2" || l.Path != RouteEmbeddings {
		t.Fatalf("before reopen the line belongs in the rotated file, got %+v", l)
	}
	if err := sim.ReopenAccessLog(); err != nil {
		t.Fatal(err)
	}
	resp = post(t, hs.URL+RouteCompletions, `{"model":"m3","prompt":"abcd","max_tokens":2}`)
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	if l := waitForLines(t, path, 1)[0]; l.Model != "m3" || l.Status != http.StatusOK || l.InputTokens == nil || *l.InputTokens != 1 {
		t.Fatalf("after reopen: %+v", l)
	}
}

func TestAccessLogOpenError(t *testing.T) {
	_, err := NewServer(Options{AccessLog: filepath.Join(t.TempDir(), "missing-dir", "access.log")})
	if err == nil || !strings.Contains(err.Error(), "access log") {
		t.Fatalf("error %v, want one naming the access log", err)
	}
}

// A stream the fault schedule cuts off is still logged, like nginx logs a
// response whose connection broke: status 200, the bytes written so far, no usage.
func TestAccessLogAbortedStreams(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	sim, err := NewServer(Options{NoPacing: true, Seed: 1, AccessLog: path,
		Schedule: &Schedule{Phases: []Phase{{Name: "crash", Duration: time.Hour, AbortRatio: 1}}}})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(sim.Handler())
	sum, err := Run(t.Context(), LoadOptions{Target: hs.URL, Mode: ModeClosed, Concurrency: 2, Count: 10, KeepAlive: true,
		Routes: []RouteWeight{{RouteChat, 1}}, StreamRatio: 1, MaxTokens: 10, Seed: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hs.Close()
	if err := sim.Close(); err != nil {
		t.Fatal(err)
	}
	if sum.Responses != 10 || sum.Streams != 0 {
		t.Fatalf("summary %+v: want 10 responses, all cut off", sum)
	}
	lines := readLogLines(t, path)
	if len(lines) != 10 {
		t.Fatalf("%d lines, want 10", len(lines))
	}
	for i, l := range lines {
		if l.Status != http.StatusOK || l.Stream == nil || !*l.Stream || l.TTFT == nil || l.OutputTokens != nil ||
			l.BodyBytes == nil || *l.BodyBytes <= 0 {
			t.Errorf("line %d: %+v, want a 200 stream with ttft, some bytes and no usage", i+1, l)
		}
	}
}
