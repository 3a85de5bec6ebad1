package llmsim

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/open-autoglm/autoglm-monitor/internal/sli"
)

// TestEngineQueuesBeyondCapacity: with two sequence slots, the third and
// fourth concurrent requests wait, their time to first token includes the
// wait, and the gauges say so while it lasts.
func TestEngineQueuesBeyondCapacity(t *testing.T) {
	s, err := NewServer(Options{Engine: EngineOptions{MaxSeqs: 2},
		Pacing: Pacing{TTFTMedian: 200 * time.Millisecond, TTFTSigma: 0.01, TokenMin: time.Millisecond, TokenMax: time.Millisecond,
			CompletionMedian: 4, CompletionSigma: 0.01, MaxCompletionTokens: 8}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	var wg sync.WaitGroup
	durations := make([]time.Duration, 4)
	for i := range durations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			resp, err := http.Post(srv.URL+RouteChat, "application/json", strings.NewReader(`{"model":"m","max_tokens":2,"messages":[{"role":"user","content":"hi"}]}`))
			if err != nil {
				t.Error(err)
				return
			}
			_ = resp.Body.Close()
			durations[i] = time.Since(start)
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	var waiting float64
	for time.Now().Before(deadline) && waiting == 0 {
		waiting = testutil.ToFloat64(s.eng.waitingG)
		time.Sleep(5 * time.Millisecond)
	}
	if waiting != 2 {
		t.Errorf("%s = %v while four requests share two slots, want 2", VLLMWaiting, waiting)
	}
	if running := testutil.ToFloat64(s.eng.runningG); running != 2 {
		t.Errorf("%s = %v, want 2", VLLMRunning, running)
	}
	wg.Wait()
	slow := 0
	for _, d := range durations {
		if d >= 350*time.Millisecond {
			slow++
		}
	}
	if slow < 2 {
		t.Errorf("durations %v: two requests should have waited for a slot (≥ 2 × 200ms)", durations)
	}
	if w, r := testutil.ToFloat64(s.eng.waitingG), testutil.ToFloat64(s.eng.runningG); w != 0 || r != 0 {
		t.Errorf("after the requests: waiting %v running %v, want 0 and 0", w, r)
	}
	if n := testutil.CollectAndCount(s.eng.ttft); n != 1 {
		t.Errorf("ttft histogram series %d", n)
	}
}

// TestEnginePreemptsWhenTheCacheIsFull: two sequences whose generated
// tokens overflow a small KV cache preempt each other, and every token
// still arrives.
func TestEnginePreemptsWhenTheCacheIsFull(t *testing.T) {
	e := newEngine(EngineOptions{MaxSeqs: 4, KVCacheTokens: 20}, func() float64 { return 1 })
	ctx := context.Background()
	a, b := e.start(ctx, "m", 8), e.start(ctx, "m", 8)
	var wg sync.WaitGroup
	for _, s := range []*seq{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 8 {
				if !s.grow(ctx) {
					t.Error("grow failed")
					return
				}
			}
			s.done()
		}()
	}
	wg.Wait()
	if n := testutil.ToFloat64(e.preempt); n < 1 {
		t.Errorf("%s = %v after 32 tokens in a 20-token cache, want ≥ 1", VLLMPreemptions, n)
	}
	if e.running != 0 || e.kvUsed != 0 || len(e.queue) != 0 {
		t.Errorf("engine not empty after both sequences: running %d kv %d queue %d", e.running, e.kvUsed, len(e.queue))
	}
}

// TestCapacityFaultShrinksTheEngine: capacity_ratio 0.25 leaves a quarter
// of the slots.
func TestCapacityFaultShrinksTheEngine(t *testing.T) {
	now := time.Unix(1000, 0)
	s, err := NewServer(Options{Engine: EngineOptions{MaxSeqs: 8}, Now: func() time.Time { return now },
		Schedule: &Schedule{Phases: []Phase{{Name: "gpu-lost", Start: time.Minute, Duration: time.Minute, CapacityRatio: 0.25}}}})
	if err != nil {
		t.Fatal(err)
	}
	if seqs, _ := s.eng.capacity(); seqs != 8 {
		t.Errorf("before the fault: %d slots", seqs)
	}
	now = now.Add(90 * time.Second)
	if seqs, kv := s.eng.capacity(); seqs != 2 || kv != 2048*2 {
		t.Errorf("during the fault: %d slots, %d KV tokens; want 2 and 4096", seqs, kv)
	}
	if _, err := ParsePhase("start=0s,duration=1m,capacity=1.5"); err == nil {
		t.Error("capacity 1.5 accepted")
	}
}

// The engine metrics carry the names the dashboards and rules read
// (internal/sli), which are vLLM's.
func TestEngineMetricNamesAreVLLMs(t *testing.T) {
	for got, want := range map[string]string{VLLMRunning: sli.VLLMRunning, VLLMWaiting: sli.VLLMWaiting, VLLMKVCache: sli.VLLMKVCache,
		VLLMGPUCache: sli.VLLMGPUCache, VLLMPreemptions: sli.VLLMPreemptions, VLLMTTFT: sli.VLLMTTFT} {
		if got != want {
			t.Errorf("simulator exposes %s, rules read %s", got, want)
		}
	}
}
