package llmsim

import (
	"bufio"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/open-autoglm/autoglm-monitor/internal/testenv"
)

func countLines(t *testing.T, path string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if strings.TrimSpace(sc.Text()) != "" {
			n++
		}
	}
	return n - 1 // header
}

func TestLoadTraceRealData(t *testing.T) {
	recs, err := LoadTrace("")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join("trace", "*.csv.gz"))
	want := 0
	for _, f := range files {
		want += countLines(t, f)
	}
	// The same files given as a directory read the same.
	fromDir, err := LoadTrace("trace")
	if err != nil {
		t.Fatal(err)
	}
	if len(fromDir) != len(recs) {
		t.Fatalf("trace directory: %d records, embedded: %d", len(fromDir), len(recs))
	}
	if len(recs) != want || want == 0 {
		t.Fatalf("parsed %d records, the files hold %d", len(recs), want)
	}
	services := map[string]int{}
	for i, r := range recs {
		services[r.Service]++
		if i > 0 && r.Offset < recs[i-1].Offset {
			t.Fatalf("record %d out of order", i)
		}
		if r.ContextTokens < 0 || r.GeneratedTokens < 0 {
			t.Fatalf("record %d: negative tokens", i)
		}
	}
	if recs[0].Offset != 0 {
		t.Fatalf("first offset %s, want 0", recs[0].Offset)
	}
	if span := recs[len(recs)-1].Offset; span < 50*time.Minute || span > 70*time.Minute {
		t.Fatalf("trace spans %s, want about an hour", span)
	}
	if services["conv"] == 0 || services["code"] == 0 {
		t.Fatalf("services %v, want conv and code", services)
	}
}

func TestReadTraceErrors(t *testing.T) {
	for _, tc := range []struct{ name, data, want string }{
		{"header", "a,b,c\n", "header"},
		{"timestamp", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,1,2\nyesterday,1,2\n", "t.csv:3: bad TIMESTAMP"},
		{"tokens", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,x,2\n", "t.csv:2: bad ContextTokens"},
		{"fields", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.97,1\n", "wrong number of fields"},
		{"empty", "TIMESTAMP,ContextTokens,GeneratedTokens\n", "no records"},
	} {
		_, err := ReadTrace(strings.NewReader(tc.data), "t.csv", "x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.want)
		}
	}
	recs, err := ReadTrace(strings.NewReader("\ufeffTIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,10,2\n2023-11-16 18:17:04.0319600,5,1\n"), "t.csv", "x")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].Offset != 52*time.Millisecond || recs[1].ContextTokens != 5 {
		t.Fatalf("records %+v", recs)
	}
}

// scrapeRequests reads autoglm_llmsim_requests_total from the server's exposition.
func scrapeRequests(t *testing.T, s *Server) map[string]map[string]int64 {
	t.Helper()
	mfs, err := s.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]int64{}
	for _, mf := range mfs {
		if mf.GetName() != "autoglm_llmsim_requests_total" {
			continue
		}
		vec, err := expfmt.ExtractSamples(&expfmt.DecodeOptions{Timestamp: model.Now()}, mf)
		if err != nil {
			t.Fatal(err)
		}
		for _, smp := range vec {
			route, status := string(smp.Metric["route"]), string(smp.Metric["status"])
			if out[route] == nil {
				out[route] = map[string]int64{}
			}
			out[route][status] = int64(smp.Value)
		}
	}
	return out
}

func equalCounts(a, b map[string]map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for r, m := range a {
		if len(m) != len(b[r]) {
			return false
		}
		for c, n := range m {
			if b[r][c] != n {
				return false
			}
		}
	}
	return true
}

func waitCounts(t *testing.T, s *Server, want map[string]map[string]int64) {
	t.Helper()
	var got map[string]map[string]int64
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = scrapeRequests(t, s); equalCounts(got, want) {
			return
		}
	}
	t.Fatalf("server counted %v, load generator got %v", got, want)
}

func TestLoadCountsMatchServer(t *testing.T) {
	clock := &fakeClock{}
	clock.Set(time.Minute) // inside the fault phase below
	tests := []struct {
		name string
		o    LoadOptions
		sent int64
	}{
		{"closed keep-alive", LoadOptions{Mode: ModeClosed, Concurrency: 8, Count: 400, StreamRatio: 0.5, KeepAlive: true, MaxTokens: 5}, 400},
		{"open new connections", LoadOptions{Mode: ModeOpen, Rate: 400, Duration: 500 * time.Millisecond, StreamRatio: 0.5, MaxTokens: 3}, 200},
		{"trace", LoadOptions{Mode: ModeTrace, Speed: 50, Count: 150, StreamRatio: 0.7, KeepAlive: true, MaxPromptTokens: 256}, 150},
	}
	trace, err := LoadTrace("")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sched := &Schedule{Phases: []Phase{{Name: "errs", Start: 0, Duration: time.Hour, ErrorRatio: 0.2, StatusCodes: []int{500, 429}}}}
			s, hs := newTestServer(t, Options{NoPacing: true, Schedule: sched, Now: clock.Now,
				Pacing: Pacing{MaxCompletionTokens: 50}})
			o := tc.o
			o.Target, o.Seed, o.Timeout = hs.URL, 7, 10*time.Second
			o.Trace = trace
			sum, err := Run(context.Background(), o)
			if err != nil {
				t.Fatal(err)
			}
			if sum.Sent != tc.sent || sum.Responses != tc.sent || len(sum.Errors) != 0 {
				t.Fatalf("sent %d responses %d errors %v, want %d each and no errors", sum.Sent, sum.Responses, sum.Errors, tc.sent)
			}
			if len(sum.ByRoute) < 3 || sum.ByStatus["500"] == 0 || sum.ByStatus["429"] == 0 || sum.ByStatus["200"] == 0 {
				t.Fatalf("expected a mix of routes and statuses, got %v / %v", sum.ByRoute, sum.ByStatus)
			}
			if sum.Streams == 0 || int(sum.Streams) != sum.TTFT.Count || sum.TTFT.P50 <= 0 || sum.TTFT.P99 > sum.Latency.Max {
				t.Fatalf("streams %d ttft %+v latency %+v", sum.Streams, sum.TTFT, sum.Latency)
			}
			waitCounts(t, s, sum.ByRoute)
		})
	}
}

func TestLoadAgainstScrapedMetrics(t *testing.T) {
	s, hs := newTestServer(t, Options{NoPacing: true})
	sum, err := Run(context.Background(), LoadOptions{Target: hs.URL, Mode: ModeClosed, Concurrency: 4, Count: 120, KeepAlive: true, Seed: 3, StreamRatio: 0.5})
	if err != nil {
		t.Fatal(err)
	}
	waitCounts(t, s, sum.ByRoute)
	total := int64(0)
	for _, m := range sum.ByRoute {
		for _, n := range m {
			total += n
		}
	}
	if total != 120 || sum.ByStatus["200"] != 120 {
		t.Fatalf("responses %v, want 120 OK", sum.ByStatus)
	}
}

func TestLoadErrorsWhenNothingListens(t *testing.T) {
	port := testenv.FreePort(t)
	sum, err := Run(context.Background(), LoadOptions{Target: "http://" + testenv.Addr(port), Mode: ModeClosed,
		Concurrency: 2, Count: 10, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Sent != 10 || sum.Responses != 0 || sum.Errors["connection_refused"] != 10 {
		t.Fatalf("summary %+v, want 10 connection_refused", sum)
	}
}

func TestLoadOptionsValidation(t *testing.T) {
	for _, o := range []LoadOptions{
		{Target: "localhost:1", Mode: ModeOpen, Rate: 1, Count: 1},
		{Target: "http://x", Mode: "burst", Count: 1},
		{Target: "http://x", Mode: ModeOpen, Rate: 0, Count: 1},
		{Target: "http://x", Mode: ModeClosed, Concurrency: 1},
		{Target: "http://x", Mode: ModeTrace, Speed: 1},
		{Target: "http://x", Mode: ModeOpen, Rate: 1, Count: 1, StreamRatio: 1.5},
		{Target: "http://x", Mode: ModeOpen, Rate: 1, Count: 1, Routes: []RouteWeight{{RouteChat, 0}}},
	} {
		if _, err := Run(context.Background(), o); err == nil {
			t.Errorf("options %+v accepted", o)
		}
	}
	if _, err := ParseRouteMix("/v1/chat/completions=3,/v1/nope=1"); err == nil {
		t.Error("unknown route accepted in mix")
	}
	mix, err := ParseRouteMix("/v1/chat/completions=3,/v1/embeddings=1")
	if err != nil || len(mix) != 2 || mix[0].Weight != 3 {
		t.Fatalf("mix %v err %v", mix, err)
	}
}

func TestJobBodyPromptTokens(t *testing.T) {
	// The server's token estimate must see exactly the prompt size the trace asked for.
	_, hs := newTestServer(t, Options{NoPacing: true})
	for _, route := range []string{RouteChat, RouteCompletions, RouteGenerate} {
		j := job{route: route, model: "m", promptTokens: 123, maxTokens: 4}
		resp := post(t, hs.URL+route, string(j.body()))
		var m struct {
			Usage   *usage `json:"usage"`
			Details *struct {
				Prefill int `json:"prefill_tokens"`
			} `json:"details"`
		}
		if err := jsonDecode(resp, &m); err != nil {
			t.Fatal(err)
		}
		got := 0
		if m.Usage != nil {
			got = m.Usage.PromptTokens
		} else if m.Details != nil {
			got = m.Details.Prefill
		}
		if got != 123 {
			t.Errorf("%s: server saw %d prompt tokens, want 123", route, got)
		}
	}
}
