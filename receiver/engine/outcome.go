package engine

import (
	"context"
	"errors"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// send delivers the planned units in order and records every outcome. Each
// unit is marked in flight in the same durable write that stores the
// previous unit's outcome, so every provider answer is committed before the
// next send and a crash can repeat at most the one message in flight. It
// returns false when the store refused a write.
func (e *Engine) send(ctx context.Context, cs *chanState, units [][]*store.Delivery) bool {
	pol := e.policy()
	var (
		// Outcomes not yet written; they go with the next unit's mark.
		changes []store.Change
		recs    []*store.Record
		add     []*store.Delivery
		added   []*store.Delivery
		done    []*store.Delivery
		esc     []escalation
		// A group whose earlier message failed or waits for the rate limit holds its later ones.
		held  = map[string]bool{}
		paced bool
		ok    = true
	)
	type logged struct {
		d       *store.Delivery
		latency time.Duration
		digest  int
	}
	var delivered []logged
	for _, u := range units {
		send := u[:0:0]
		for _, d := range u {
			if !held[d.GroupKey] && !paced {
				send = append(send, d)
			}
		}
		if len(send) == 0 {
			continue
		}
		for _, d := range send {
			d.InFlight = true
			changes = append(changes, store.Change{Delivery: d, FlagOnly: true})
		}
		got, err := e.o.Store.Apply(changes, add, recs)
		if err != nil {
			for _, d := range send {
				d.InFlight = false
			}
			e.o.Logger.Error("cannot mark deliveries in flight", "channel", cs.Name, "err", e.redact(err.Error()))
			// The outcomes carried in this write are lost; their deliveries stay
			// marked in flight in the store and are resent after a restart: that
			// duplicate is the price of never losing one.
			changes, recs, add, ok = nil, nil, nil, false
			break
		}
		added = append(added, got...)
		changes, recs, add = nil, nil, nil

		ns := make([]*notify.Notification, len(send))
		for i, d := range send {
			ns[i] = d.Notification()
		}
		l := &ledger{e: e, cs: cs, unit: send}
		start := e.o.Now()
		sctx, cancel := context.WithTimeout(notify.WithLedger(ctx, l), e.o.SendTimeout)
		if e.o.Decorate != nil {
			sctx = e.o.Decorate(sctx, cs.Name, send)
		}
		err = cs.Notifier.Notify(sctx, ns...)
		cancel()
		now := e.o.Now()
		latency := now.Sub(start)
		if cs.limiter != nil && l.taken == 0 && !errors.Is(err, notify.ErrPaced) {
			// A channel that does not take its own tokens costs one per call.
			cs.limiter.ReserveN(now, 1)
		}
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
		if errors.Is(err, notify.ErrPaced) {
			// Not a failure: the provider's limit is used up; the rest of
			// the message (and every later one) goes when it allows.
			for _, d := range send {
				d.InFlight = false
				d.NextAttempt = now.Add(retryAfter)
				held[d.GroupKey] = true
				changes = append(changes, store.Change{Delivery: d})
			}
			paced = true
			e.o.Logger.Debug("provider rate limit reached, continuing later", "channel", cs.Name, "parts_sent", len(send[0].SentParts), "wait", retryAfter)
			continue
		}
		msg := e.redact(err.Error())
		for _, d := range send {
			held[d.GroupKey] = true
			d.InFlight = false
			d.Attempts++
			d.Failures++
			d.LastError, d.LastCode = msg, code
			outcome := store.OutcomeRetry
			switch class {
			case notify.Permanent:
				outcome = store.OutcomePermanent
				changes = append(changes, store.Change{Delivery: d, Done: true, Dead: true})
				done = append(done, d)
				e.m.deadLetters.WithLabelValues(d.Channel).Inc()
			case notify.Config:
				outcome = store.OutcomeConfig
				e.mu.Lock()
				cs.broken = msg
				e.mu.Unlock()
				d.NextAttempt = now.Add(pol.Backoff(d.Failures, e.o.Rand()))
				changes = append(changes, store.Change{Delivery: d})
			default:
				d.NextAttempt = now.Add(max(pol.Backoff(d.Failures, e.o.Rand()), retryAfter))
				changes = append(changes, store.Change{Delivery: d})
			}
			r := e.record(d, now, outcome, latency, code, msg, len(send))
			r.Target = cs.Target
			recs = append(recs, r)
			if dec := e.o.Escalator.Decide(d, Situation{Broken: cs.broken, Failure: &class}, now); dec.Escalate {
				fb, rec := e.escalated(d, dec, code, now)
				add = append(add, fb...)
				recs = append(recs, rec)
				esc = append(esc, escalation{d, dec})
			}
			e.m.notifications.WithLabelValues(d.Channel, outcome).Inc()
			e.o.Logger.Warn("notification attempt failed", "channel", d.Channel, "alertname", alertname(d), "route", d.Route,
				"class", class.String(), "code", code, "attempt", d.Attempts, "next_attempt", d.NextAttempt, "err", msg)
		}
	}
	if len(changes) > 0 || len(add) > 0 || len(recs) > 0 {
		got, err := e.o.Store.Apply(changes, add, recs)
		if err != nil {
			// Delivered messages stay marked in flight in the store and are resent after a
			// restart; that duplicate is the price of never losing one.
			e.o.Logger.Error("cannot record delivery outcomes", "channel", cs.Name, "err", e.redact(err.Error()))
			ok = false
		}
		added = append(added, got...)
	}
	e.remove(done)
	for _, x := range esc {
		e.logEscalated(x.d, x.dec)
	}
	for _, l := range delivered {
		e.m.notifications.WithLabelValues(l.d.Channel, store.OutcomeDelivered).Inc()
		e.m.duration.WithLabelValues(l.d.Channel).Observe(e.o.Now().Sub(l.d.Received).Seconds())
		e.o.Logger.Info("notification delivered", "channel", l.d.Channel, "alertname", alertname(l.d), "route", l.d.Route,
			"priority", string(l.d.Priority), "status", status(l.d), "attempt", l.d.Attempts, "digest", l.digest,
			"fallback", l.d.IsFallback, "latency", l.latency)
	}
	e.Enqueue(added)
	return ok
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
