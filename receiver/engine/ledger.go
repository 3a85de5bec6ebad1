package engine

import (
	"fmt"
	"slices"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// ledger is the notify.Ledger of one send: the channel's token bucket
// counts every provider message (not every notification), and each message
// the provider accepted is stored with the deliveries before the next one
// is sent.
type ledger struct {
	e     *Engine
	cs    *chanState
	unit  []*store.Delivery
	taken int
}

// Take implements notify.Ledger.
func (l *ledger) Take() error {
	lim := l.cs.limiter
	if lim == nil {
		l.taken++
		return nil
	}
	now := l.e.o.Now()
	if lim.AllowN(now, 1) {
		l.taken++
		return nil
	}
	wait := time.Duration((1 - lim.TokensAt(now)) / float64(lim.Limit()) * float64(time.Second))
	return notify.Paced(max(wait, time.Millisecond))
}

// Sent implements notify.Ledger.
func (l *ledger) Sent(key string) bool { return slices.Contains(l.unit[0].SentParts, key) }

// Accepted implements notify.Ledger: one durable write per accepted message.
func (l *ledger) Accepted(key string) error {
	changes := make([]store.Change, len(l.unit))
	for i, d := range l.unit {
		d.SentParts = append(d.SentParts, key)
		changes[i] = store.Change{Delivery: d}
	}
	if _, err := l.e.o.Store.Apply(changes, nil, nil); err != nil {
		return fmt.Errorf("store accepted message: %w", err)
	}
	return nil
}
