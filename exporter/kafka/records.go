package kafka

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// recordCache keeps records whose promise has run for the next events.
// Unlike a sync.Pool it is not emptied at every garbage collection: at a
// steady rate the same records, and the same 1 KiB value buffers, go round
// instead of being allocated and zeroed again after each cycle. It keeps at
// most max records; those beyond (after a backlog) are left to the collector.
type recordCache struct {
	mu   sync.Mutex
	free []*kgo.Record
	max  int
}

func newRecordCache(max int) *recordCache {
	return &recordCache{free: make([]*kgo.Record, 0, max), max: max}
}

// get returns a record with empty key and value buffers; nothing else of
// the record it was is kept.
func (c *recordCache) get() *kgo.Record {
	c.mu.Lock()
	n := len(c.free)
	if n == 0 {
		c.mu.Unlock()
		// Events are under 1 KiB: a record's buffer is sized once and reused.
		return &kgo.Record{Value: make([]byte, 0, 1024)}
	}
	rec := c.free[n-1]
	c.free[n-1] = nil
	c.free = c.free[:n-1]
	c.mu.Unlock()
	*rec = kgo.Record{Key: rec.Key[:0], Value: rec.Value[:0]}
	return rec
}

// put gives back a record franz-go is done with. Records whose value grew
// past 64 KiB (a rare huge event) are not kept.
func (c *recordCache) put(rec *kgo.Record) {
	if cap(rec.Value) > 64<<10 {
		return
	}
	c.mu.Lock()
	if len(c.free) < c.max {
		c.free = append(c.free, rec)
	}
	c.mu.Unlock()
}
