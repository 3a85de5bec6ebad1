package engine

import (
	"strconv"
	"strings"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/route"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Escalator decides when an undelivered notification escalates and to which
// channels. The engine asks it for every pending delivery in every worker
// round, after every failed attempt, and when a delivery expires; it applies
// the decision (fallback deliveries, the escalated audit record, metrics).
// RouteEscalator is the default; richer policies (on-call chains, claims)
// wrap or replace it.
type Escalator interface {
	Decide(d *store.Delivery, s Situation, now time.Time) Decision
}

// Situation is what the engine knows about a delivery's channel when it asks.
type Situation struct {
	// Unconfigured: the delivery's channel is not configured (any more).
	Unconfigured bool
	// Broken is the channel's configuration error; "" when none.
	Broken string
	// Failure is the class of the attempt that just failed; nil in a round or on expiry.
	Failure *notify.Class
	// Expired: the delivery is becoming a dead letter.
	Expired bool
}

// Decision is an Escalator's answer.
type Decision struct {
	Escalate bool
	// Why goes to the audit record and the log.
	Why string
	// To are the channels to escalate to.
	To []string
	// Next is when the Escalator wants to be asked again (zero: not before
	// the next attempt, failure or expiry).
	Next time.Time
}

// RouteEscalator applies the route's policy, once per delivery: a delivery
// of a route channel escalates to the route's fallback channels when it has
// not been delivered within escalate_after, failed escalate_after_failures
// times, failed permanently, hit a configuration error, lost its channel, or
// expired.
type RouteEscalator struct{}

// Decide implements Escalator.
func (RouteEscalator) Decide(d *store.Delivery, s Situation, now time.Time) Decision {
	if d.IsFallback || d.Escalated || len(d.Fallback) == 0 {
		return Decision{}
	}
	why := ""
	switch {
	case s.Expired:
		why = "dead letter"
	case s.Failure != nil && *s.Failure == notify.Permanent:
		why = "permanent failure"
	case s.Failure != nil && *s.Failure == notify.Config, s.Broken != "":
		why = "channel configuration error: " + s.Broken
	case s.Unconfigured:
		why = "channel is not configured"
	case !d.EscalateAt.IsZero() && !now.Before(d.EscalateAt):
		why = "not delivered within escalate_after"
	case d.EscalateAfterFailures > 0 && d.Failures >= d.EscalateAfterFailures:
		why = "failed " + strconv.Itoa(d.Failures) + " times"
	default:
		return Decision{Next: d.EscalateAt}
	}
	return Decision{Escalate: true, Why: why, To: d.Fallback}
}

// escalation is one decided escalation waiting to be stored.
type escalation struct {
	d   *store.Delivery
	dec Decision
}

// unescalate undoes escalated for escalations the store did not take, so
// the next round decides again.
func unescalate(es []escalation) {
	for _, x := range es {
		x.d.Escalated = false
	}
}

// escalated marks d escalated and returns the deliveries and audit record
// that carry the decision out. The caller stores them with its other
// changes; when the store refuses them it calls unescalate.
func (e *Engine) escalated(d *store.Delivery, dec Decision, code string, now time.Time) ([]*store.Delivery, *store.Record) {
	d.Escalated = true
	out := make([]*store.Delivery, 0, len(dec.To))
	for _, ch := range dec.To {
		if ch == d.Channel {
			continue
		}
		out = append(out, &store.Delivery{
			ID: route.ChannelKey(d.Base, ch), Base: d.Base, Channel: ch, Route: d.Route, IsFallback: true,
			GroupKey: d.GroupKey, Priority: d.Priority, Data: d.Data, TruncatedAlerts: d.TruncatedAlerts,
			Received: d.Received, ExpireAt: now.Add(e.policy().ExpireAfter),
		})
	}
	rec := e.record(d, now, store.OutcomeEscalated, 0, code, dec.Why+"; escalating to "+strings.Join(dec.To, ","), 0)
	return out, rec
}

func (e *Engine) logEscalated(d *store.Delivery, dec Decision) {
	e.m.notifications.WithLabelValues(d.Channel, store.OutcomeEscalated).Inc()
	e.o.Logger.Warn("notification escalated", "channel", d.Channel, "alertname", alertname(d), "route", d.Route,
		"fallback", strings.Join(dec.To, ","), "reason", e.redact(dec.Why))
}

// escalate stores the escalations a round decided.
func (e *Engine) escalate(es []escalation, now time.Time) {
	changes := make([]store.Change, 0, len(es))
	var add []*store.Delivery
	recs := make([]*store.Record, 0, len(es))
	for _, x := range es {
		changes = append(changes, store.Change{Delivery: x.d})
		ds, rec := e.escalated(x.d, x.dec, "", now)
		add = append(add, ds...)
		recs = append(recs, rec)
	}
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		unescalate(es)
		e.o.Logger.Error("cannot record escalation", "err", e.redact(err.Error()))
		return
	}
	for _, x := range es {
		e.logEscalated(x.d, x.dec)
	}
	e.Enqueue(added)
}

// expire turns deliveries past their expiry into dead letters, escalating
// those the Escalator says must be reported.
func (e *Engine) expire(ds []*store.Delivery, now time.Time) {
	changes := make([]store.Change, 0, len(ds))
	var add []*store.Delivery
	var recs []*store.Record
	var es []escalation
	for _, d := range ds {
		changes = append(changes, store.Change{Delivery: d, Done: true, Dead: true})
		msg := "expired at " + d.ExpireAt.UTC().Format(time.RFC3339)
		if d.LastError != "" {
			msg += "; last error: " + d.LastError
		}
		recs = append(recs, e.record(d, now, store.OutcomeDead, 0, d.LastCode, msg, 0))
		if dec := e.o.Escalator.Decide(d, Situation{Expired: true}, now); dec.Escalate {
			fb, rec := e.escalated(d, dec, "", now)
			add = append(add, fb...)
			recs = append(recs, rec)
			es = append(es, escalation{d, dec})
		}
	}
	added, err := e.o.Store.Apply(changes, add, recs)
	if err != nil {
		unescalate(es)
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
	for _, x := range es {
		e.logEscalated(x.d, x.dec)
	}
	e.Enqueue(added)
}
