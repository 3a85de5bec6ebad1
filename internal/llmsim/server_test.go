package llmsim

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func newTestServer(t *testing.T, o Options) (*Server, *httptest.Server) {
	t.Helper()
	if o.Seed == 0 {
		o.Seed = 1
	}
	s, err := NewServer(o)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(s.Handler())
	t.Cleanup(hs.Close)
	return s, hs
}

func post(t *testing.T, url, body string) *http.Response {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

type usage struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
	TotalTokens      int `json:"total_tokens"`
}

type chunk struct {
	Model   string `json:"model"`
	Object  string `json:"object"`
	Choices []struct {
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usage `json:"usage"`
}

// splitEvents checks the exact SSE framing ("data: <payload>\n\n" only) and
// returns the payloads.
func splitEvents(t *testing.T, body string) []string {
	t.Helper()
	if !strings.HasSuffix(body, "\n\n") {
		t.Fatalf("stream does not end with a blank line: %q", body[max(0, len(body)-40):])
	}
	var out []string
	for _, ev := range strings.Split(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		payload, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(payload, "\n") {
			t.Fatalf("event %q is not a single 'data: ' line", ev)
		}
		out = append(out, payload)
	}
	return out
}

func TestStreamFormat(t *testing.T) {
	prompt := strings.Repeat("x", 40) // 10 tokens
	tests := []struct {
		name        string
		route       string
		always      bool
		body        string
		wantUsage   bool
		wantObject  string
		wantChunks  int
		wantPrompts int
	}{
		{"chat with include_usage", RouteChat, false,
			`{"model":"glm-4","messages":[{"role":"user","content":"` + prompt + `"}],"max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}`,
			true, "chat.completion.chunk", 7, 10},
		{"chat without usage", RouteChat, false,
			`{"model":"glm-4","messages":[{"role":"user","content":"` + prompt + `"}],"max_tokens":5,"stream":true}`,
			false, "chat.completion.chunk", 5, 10},
		{"chat usage always", RouteChat, true,
			`{"model":"glm-4","messages":[{"role":"system","content":"` + prompt + `"},{"role":"user","content":[{"type":"text","text":"` + prompt + `"}]}],"max_completion_tokens":3,"stream":true}`,
			true, "chat.completion.chunk", 3, 20},
		{"completions", RouteCompletions, false,
			`{"model":"glm-4","prompt":"` + prompt + `","max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}`,
			true, "text_completion", 4, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, hs := newTestServer(t, Options{NoPacing: true, AlwaysUsage: tc.always})
			resp := post(t, hs.URL+tc.route, tc.body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
				t.Fatalf("content type %q", ct)
			}
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			events := splitEvents(t, string(b))
			if last := events[len(events)-1]; last != "[DONE]" {
				t.Fatalf("last event %q, want [DONE]", last)
			}
			var content, usages int
			for i, ev := range events[:len(events)-1] {
				var c chunk
				if err := json.Unmarshal([]byte(ev), &c); err != nil {
					t.Fatalf("event %d is not JSON: %v", i, err)
				}
				if c.Model != "glm-4" || c.Object != tc.wantObject {
					t.Fatalf("event %d: model %q object %q", i, c.Model, c.Object)
				}
				if c.Usage != nil {
					usages++
					if i != len(events)-2 {
						t.Fatalf("usage in event %d, want it right before [DONE]", i)
					}
					want := usage{tc.wantPrompts, tc.wantChunks, tc.wantPrompts + tc.wantChunks}
					if *c.Usage != want {
						t.Fatalf("usage %+v, want %+v", *c.Usage, want)
					}
					continue
				}
				content++
				if c.Choices[0].Delta.Content+c.Choices[0].Text == "" {
					t.Fatalf("event %d carries no token", i)
				}
				final := c.Choices[0].FinishReason != nil
				if final != (content == tc.wantChunks) {
					t.Fatalf("event %d: finish_reason set=%v at token %d of %d", i, final, content, tc.wantChunks)
				}
			}
			if content != tc.wantChunks {
				t.Fatalf("%d token events, want %d", content, tc.wantChunks)
			}
			if (usages == 1) != tc.wantUsage || usages > 1 {
				t.Fatalf("%d usage chunks, want usage=%v", usages, tc.wantUsage)
			}
		})
	}
}

func TestStreamPacedAndFlushedPerEvent(t *testing.T) {
	_, hs := newTestServer(t, Options{Pacing: Pacing{
		TTFTMedian: 100 * time.Millisecond, TokenMin: 30 * time.Millisecond, TokenMax: 30 * time.Millisecond,
	}})
	t0 := time.Now()
	resp := post(t, hs.URL+RouteChat, `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"stream":true}`)
	br := bufio.NewReader(resp.Body)
	var arrivals []time.Duration
	for {
		line, err := br.ReadString('\n')
		if strings.HasPrefix(line, "data: ") {
			arrivals = append(arrivals, time.Since(t0))
		}
		if err != nil {
			break
		}
	}
	if len(arrivals) != 6 { // 5 tokens + [DONE]
		t.Fatalf("%d events, want 6", len(arrivals))
	}
	if arrivals[0] < 100*time.Millisecond {
		t.Fatalf("first token after %s, want >= 100ms", arrivals[0])
	}
	// Four 30ms gaps between tokens: the first event must arrive well before the last.
	if gap := arrivals[4] - arrivals[0]; gap < 100*time.Millisecond {
		t.Fatalf("tokens arrived within %s, want them paced (~120ms): events are not flushed one by one", gap)
	}
}

func TestNonStreamingRoutes(t *testing.T) {
	tests := []struct {
		route, method, body string
		check               func(t *testing.T, m map[string]any)
	}{
		{RouteChat, http.MethodPost, `{"model":"a-model","messages":[{"role":"user","content":"12345678"}],"max_tokens":6}`,
			func(t *testing.T, m map[string]any) {
				wantUsage(t, m, 2, 6)
				if m["model"] != "a-model" || m["object"] != "chat.completion" {
					t.Fatalf("model/object %v/%v", m["model"], m["object"])
				}
			}},
		{RouteCompletions, http.MethodPost, `{"model":"b","prompt":["1234","5678"],"max_tokens":2}`,
			func(t *testing.T, m map[string]any) { wantUsage(t, m, 2, 2) }},
		{RouteGenerate, http.MethodPost, `{"inputs":"12345678","parameters":{"max_new_tokens":9}}`,
			func(t *testing.T, m map[string]any) {
				d := m["details"].(map[string]any)
				if d["generated_tokens"] != 9.0 || d["prefill_tokens"] != 2.0 {
					t.Fatalf("details %v", d)
				}
			}},
		{RouteEmbeddings, http.MethodPost, `{"model":"emb","input":"1234567890123"}`,
			func(t *testing.T, m map[string]any) {
				u := m["usage"].(map[string]any)
				if u["prompt_tokens"] != 4.0 || m["model"] != "emb" {
					t.Fatalf("usage %v model %v", u, m["model"])
				}
			}},
		{RouteModels, http.MethodGet, "",
			func(t *testing.T, m map[string]any) {
				if len(m["data"].([]any)) != len(DefaultModels) {
					t.Fatalf("models %v", m["data"])
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.route, func(t *testing.T) {
			s, hs := newTestServer(t, Options{NoPacing: true})
			req, _ := http.NewRequest(tc.method, hs.URL+tc.route, strings.NewReader(tc.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("status %d content type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
			}
			tc.check(t, m)
			if got := s.Requests(tc.route, 200); got != 1 {
				t.Fatalf("server counted %v requests, want 1", got)
			}
		})
	}
}

func wantUsage(t *testing.T, m map[string]any, prompt, completion float64) {
	t.Helper()
	u, ok := m["usage"].(map[string]any)
	if !ok {
		t.Fatalf("no usage in %v", m)
	}
	if u["prompt_tokens"] != prompt || u["completion_tokens"] != completion || u["total_tokens"] != prompt+completion {
		t.Fatalf("usage %v, want %v+%v", u, prompt, completion)
	}
}

func TestBadRequests(t *testing.T) {
	s, hs := newTestServer(t, Options{NoPacing: true})
	tests := []struct {
		method, path, body string
		route              string
		want               int
	}{
		{http.MethodPost, RouteChat, `{not json`, RouteChat, 400},
		{http.MethodPost, RouteChat, `{"messages":[]}`, RouteChat, 400},
		{http.MethodGet, RouteChat, ``, RouteChat, 405},
		{http.MethodPost, "/v1/unknown", `{}`, routeOther, 404},
	}
	for _, tc := range tests {
		req, _ := http.NewRequest(tc.method, hs.URL+tc.path, strings.NewReader(tc.body))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e struct {
			Error struct{ Message string } `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if resp.StatusCode != tc.want || err != nil || e.Error.Message == "" {
			t.Errorf("%s %s: status %d (want %d), error body %v %+v", tc.method, tc.path, resp.StatusCode, tc.want, err, e)
		}
	}
	for _, c := range []struct {
		route string
		code  int
		want  float64
	}{{RouteChat, 400, 2}, {RouteChat, 405, 1}, {routeOther, 404, 1}, {RouteChat, 200, 0}} {
		if got := s.Requests(c.route, c.code); got != c.want {
			t.Errorf("%s %d: counted %v, want %v", c.route, c.code, got, c.want)
		}
	}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct{ ns atomic.Int64 }

func (c *fakeClock) Now() time.Time { return time.Unix(0, c.ns.Load()) }
func (c *fakeClock) Set(offset time.Duration) {
	c.ns.Store(int64(time.Unix(1_700_000_000, 0).Add(offset).UnixNano()))
}

func TestFaultScheduleAppliesAtOffsets(t *testing.T) {
	clock := &fakeClock{}
	clock.Set(0)
	sched := &Schedule{Phases: []Phase{
		{Name: "burst", Start: 10 * time.Second, Duration: 5 * time.Second, ErrorRatio: 1, StatusCodes: []int{503}},
		{Name: "slow", Start: 20 * time.Second, Duration: 5 * time.Second, AddedLatency: 400 * time.Millisecond},
	}}
	s, hs := newTestServer(t, Options{NoPacing: true, Schedule: sched, Now: clock.Now})
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`
	tests := []struct {
		at         time.Duration
		wantStatus int
		slow       bool
	}{
		{0, 200, false}, {9999 * time.Millisecond, 200, false}, {10 * time.Second, 503, false},
		{14 * time.Second, 503, false}, {15 * time.Second, 200, false}, {21 * time.Second, 200, true},
		{25 * time.Second, 200, false},
	}
	for _, tc := range tests {
		clock.Set(tc.at)
		t0 := time.Now()
		resp := post(t, hs.URL+RouteChat, body)
		_, _ = io.Copy(io.Discard, resp.Body)
		took := time.Since(t0)
		if resp.StatusCode != tc.wantStatus {
			t.Errorf("at %s: status %d, want %d", tc.at, resp.StatusCode, tc.wantStatus)
		}
		if slow := took >= 400*time.Millisecond; slow != tc.slow {
			t.Errorf("at %s: took %s, want slow=%v", tc.at, took, tc.slow)
		}
	}
	if got := s.Requests(RouteChat, 503); got != 2 {
		t.Errorf("server counted %v injected 503s, want 2", got)
	}
}

func TestScheduleActiveRepeat(t *testing.T) {
	s := Schedule{Repeat: time.Minute, Phases: []Phase{{Name: "a", Start: 10 * time.Second, Duration: 10 * time.Second}}}
	for _, tc := range []struct {
		at   time.Duration
		want int
	}{{5 * time.Second, 0}, {15 * time.Second, 1}, {75 * time.Second, 1}, {80 * time.Second, 0}, {-time.Second, 0}} {
		if got := len(s.Active(tc.at, nil)); got != tc.want {
			t.Errorf("at %s: %d phases active, want %d", tc.at, got, tc.want)
		}
	}
}

func TestParsePhase(t *testing.T) {
	p, err := ParsePhase("name=burst,start=1m,duration=30s,errors=0.25,codes=500/429,latency=200ms,ttft=3,token=2")
	if err != nil {
		t.Fatal(err)
	}
	want := Phase{Name: "burst", Start: time.Minute, Duration: 30 * time.Second, ErrorRatio: 0.25,
		StatusCodes: []int{500, 429}, AddedLatency: 200 * time.Millisecond, TTFTMultiplier: 3, TokenMultiplier: 2}
	if p.Name != want.Name || p.Start != want.Start || p.Duration != want.Duration || p.ErrorRatio != want.ErrorRatio ||
		len(p.StatusCodes) != 2 || p.StatusCodes[1] != 429 || p.AddedLatency != want.AddedLatency ||
		p.TTFTMultiplier != 3 || p.TokenMultiplier != 2 {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	for _, bad := range []string{
		"start=1m", "start=1m,duration=0s", "start=1m,duration=1s,errors=2,codes=500",
		"start=1m,duration=1s,errors=0.5", "start=1m,duration=1s,errors=0.5,codes=200",
		"start=1m,duration=1s,colour=red", "start", "start=abc,duration=1s",
	} {
		if _, err := ParsePhase(bad); err == nil {
			t.Errorf("ParsePhase(%q) accepted", bad)
		}
	}
}

func TestLoadSchedule(t *testing.T) {
	dir := t.TempDir()
	write := func(name, s string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yml", "repeat: 10m\nphases:\n  - name: burst\n    start: 60s\n    duration: 90s\n    error_ratio: 0.3\n    status_codes: [500, 503, 429]\n  - name: slow\n    start: 3m\n    duration: 2m\n    added_latency: 400ms\n    ttft_multiplier: 3\n")
	s, err := LoadSchedule(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Phases) != 2 || s.Repeat != 10*time.Minute || s.Phases[1].Start != 3*time.Minute || s.Phases[0].StatusCodes[2] != 429 {
		t.Fatalf("parsed %+v", s)
	}
	for name, body := range map[string]string{
		"unknown.yml":  "phases:\n  - start: 1s\n    duration: 1s\n    eror_ratio: 0.5\n",
		"invalid.yml":  "phases:\n  - start: 1s\n    duration: -1s\n",
		"notyaml.yml":  "phases: [",
		"badcodes.yml": "phases:\n  - start: 1s\n    duration: 1s\n    error_ratio: 0.5\n",
	} {
		if _, err := LoadSchedule(write(name, body)); err == nil {
			t.Errorf("%s accepted", name)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("%s: error %q does not name the file", name, err)
		}
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

func TestFaultAbortsStreams(t *testing.T) {
	sched := &Schedule{Phases: []Phase{{Name: "crash", Duration: time.Hour, AbortRatio: 1}}}
	s, hs := newTestServer(t, Options{NoPacing: true, Schedule: sched})
	sum, err := Run(t.Context(), LoadOptions{Target: hs.URL, Mode: ModeClosed, Concurrency: 2, Count: 20, KeepAlive: true,
		Routes: []RouteWeight{{RouteChat, 1}}, StreamRatio: 1, MaxTokens: 10, Seed: 1, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Responses != 20 || sum.ByStatus["200"] != 20 || sum.Errors["unexpected_eof"]+sum.Errors["stream_incomplete"] != 20 {
		t.Fatalf("summary %+v: want 20 responses, all cut off", sum)
	}
	if sum.Streams != 0 {
		t.Fatalf("%d streams counted as complete", sum.Streams)
	}
	if got := counterValue(s.faultAborts); got != 20 {
		t.Fatalf("server counted %v aborts, want 20", got)
	}
	waitCounts(t, s, sum.ByRoute)
}
