package kafka

import (
	"sync"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// chunkEvents is how many requests a chunk of the queue holds (19 KiB).
const chunkEvents = 64

type chunk struct {
	reqs [chunkEvents]traffic.Request
	// off..n are the requests not yet taken.
	off, n int
	next   *chunk
}

// eventQueue is the bounded buffer between the capture (push, from any
// goroutine) and the producer (take/putBack, from one goroutine).
//
// It is a list of chunks rather than a channel: a channel of
// buffer_events requests is a ring the events stream through, so at any
// rate every event is written to and read from memory that has left the
// caches (5 MiB for the default 16384). Chunks are reused last in, first
// out, so while the producer keeps up the same one or two chunks take
// every event; the full capacity is only ever touched during a backlog.
// The producer also encodes straight from the chunk, without copying the
// request out first.
type eventQueue struct {
	mu         sync.Mutex
	head, tail *chunk
	free       *chunk
	// n counts the requests in the list (not those the producer took).
	n, max int64
}

func newEventQueue(max int) *eventQueue { return &eventQueue{max: int64(max)} }

// push copies r into the queue; false when the queue is full.
func (q *eventQueue) push(r *traffic.Request) bool {
	q.mu.Lock()
	if q.n >= q.max {
		q.mu.Unlock()
		return false
	}
	t := q.tail
	if t == nil || t.n == chunkEvents {
		t = q.newChunk()
		if q.tail == nil {
			q.head = t
		} else {
			q.tail.next = t
		}
		q.tail = t
	}
	t.reqs[t.n] = *r
	t.n++
	q.n++
	q.mu.Unlock()
	return true
}

func (q *eventQueue) newChunk() *chunk {
	c := q.free
	if c == nil {
		return new(chunk)
	}
	q.free = c.next
	c.next, c.off, c.n = nil, 0, 0
	return c
}

// take detaches the oldest chunk; push no longer writes to it. Nil when
// the queue is empty.
func (q *eventQueue) take() *chunk {
	q.mu.Lock()
	c := q.head
	if c != nil {
		q.head = c.next
		if q.head == nil {
			q.tail = nil
		}
		c.next = nil
		q.n -= int64(c.n - c.off)
	}
	q.mu.Unlock()
	return c
}

// putBack returns a chunk from take: to the head of the queue when some of
// its requests are left, else to the free chunks.
func (q *eventQueue) putBack(c *chunk) {
	q.mu.Lock()
	if c.off < c.n {
		c.next = q.head
		q.head = c
		if q.tail == nil {
			q.tail = c
		}
		q.n += int64(c.n - c.off)
	} else {
		// The requests hold strings; chunks on the free list must not
		// keep what they point to alive.
		clear(c.reqs[:c.n])
		c.next = q.free
		q.free = c
	}
	q.mu.Unlock()
}

// len is the number of requests waiting (those the producer holds apart).
func (q *eventQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return int(q.n)
}

// discard empties the queue and returns how many requests it held.
func (q *eventQueue) discard() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := int(q.n)
	for c := q.head; c != nil; {
		next := c.next
		clear(c.reqs[:c.n])
		c.next = q.free
		q.free = c
		c = next
	}
	q.head, q.tail = nil, nil
	q.n = 0
	return n
}
