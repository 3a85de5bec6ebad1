package engine

import (
	"context"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

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
	var esc []escalation
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
		if e.o.Decorate != nil {
			sctx = e.o.Decorate(sctx, cs.Name, send)
		}
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
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		// Delivered messages stay marked in flight in the store and are resent after a
		// restart; that duplicate is the price of never losing one.
		e.o.Logger.Error("cannot record delivery outcomes", "channel", cs.Name, "err", e.redact(err.Error()))
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
	return err == nil
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
