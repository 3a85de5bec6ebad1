// Package engine delivers the receiver's outbox: one worker per channel
// (worker.go: what is due, token buckets, backlog digests), the outcome of
// every attempt (outcome.go: in-flight marks, backoff persisted in the
// store, audit), and escalation and expiry (escalate.go: the Escalator seam,
// fallback deliveries, dead letters).
package engine

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/redact"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Policy is the retry policy.
type Policy struct {
	InitialBackoff time.Duration
	MaxBackoff     time.Duration
	// Jitter spreads each backoff by ±Jitter (a fraction).
	Jitter float64
	// ExpireAfter turns deliveries older than this into dead letters.
	ExpireAfter time.Duration
}

// Backoff returns the wait after the n-th consecutive failure; r in [0,1) picks the jitter.
func (p Policy) Backoff(n int, r float64) time.Duration {
	d := p.InitialBackoff
	for i := 1; i < n && d < p.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, p.MaxBackoff)
	return time.Duration(float64(d) * (1 + p.Jitter*(2*r-1)))
}

// Options configure an Engine.
type Options struct {
	Store      store.Store
	Logger     *slog.Logger
	Now        func() time.Time
	Policy     Policy
	Registerer prometheus.Registerer
	Redactor   *redact.Redactor
	// Escalator decides escalations (default RouteEscalator).
	Escalator Escalator
	// Tick bounds how long a worker sleeps before re-checking timers (default 1s).
	Tick time.Duration
	// SendTimeout bounds one Notify call (default 30s).
	SendTimeout time.Duration
	// MaxDigest caps how many notifications one digest carries (default 50).
	MaxDigest int
	// MaxRound caps how many deliveries one worker round marks in flight and
	// sends before recording the outcomes (default 16). It bounds how many
	// messages a crash can leave uncertain, and so how many may be sent twice.
	MaxRound int
	// Rand returns numbers in [0,1) for jitter (default math/rand).
	Rand func() float64
	// LeaseEvery is how often a shared store's channel leases are renewed
	// (default 5s; keep it well below the store's lease).
	LeaseEvery time.Duration
	// PollEvery is how often a shared store is polled for deliveries other
	// replicas accepted on this replica's channels (default 200ms).
	PollEvery time.Duration
	// Decorate, when set, prepares the context of each send over channel for
	// the deliveries in it (action links, the people an escalation step pages).
	Decorate func(ctx context.Context, channel string, ds []*store.Delivery) context.Context
}

type chanState struct {
	notify.Integration
	limiter *rate.Limiter
	// broken holds the last configuration error; the channel is not retried until reload.
	broken string
}

type queue struct {
	pending []*store.Delivery
	wake    chan struct{}
	running bool
}

// Engine delivers pending notifications.
type Engine struct {
	o      Options
	m      *metrics
	mu     sync.Mutex
	chans  map[string]*chanState
	queues map[string]*queue
	ctx    context.Context
	wg     sync.WaitGroup
	// sh is set when the store is shared by several replicas (shared.go).
	sh *sharedState
}

// New creates an engine; call SetChannels and Start.
func New(o Options) (*Engine, error) {
	if o.Store == nil {
		return nil, errors.New("engine needs a store")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Tick <= 0 {
		o.Tick = time.Second
	}
	if o.SendTimeout <= 0 {
		o.SendTimeout = 30 * time.Second
	}
	if o.MaxDigest <= 0 {
		o.MaxDigest = 50
	}
	if o.MaxRound <= 0 {
		o.MaxRound = 16
	}
	if o.Escalator == nil {
		o.Escalator = RouteEscalator{}
	}
	if o.Rand == nil {
		o.Rand = rand.Float64
	}
	if o.Policy.InitialBackoff <= 0 {
		o.Policy.InitialBackoff = time.Second
	}
	if o.Policy.MaxBackoff < o.Policy.InitialBackoff {
		o.Policy.MaxBackoff = o.Policy.InitialBackoff
	}
	if o.Policy.ExpireAfter <= 0 {
		o.Policy.ExpireAfter = time.Hour
	}
	if o.LeaseEvery <= 0 {
		o.LeaseEvery = 5 * time.Second
	}
	if o.PollEvery <= 0 {
		o.PollEvery = 200 * time.Millisecond
	}
	e := &Engine{o: o, chans: map[string]*chanState{}, queues: map[string]*queue{}}
	if sh, ok := o.Store.(store.Shared); ok {
		e.sh = &sharedState{st: sh, held: map[string]bool{}, done: map[uint64]time.Time{}}
	}
	m, err := newMetrics(o.Registerer, e)
	if err != nil {
		return nil, err
	}
	e.m = m
	return e, nil
}

// SetChannels installs (or, on reload, replaces) the channels. Configuration
// errors are forgotten, so broken channels are tried again. Token buckets of
// channels whose limit did not change are kept.
func (e *Engine) SetChannels(chs []notify.Integration) {
	e.mu.Lock()
	next := make(map[string]*chanState, len(chs))
	for _, c := range chs {
		cs := &chanState{Integration: c, limiter: Limiter(c.PerMinute)}
		if old, ok := e.chans[c.Name]; ok && old.PerMinute == c.PerMinute {
			cs.limiter = old.limiter
		}
		next[c.Name] = cs
	}
	e.chans = next
	for name := range next {
		e.queueLocked(name)
	}
	for _, q := range e.queues {
		poke(q)
	}
	e.mu.Unlock()
}

// SetPolicy replaces the retry policy after a reload; scheduled retries keep their time.
func (e *Engine) SetPolicy(p Policy) {
	if p.InitialBackoff <= 0 || p.MaxBackoff < p.InitialBackoff || p.ExpireAfter <= 0 {
		return
	}
	e.mu.Lock()
	e.o.Policy = p
	e.mu.Unlock()
}

func (e *Engine) policy() Policy {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.o.Policy
}

// SetRedactor replaces the redactor after a reload.
func (e *Engine) SetRedactor(r *redact.Redactor) {
	e.mu.Lock()
	e.o.Redactor = r
	e.mu.Unlock()
}

func (e *Engine) redact(s string) string {
	e.mu.Lock()
	r := e.o.Redactor
	e.mu.Unlock()
	return r.String(s)
}

func poke(q *queue) {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (e *Engine) queueLocked(name string) *queue {
	q, ok := e.queues[name]
	if !ok {
		q = &queue{wake: make(chan struct{}, 1)}
		e.queues[name] = q
	}
	if !q.running && e.ctx != nil {
		q.running = true
		e.wg.Add(1)
		go e.worker(e.ctx, name, q)
	}
	return q
}

// Start loads the outbox and starts the workers. Deliveries found in flight
// were perhaps sent just before a crash; they are audited as uncertain and sent again
// (nothing accepted is ever lost).
func (e *Engine) Start(ctx context.Context) error {
	if e.sh != nil {
		e.mu.Lock()
		e.ctx = ctx
		e.mu.Unlock()
		return e.startShared(ctx)
	}
	pending, err := e.o.Store.Pending()
	if err != nil {
		return err
	}
	var changes []store.Change
	var recs []*store.Record
	now := e.o.Now()
	for _, d := range pending {
		if d.InFlight {
			d.InFlight = false
			changes = append(changes, store.Change{Delivery: d, FlagOnly: true})
			recs = append(recs, e.record(d, now, store.OutcomeUncertain, 0, "", "interrupted while sending; sending again", 0))
		}
	}
	if len(changes) > 0 {
		if _, err := e.o.Store.Apply(changes, nil, recs); err != nil {
			return err
		}
		e.o.Logger.Warn("resending notifications interrupted by a crash", "count", len(changes))
	}
	e.mu.Lock()
	e.ctx = ctx
	e.mu.Unlock()
	e.Enqueue(pending)
	e.mu.Lock()
	for name := range e.chans {
		e.queueLocked(name)
	}
	e.mu.Unlock()
	if len(pending) > 0 {
		e.o.Logger.Info("outbox loaded", "pending", len(pending))
	}
	return nil
}

// Wait blocks until the workers stopped after the Start context ended.
func (e *Engine) Wait() { e.wg.Wait() }

// Enqueue hands durably stored deliveries to their channels' workers.
func (e *Engine) Enqueue(ds []*store.Delivery) {
	if len(ds) == 0 {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	touched := map[*queue]bool{}
	for _, d := range ds {
		if e.sh != nil && !e.sh.held[d.Channel] {
			// Another replica delivers this channel; it polls the store.
			continue
		}
		q := e.queueLocked(d.Channel)
		// Keep acceptance order even when concurrent requests enqueue out of order.
		i := sort.Search(len(q.pending), func(i int) bool { return q.pending[i].Seq > d.Seq })
		q.pending = append(q.pending, nil)
		copy(q.pending[i+1:], q.pending[i:])
		q.pending[i] = d
		touched[q] = true
	}
	for q := range touched {
		poke(q)
	}
}

// Kick wakes every worker (used after the clock moved in tests, or on reload).
func (e *Engine) Kick() {
	e.mu.Lock()
	for _, q := range e.queues {
		poke(q)
	}
	e.mu.Unlock()
}

// Depth is the number of pending deliveries.
func (e *Engine) Depth() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, q := range e.queues {
		n += len(q.pending)
	}
	return n
}

// Oldest is the age of the oldest pending delivery (0 when none).
func (e *Engine) Oldest() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	var oldest time.Time
	for _, q := range e.queues {
		for _, d := range q.pending {
			if oldest.IsZero() || d.Received.Before(oldest) {
				oldest = d.Received
			}
		}
	}
	if oldest.IsZero() {
		return 0
	}
	return e.o.Now().Sub(oldest)
}

func (e *Engine) record(d *store.Delivery, now time.Time, outcome string, latency time.Duration, code, msg string, digest int) *store.Record {
	r := &store.Record{
		Time: now, Outcome: outcome, GroupKey: d.GroupKey, Status: status(d), Route: d.Route, Channel: d.Channel,
		Priority: string(d.Priority), DeliveryID: d.ID, Attempt: d.Attempts, Code: code, Error: msg,
		Latency: latency.Seconds(),
	}
	if digest > 1 {
		r.Digest = digest
	}
	if d.Data != nil {
		for _, a := range d.Data.Alerts {
			r.Fingerprints = append(r.Fingerprints, a.Fingerprint)
		}
		r.Alertnames = store.Alertnames(d.Data.Alerts)
		r.Receiver = d.Data.Receiver
	}
	e.mu.Lock()
	if cs := e.chans[d.Channel]; cs != nil && r.Target == "" {
		r.Target = cs.Target
	}
	e.mu.Unlock()
	return r
}

func status(d *store.Delivery) string {
	if d.Data == nil {
		return ""
	}
	return d.Data.Status
}

func alertname(d *store.Delivery) string {
	if d.Data == nil {
		return ""
	}
	if n := d.Data.CommonLabels["alertname"]; n != "" {
		return n
	}
	return strings.Join(store.Alertnames(d.Data.Alerts), ",")
}
