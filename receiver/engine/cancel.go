package engine

import (
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Cancel drops the escalation pages (deliveries with a Step) of a group that
// are still pending: they are marked done in the store and audited as
// cancelled with why. A page being sent at this moment still goes out. It
// returns how many were dropped.
func (e *Engine) Cancel(groupKey, why string) int {
	e.mu.Lock()
	var ds []*store.Delivery
	for _, q := range e.queues {
		for _, d := range q.pending {
			if d.GroupKey == groupKey && d.Step > 0 {
				ds = append(ds, d)
			}
		}
	}
	e.mu.Unlock()
	if len(ds) == 0 {
		return 0
	}
	now := e.o.Now()
	changes := make([]store.Change, 0, len(ds))
	recs := make([]*store.Record, 0, len(ds))
	for _, d := range ds {
		changes = append(changes, store.Change{Delivery: d, Done: true})
		recs = append(recs, e.record(d, now, store.OutcomeCancelled, 0, "", why, 0))
	}
	if _, err := e.o.Store.Apply(changes, nil, recs); err != nil {
		e.o.Logger.Error("cannot record cancelled pages; they will be sent", "err", e.redact(err.Error()))
		return 0
	}
	e.remove(ds)
	for _, d := range ds {
		e.m.notifications.WithLabelValues(d.Channel, store.OutcomeCancelled).Inc()
	}
	return len(ds)
}
