// Package engine delivers the receiver's outbox: one worker per channel, a
// token bucket per rate-limited channel with backlog coalescing into digests,
// exponential backoff with jitter persisted in the store, escalation to a
// route's fallback channels, expiry into dead letters, and the audit trail of
// every attempt.
package engine

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Channel is a configured, built channel.
type Channel struct {
	Name     string
	Notifier notify.Channel
	// PerMinute is the provider's message limit (0 = none).
	PerMinute int
	// Target is a redacted description of the destination for audit and logs.
	Target string
}

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
	Store      *store.Store
	Logger     *slog.Logger
	Now        func() time.Time
	Policy     Policy
	Registerer prometheus.Registerer
	Redactor   *Redactor
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
}

type chanState struct {
	Channel
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
	e := &Engine{o: o, chans: map[string]*chanState{}, queues: map[string]*queue{}}
	m, err := newMetrics(o.Registerer, e)
	if err != nil {
		return nil, err
	}
	e.m = m
	return e, nil
}

// Limiter returns the token bucket for a provider limit of perMinute messages
// in any minute: half the limit as burst and the other half refilled evenly,
// so no 60-second window ever sees more than perMinute.
func Limiter(perMinute int) *rate.Limiter {
	if perMinute <= 0 {
		return nil
	}
	burst := max(perMinute/2, 1)
	refill := max(perMinute-burst, 1)
	return rate.NewLimiter(rate.Limit(float64(refill)/60), burst)
}

// SetChannels installs (or, on reload, replaces) the channels. Configuration
// errors are forgotten, so broken channels are tried again. Token buckets of
// channels whose limit did not change are kept.
func (e *Engine) SetChannels(chs []Channel) {
	e.mu.Lock()
	next := make(map[string]*chanState, len(chs))
	for _, c := range chs {
		cs := &chanState{Channel: c, limiter: Limiter(c.PerMinute)}
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
func (e *Engine) SetRedactor(r *Redactor) {
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

func (e *Engine) worker(ctx context.Context, name string, q *queue) {
	defer e.wg.Done()
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		wait := e.round(ctx, name, q)
		if ctx.Err() != nil {
			return
		}
		if wait <= 0 {
			continue
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
			if !timer.Stop() {
				<-timer.C
			}
		case <-timer.C:
		}
	}
}

func (e *Engine) shouldEscalate(d *store.Delivery, cs *chanState, now time.Time) (bool, string) {
	if d.IsFallback || d.Escalated || len(d.Fallback) == 0 {
		return false, ""
	}
	switch {
	case cs == nil:
		return true, "channel is not configured"
	case cs.broken != "":
		return true, "channel configuration error: " + cs.broken
	case !d.EscalateAt.IsZero() && !now.Before(d.EscalateAt):
		return true, "not delivered within escalate_after"
	case d.EscalateAfterFailures > 0 && d.Failures >= d.EscalateAfterFailures:
		return true, "failed " + strconv.Itoa(d.Failures) + " times"
	}
	return false, ""
}

// round handles what is due on one channel and returns how long to sleep.
func (e *Engine) round(ctx context.Context, name string, q *queue) time.Duration {
	now := e.o.Now()
	wait := e.o.Tick
	var dead, ready []*store.Delivery
	var esc []*store.Delivery
	var escWhy []string
	e.mu.Lock()
	cs := e.chans[name]
	blocked := map[string]bool{}
	// A rate-limited channel may fold a whole backlog into one digest.
	roundCap := e.o.MaxRound
	if cs != nil && cs.limiter != nil {
		roundCap = max(roundCap, e.o.MaxDigest)
	}
	for _, d := range q.pending {
		if !now.Before(d.ExpireAt) {
			dead = append(dead, d)
			continue
		}
		wait = min(wait, d.ExpireAt.Sub(now))
		if ok, why := e.shouldEscalate(d, cs, now); ok {
			esc = append(esc, d)
			escWhy = append(escWhy, why)
		} else if !d.IsFallback && !d.Escalated && len(d.Fallback) > 0 && !d.EscalateAt.IsZero() {
			wait = min(wait, d.EscalateAt.Sub(now))
		}
		// Per group, a later message never overtakes an earlier pending one.
		if blocked[d.GroupKey] {
			continue
		}
		if cs == nil || cs.broken != "" || now.Before(d.NextAttempt) {
			blocked[d.GroupKey] = true
			if cs != nil && cs.broken == "" {
				wait = min(wait, d.NextAttempt.Sub(now))
			}
			continue
		}
		if len(ready) < roundCap {
			ready = append(ready, d)
		}
	}
	var units [][]*store.Delivery
	if len(ready) > 0 {
		var limited time.Duration
		units, limited = e.plan(cs, ready, now)
		if len(units) == 0 {
			wait = min(wait, limited)
		}
	}
	e.mu.Unlock()

	if len(dead) > 0 {
		e.expire(cs, dead, now)
	}
	if len(esc) > 0 {
		e.escalate(esc, escWhy, now)
	}
	if len(units) == 0 {
		return max(wait, time.Millisecond)
	}
	if !e.send(ctx, cs, units) {
		// The store refused the write; do not spin on it.
		return e.o.Tick
	}
	return 0
}

// plan groups ready deliveries into sends. Without a limit each is sent on
// its own. With a limit, deliveries are sent singly while tokens last; a
// backlog larger than the tokens goes out as one digest so nothing is dropped
// and the provider limit holds. Called with e.mu held.
func (e *Engine) plan(cs *chanState, ready []*store.Delivery, now time.Time) ([][]*store.Delivery, time.Duration) {
	if cs.limiter == nil {
		units := make([][]*store.Delivery, len(ready))
		for i, d := range ready {
			units[i] = []*store.Delivery{d}
		}
		return units, 0
	}
	tokens := cs.limiter.TokensAt(now)
	if tokens < 1 {
		return nil, time.Duration((1 - tokens) / float64(cs.limiter.Limit()) * float64(time.Second))
	}
	if len(ready) <= int(tokens) {
		units := make([][]*store.Delivery, len(ready))
		for i, d := range ready {
			units[i] = []*store.Delivery{d}
		}
		cs.limiter.AllowN(now, len(ready))
		return units, 0
	}
	cs.limiter.AllowN(now, 1)
	return [][]*store.Delivery{ready[:min(len(ready), e.o.MaxDigest)]}, 0
}

func (e *Engine) fallbacks(d *store.Delivery, now time.Time) []*store.Delivery {
	out := make([]*store.Delivery, 0, len(d.Fallback))
	for _, ch := range d.Fallback {
		if ch == d.Channel {
			continue
		}
		out = append(out, &store.Delivery{
			ID: route.ChannelKey(d.Base, ch), Base: d.Base, Channel: ch, Route: d.Route, IsFallback: true,
			GroupKey: d.GroupKey, Priority: d.Priority, Data: d.Data, TruncatedAlerts: d.TruncatedAlerts,
			Received: d.Received, ExpireAt: now.Add(e.policy().ExpireAfter),
		})
	}
	return out
}

func (e *Engine) escalate(ds []*store.Delivery, why []string, now time.Time) {
	changes := make([]store.Change, 0, len(ds))
	var add []*store.Delivery
	var recs []*store.Record
	for i, d := range ds {
		d.Escalated = true
		changes = append(changes, store.Change{Delivery: d})
		fbs := e.fallbacks(d, now)
		add = append(add, fbs...)
		r := e.record(d, now, store.OutcomeEscalated, 0, "", why[i]+"; escalating to "+strings.Join(d.Fallback, ","), 0)
		recs = append(recs, r)
	}
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		for _, d := range ds {
			d.Escalated = false
		}
		e.o.Logger.Error("cannot record escalation", "err", e.redact(err.Error()))
		return
	}
	for i, d := range ds {
		e.m.notifications.WithLabelValues(d.Channel, store.OutcomeEscalated).Inc()
		e.o.Logger.Warn("notification escalated", "channel", d.Channel, "alertname", alertname(d), "route", d.Route,
			"fallback", strings.Join(d.Fallback, ","), "reason", e.redact(why[i]))
	}
	e.Enqueue(added)
}

func (e *Engine) expire(cs *chanState, ds []*store.Delivery, now time.Time) {
	changes := make([]store.Change, 0, len(ds))
	var add []*store.Delivery
	var recs []*store.Record
	var escalated []bool
	for _, d := range ds {
		changes = append(changes, store.Change{Delivery: d, Done: true, Dead: true})
		msg := "expired at " + d.ExpireAt.UTC().Format(time.RFC3339)
		if d.LastError != "" {
			msg += "; last error: " + d.LastError
		}
		recs = append(recs, e.record(d, now, store.OutcomeDead, 0, d.LastCode, msg, 0))
		esc := !d.IsFallback && !d.Escalated && len(d.Fallback) > 0
		escalated = append(escalated, esc)
		if esc {
			d.Escalated = true
			add = append(add, e.fallbacks(d, now)...)
			recs = append(recs, e.record(d, now, store.OutcomeEscalated, 0, "", "dead letter; reporting through "+strings.Join(d.Fallback, ","), 0))
		}
	}
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		for i, d := range ds {
			if escalated[i] {
				d.Escalated = false
			}
		}
		e.o.Logger.Error("cannot record dead letters", "err", e.redact(err.Error()))
		return
	}
	e.remove(ds)
	for _, d := range ds {
		e.m.deadLetters.WithLabelValues(d.Channel).Inc()
		e.m.notifications.WithLabelValues(d.Channel, store.OutcomeDead).Inc()
		e.o.Logger.Error("notification expired into a dead letter", "channel", d.Channel, "alertname", alertname(d),
			"route", d.Route, "attempts", d.Attempts, "last_error", d.LastError)
	}
	e.Enqueue(added)
}

func (e *Engine) remove(ds []*store.Delivery) {
	gone := make(map[*store.Delivery]bool, len(ds))
	for _, d := range ds {
		gone[d] = true
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, d := range ds {
		q := e.queues[d.Channel]
		if q == nil {
			continue
		}
		kept := q.pending[:0]
		for _, p := range q.pending {
			if !gone[p] {
				kept = append(kept, p)
			}
		}
		clear(q.pending[len(kept):])
		q.pending = kept
	}
}

// send delivers the planned units in order and records every outcome. It
// returns false when nothing could be sent because the store failed.
func (e *Engine) send(ctx context.Context, cs *chanState, units [][]*store.Delivery) bool {
	var flat []*store.Delivery
	for _, u := range units {
		flat = append(flat, u...)
	}
	// Mark in flight durably first so a crash during the send is visible on restart.
	marks := make([]store.Change, len(flat))
	for i, d := range flat {
		d.InFlight = true
		marks[i] = store.Change{Delivery: d, FlagOnly: true}
	}
	if _, err := e.o.Store.Apply(marks, nil, nil); err != nil {
		for _, d := range flat {
			d.InFlight = false
		}
		e.o.Logger.Error("cannot mark deliveries in flight", "channel", cs.Name, "err", e.redact(err.Error()))
		return false
	}
	pol := e.policy()
	changes := make([]store.Change, 0, len(flat))
	recs := make([]*store.Record, 0, len(flat))
	var add, done []*store.Delivery
	failed := map[string]bool{}
	type logged struct {
		d       *store.Delivery
		latency time.Duration
		digest  int
	}
	var delivered []logged
	for _, u := range units {
		// A group whose earlier message failed in this round waits for it.
		send := u[:0:0]
		for _, d := range u {
			if failed[d.GroupKey] {
				d.InFlight = false
				changes = append(changes, store.Change{Delivery: d, FlagOnly: true})
				continue
			}
			send = append(send, d)
		}
		if len(send) == 0 {
			continue
		}
		ns := make([]*notify.Notification, len(send))
		for i, d := range send {
			ns[i] = d.Notification()
		}
		start := e.o.Now()
		sctx, cancel := context.WithTimeout(ctx, e.o.SendTimeout)
		err := cs.Notifier.Notify(sctx, ns...)
		cancel()
		now := e.o.Now()
		latency := now.Sub(start)
		if err == nil {
			for _, d := range send {
				d.InFlight = false
				d.Attempts++
				changes = append(changes, store.Change{Delivery: d, Done: true})
				r := e.record(d, now, store.OutcomeDelivered, latency, "", "", len(send))
				r.Target = cs.Target
				recs = append(recs, r)
				done = append(done, d)
				delivered = append(delivered, logged{d, latency, len(send)})
			}
			continue
		}
		class, code, retryAfter := notify.Classify(err)
		msg := e.redact(err.Error())
		for _, d := range send {
			failed[d.GroupKey] = true
			d.InFlight = false
			d.Attempts++
			d.Failures++
			d.LastError, d.LastCode = msg, code
			outcome := store.OutcomeRetry
			escalate := false
			switch class {
			case notify.Permanent:
				outcome = store.OutcomePermanent
				changes = append(changes, store.Change{Delivery: d, Done: true, Dead: true})
				done = append(done, d)
				escalate = true
				e.m.deadLetters.WithLabelValues(d.Channel).Inc()
			case notify.Config:
				outcome = store.OutcomeConfig
				e.mu.Lock()
				cs.broken = msg
				e.mu.Unlock()
				escalate = true
			default:
				d.NextAttempt = now.Add(max(pol.Backoff(d.Failures, e.o.Rand()), retryAfter))
				escalate = d.EscalateAfterFailures > 0 && d.Failures >= d.EscalateAfterFailures
			}
			if class != notify.Permanent {
				if class == notify.Config {
					d.NextAttempt = now.Add(pol.Backoff(d.Failures, e.o.Rand()))
				}
				changes = append(changes, store.Change{Delivery: d})
			}
			r := e.record(d, now, outcome, latency, code, msg, len(send))
			r.Target = cs.Target
			recs = append(recs, r)
			if escalate && !d.IsFallback && !d.Escalated && len(d.Fallback) > 0 {
				d.Escalated = true
				add = append(add, e.fallbacks(d, now)...)
				recs = append(recs, e.record(d, now, store.OutcomeEscalated, 0, code, outcome+" failure; escalating to "+strings.Join(d.Fallback, ","), 0))
				e.m.notifications.WithLabelValues(d.Channel, store.OutcomeEscalated).Inc()
			}
			e.m.notifications.WithLabelValues(d.Channel, outcome).Inc()
			e.o.Logger.Warn("notification attempt failed", "channel", d.Channel, "alertname", alertname(d), "route", d.Route,
				"class", class.String(), "code", code, "attempt", d.Attempts, "next_attempt", d.NextAttempt, "err", msg)
		}
	}
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		// Delivered messages stay marked in flight in the store and are resent after a
		// restart; that duplicate is the price of never losing one.
		e.o.Logger.Error("cannot record delivery outcomes", "channel", cs.Name, "err", e.redact(err.Error()))
	}
	e.remove(done)
	for _, l := range delivered {
		e.m.notifications.WithLabelValues(l.d.Channel, store.OutcomeDelivered).Inc()
		e.m.duration.WithLabelValues(l.d.Channel).Observe(e.o.Now().Sub(l.d.Received).Seconds())
		e.o.Logger.Info("notification delivered", "channel", l.d.Channel, "alertname", alertname(l.d), "route", l.d.Route,
			"priority", string(l.d.Priority), "status", status(l.d), "attempt", l.d.Attempts, "digest", l.digest,
			"fallback", l.d.IsFallback, "latency", l.latency)
	}
	e.Enqueue(added)
	return err == nil
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
		r.Alertnames = Alertnames(d.Data.Alerts)
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
	return strings.Join(Alertnames(d.Data.Alerts), ",")
}
