package llmsim

import (
	"context"
	"math"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// EngineOptions size the simulated serving engine. Like vLLM's scheduler it
// runs at most MaxSeqs sequences at once (--max-num-seqs) and keeps their
// tokens in a KV cache of KVCacheTokens; a request that finds neither a
// free slot nor room for its prompt waits in a FIFO queue, so its time to
// first token includes the wait. A sequence whose next token does not fit
// is preempted: it gives its slot and cache back and queues again (vLLM
// recomputes it), which counts in vllm:num_preemptions_total.
type EngineOptions struct {
	// MaxSeqs bounds running sequences (0: 256, vLLM's default).
	MaxSeqs int
	// KVCacheTokens is the KV cache size in tokens (0: 2,048 per sequence slot).
	KVCacheTokens int
}

// vLLM's metric names (its /metrics, V1 engine, with the V0 name of the KV
// cache gauge too, as dashboards of either version read one or the other).
const (
	VLLMRunning     = "vllm:num_requests_running"
	VLLMWaiting     = "vllm:num_requests_waiting"
	VLLMKVCache     = "vllm:kv_cache_usage_perc"
	VLLMGPUCache    = "vllm:gpu_cache_usage_perc"
	VLLMPreemptions = "vllm:num_preemptions_total"
	VLLMTTFT        = "vllm:time_to_first_token_seconds"
)

// vLLM's time-to-first-token buckets.
var vllmTTFTBuckets = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80, 160, 640, 2560}

// engine is the scheduler of the simulated model server.
type engine struct {
	maxSeqs, kvTokens int
	// scale returns the share of capacity left by the fault schedule (1: all).
	scale func() float64

	mu      sync.Mutex
	running int
	kvUsed  int
	queue   []*waiter

	runningG, waitingG, kvG, gpuCacheG *prometheus.GaugeVec
	preempt                            *prometheus.CounterVec
	ttft                               *prometheus.HistogramVec
}

type waiter struct {
	tokens int
	ready  chan struct{}
}

func newEngine(o EngineOptions, scale func() float64) *engine {
	if o.MaxSeqs <= 0 {
		o.MaxSeqs = 256
	}
	if o.KVCacheTokens <= 0 {
		o.KVCacheTokens = 2048 * o.MaxSeqs
	}
	labels := []string{"model_name"}
	return &engine{
		maxSeqs: o.MaxSeqs, kvTokens: o.KVCacheTokens, scale: scale,
		runningG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: VLLMRunning,
			Help: "Number of requests in model execution batches."}, labels),
		waitingG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: VLLMWaiting,
			Help: "Number of requests waiting to be processed."}, labels),
		kvG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: VLLMKVCache,
			Help: "KV-cache usage. 1 means 100 percent usage."}, labels),
		gpuCacheG: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: VLLMGPUCache,
			Help: "GPU KV-cache usage. 1 means 100 percent usage (the name of vLLM's V0 engine)."}, labels),
		preempt: prometheus.NewCounterVec(prometheus.CounterOpts{Name: VLLMPreemptions,
			Help: "Cumulative number of preemptions from the engine."}, labels),
		ttft: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: VLLMTTFT,
			Help: "Histogram of time to first token in seconds.", Buckets: vllmTTFTBuckets}, labels),
	}
}

func (e *engine) collectors() []prometheus.Collector {
	return []prometheus.Collector{e.runningG, e.waitingG, e.kvG, e.gpuCacheG, e.preempt, e.ttft}
}

// capacity is the slot and cache size left by the fault schedule.
func (e *engine) capacity() (seqs, kv int) {
	f := e.scale()
	return max(1, int(math.Ceil(float64(e.maxSeqs)*f))), max(1, int(math.Ceil(float64(e.kvTokens)*f)))
}

// publishLocked writes the gauges; e.mu is held. model is the engine's
// served model name (vLLM's model_name label): one engine serves every
// model name the simulator accepts, as one vLLM instance serves one model.
func (e *engine) publishLocked(model string) {
	_, kv := e.capacity()
	usage := math.Min(1, float64(e.kvUsed)/float64(kv))
	e.runningG.WithLabelValues(model).Set(float64(e.running))
	e.waitingG.WithLabelValues(model).Set(float64(len(e.queue)))
	e.kvG.WithLabelValues(model).Set(usage)
	e.gpuCacheG.WithLabelValues(model).Set(usage)
}

// fitsLocked reports whether a sequence holding tokens can run now.
func (e *engine) fitsLocked(tokens int) bool {
	seqs, kv := e.capacity()
	// A prompt larger than the whole cache still runs alone, as vLLM would
	// reject it up front; the simulator rather serves it.
	return e.running < seqs && (e.kvUsed+tokens <= kv || e.running == 0)
}

// admit waits for a slot and room for tokens (FIFO); false when ctx ended.
func (e *engine) admit(ctx context.Context, model string, tokens int) bool {
	e.mu.Lock()
	if len(e.queue) == 0 && e.fitsLocked(tokens) {
		e.running++
		e.kvUsed += tokens
		e.publishLocked(model)
		e.mu.Unlock()
		return true
	}
	w := &waiter{tokens: tokens, ready: make(chan struct{})}
	e.queue = append(e.queue, w)
	e.publishLocked(model)
	e.mu.Unlock()
	select {
	case <-w.ready:
		return true
	case <-ctx.Done():
		e.mu.Lock()
		defer e.mu.Unlock()
		for i, q := range e.queue {
			if q == w {
				e.queue = append(e.queue[:i], e.queue[i+1:]...)
				e.publishLocked(model)
				return false
			}
		}
		// Admitted while giving up: hand the slot back.
		e.releaseLocked(model, tokens)
		return false
	}
}

// releaseLocked frees a sequence's slot and cache and admits waiters in order.
func (e *engine) releaseLocked(model string, tokens int) {
	e.running--
	e.kvUsed -= tokens
	e.wakeLocked()
	e.publishLocked(model)
}

func (e *engine) wakeLocked() {
	for len(e.queue) > 0 && e.fitsLocked(e.queue[0].tokens) {
		w := e.queue[0]
		e.queue = e.queue[1:]
		e.running++
		e.kvUsed += w.tokens
		close(w.ready)
	}
}

func (e *engine) release(model string, tokens int) {
	e.mu.Lock()
	e.releaseLocked(model, tokens)
	e.mu.Unlock()
}

// seq is one admitted sequence.
type seq struct {
	e      *engine
	model  string
	tokens int
}

// start admits a request with its prompt; nil when ctx ended while queued.
func (e *engine) start(ctx context.Context, model string, prompt int) *seq {
	if !e.admit(ctx, model, prompt) {
		return nil
	}
	return &seq{e: e, model: model, tokens: prompt}
}

// grow adds one generated token to the sequence's cache. When it does not
// fit the sequence is preempted: it frees everything, queues again and is
// readmitted with all its tokens (recomputation). False when ctx ended.
func (s *seq) grow(ctx context.Context) bool {
	e := s.e
	e.mu.Lock()
	_, kv := e.capacity()
	if e.kvUsed+1 <= kv || e.running == 1 {
		s.tokens++
		e.kvUsed++
		e.publishLocked(s.model)
		e.mu.Unlock()
		return true
	}
	e.preempt.WithLabelValues(s.model).Inc()
	e.releaseLocked(s.model, s.tokens)
	e.mu.Unlock()
	s.tokens++
	if !e.admit(ctx, s.model, s.tokens) {
		s.tokens = -1 // nothing held any more
		return false
	}
	return true
}

// done frees the sequence (idempotent through tokens = -1).
func (s *seq) done() {
	if s == nil || s.tokens < 0 {
		return
	}
	s.e.release(s.model, s.tokens)
	s.tokens = -1
}
