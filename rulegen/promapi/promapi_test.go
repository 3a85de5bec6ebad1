package promapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	promconfig "github.com/prometheus/common/config"
)

func TestChunksCoverEveryStepOnceAndRespectThePointLimit(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name       string
		end        time.Time
		step, size time.Duration
		chunks     int
	}{
		{"six weeks of minutes in days", start.Add(42 * 24 * time.Hour), time.Minute, 24 * time.Hour, 43},
		{"chunk larger than the point limit", start.Add(42 * 24 * time.Hour), time.Minute, 30 * 24 * time.Hour, 6},
		{"shorter than one chunk", start.Add(time.Hour), time.Minute, 24 * time.Hour, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cs := Chunks(start, tc.end, tc.step, tc.size)
			if len(cs) != tc.chunks {
				t.Fatalf("chunks = %d, want %d", len(cs), tc.chunks)
			}
			next := start
			for _, c := range cs {
				if !c.Start.Equal(next) {
					t.Fatalf("chunk starts at %s, want %s (gap or overlap)", c.Start, next)
				}
				if pts := int(c.End.Sub(c.Start)/tc.step) + 1; pts > MaxPointsPerQuery {
					t.Fatalf("chunk has %d points", pts)
				}
				next = c.End.Add(tc.step)
			}
			if last := cs[len(cs)-1].End; !last.Equal(tc.end) {
				t.Fatalf("last chunk ends at %s, want %s", last, tc.end)
			}
		})
	}
}

// fakeAPI serves query_range for one series with value = minute index,
// NaN at minute 7, and can fail or stall the first requests.
type fakeAPI struct {
	mu       sync.Mutex
	inflight int
	maxIn    int
	calls    atomic.Int32
	fail     int32 // first n calls fail with 503
	stall    time.Duration
	badData  bool
	auth     string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	if f.auth != "" && r.Header.Get("Authorization") != f.auth {
		http.Error(w, "unauthorized", http.StatusUnauthorized)
		return
	}
	f.mu.Lock()
	f.inflight++
	if f.inflight > f.maxIn {
		f.maxIn = f.inflight
	}
	f.mu.Unlock()
	defer func() { f.mu.Lock(); f.inflight--; f.mu.Unlock() }()
	time.Sleep(5 * time.Millisecond)
	if f.stall > 0 {
		select {
		case <-time.After(f.stall):
		case <-r.Context().Done():
			return
		}
	}
	if f.badData {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"parse error at char 3"}`)
		return
	}
	if n <= f.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"error","errorType":"unavailable","error":"overloaded"}`)
		return
	}
	_ = r.ParseForm()
	start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
	end, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
	step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
	var vals [][]any
	for ts := start; ts <= end; ts += step {
		v := strconv.FormatFloat(math.Mod(ts/60, 1e6), 'f', -1, 64)
		if int(ts/60)%1440 == 7 {
			v = "NaN"
		}
		vals = append(vals, []any{ts, v})
	}
	res := map[string]any{"status": "success", "data": map[string]any{"resultType": "matrix", "result": []any{
		map[string]any{"metric": map[string]string{"job": "j", "http_route": "/v1/a"}, "values": vals},
		map[string]any{"metric": map[string]string{"job": "j", "http_route": "/v1/b"}, "values": vals[:1]},
	}}}
	_ = json.NewEncoder(w).Encode(res)
}

func newReader(t *testing.T, url string, o Options) (*Reader, *prometheus.Counter) {
	t.Helper()
	qe := prometheus.NewCounter(prometheus.CounterOpts{Name: "q"})
	o.URL, o.QueryErrors = url, qe
	if o.Step == 0 {
		o.Step = time.Minute
	}
	if o.ChunkSize == 0 {
		o.ChunkSize = 6 * time.Hour
	}
	if o.Timeout == 0 {
		o.Timeout = 5 * time.Second
	}
	o.InitialBackoff = time.Millisecond
	r, err := New(o, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return r, &qe
}

func TestHistoryMergesChunksInParallelAndDropsNaN(t *testing.T) {
	api := &fakeAPI{fail: 2}
	srv := httptest.NewServer(api)
	defer srv.Close()
	r, qe := newReader(t, srv.URL, Options{Parallelism: 2, Retries: 3, MaxSeries: 1})
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	end := start.Add(2 * 24 * time.Hour)
	series, err := r.History(context.Background(), "job_route:x:rate5m", start, end)
	if err != nil {
		t.Fatal(err)
	}
	if len(series) != 1 || series[0].Labels["http_route"] != "/v1/a" {
		t.Fatalf("series = %v (max_series must keep the first one only)", len(series))
	}
	s := series[0]
	want := int(end.Sub(start)/time.Minute) + 1
	if len(s.Points)+s.Dropped != want || s.Dropped != 2 {
		t.Fatalf("points = %d, dropped = %d, want %d in all with 2 NaN", len(s.Points), s.Dropped, want)
	}
	for i := 1; i < len(s.Points); i++ {
		if !s.Points[i].T.After(s.Points[i-1].T) {
			t.Fatalf("points not strictly increasing at %d", i)
		}
	}
	if api.maxIn > 2 {
		t.Errorf("%d queries in flight, parallelism is 2", api.maxIn)
	}
	if got := testutil.ToFloat64(*qe); got != 2 {
		t.Errorf("query errors = %g, want 2 (the two 503s that were retried)", got)
	}
}

func TestHistoryFailures(t *testing.T) {
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		api  *fakeAPI
		o    Options
		url  string
		want string
	}{
		{"down", nil, Options{Retries: 1}, "http://127.0.0.1:1", "connection refused"},
		{"slow", &fakeAPI{stall: time.Second}, Options{Retries: 1, Timeout: 50 * time.Millisecond}, "", "timed out after 50ms"},
		{"retries exhausted", &fakeAPI{fail: 100}, Options{Retries: 2}, "", "503"},
		{"bad query is not retried", &fakeAPI{badData: true}, Options{Retries: 5}, "", "parse error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := tc.url
			if tc.api != nil {
				srv := httptest.NewServer(tc.api)
				defer srv.Close()
				url = srv.URL
			}
			tc.o.Parallelism = 1
			r, _ := newReader(t, url, tc.o)
			_, err := r.History(context.Background(), "up", start, start.Add(time.Hour))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "query up from 2026-10-01T00:00:00Z") {
				t.Errorf("err %q does not say which query and range failed", err)
			}
			if tc.name == "bad query is not retried" && tc.api.calls.Load() != 1 {
				t.Errorf("bad query sent %d times", tc.api.calls.Load())
			}
		})
	}
}

func TestHistorySendsCredentials(t *testing.T) {
	api := &fakeAPI{auth: "Bearer tok3n"}
	srv := httptest.NewServer(api)
	defer srv.Close()
	cfg := promconfig.DefaultHTTPClientConfig
	cfg.Authorization = &promconfig.Authorization{Type: "Bearer", Credentials: "tok3n"}
	rt, err := promconfig.NewRoundTripperFromConfig(cfg, "test")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	r, _ := newReader(t, srv.URL, Options{RoundTripper: rt, Parallelism: 1})
	if _, err := r.History(context.Background(), "up", start, start.Add(time.Hour)); err != nil {
		t.Fatalf("with credentials: %v", err)
	}
	r, _ = newReader(t, srv.URL, Options{Parallelism: 1})
	_, err = r.History(context.Background(), "up", start, start.Add(time.Hour))
	if err == nil {
		t.Fatal("request without credentials succeeded")
	}
	if strings.Contains(err.Error(), "tok3n") {
		t.Fatalf("error leaks the token: %v", err)
	}
}
