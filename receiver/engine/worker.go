package engine

import (
	"context"
	"time"

	"golang.org/x/time/rate"

	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

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

// round handles what is due on one channel and returns how long to sleep.
func (e *Engine) round(ctx context.Context, name string, q *queue) time.Duration {
	now := e.o.Now()
	wait := e.o.Tick
	var dead, ready []*store.Delivery
	var esc []escalation
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
		sit := Situation{Unconfigured: cs == nil}
		if cs != nil {
			sit.Broken = cs.broken
		}
		if dec := e.o.Escalator.Decide(d, sit, now); dec.Escalate {
			esc = append(esc, escalation{d, dec})
		} else if !dec.Next.IsZero() {
			wait = min(wait, dec.Next.Sub(now))
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
		e.expire(dead, now)
	}
	if len(esc) > 0 {
		e.escalate(esc, now)
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
// and the provider limit holds. Tokens are taken per provider message by the
// send's ledger, not here. Called with e.mu held.
func (e *Engine) plan(cs *chanState, ready []*store.Delivery, now time.Time) ([][]*store.Delivery, time.Duration) {
	if cs.limiter != nil {
		tokens := cs.limiter.TokensAt(now)
		if tokens < 1 {
			return nil, time.Duration((1 - tokens) / float64(cs.limiter.Limit()) * float64(time.Second))
		}
		if len(ready) > int(tokens) {
			return [][]*store.Delivery{ready[:min(len(ready), e.o.MaxDigest)]}, 0
		}
	}
	units := make([][]*store.Delivery, len(ready))
	for i, d := range ready {
		units[i] = []*store.Delivery{d}
	}
	return units, 0
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
