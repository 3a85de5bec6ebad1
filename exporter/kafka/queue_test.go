package kafka

import (
	"sync"
	"testing"

	"github.com/open-autoglm/autoglm-monitor/exporter/traffic"
)

// The queue keeps order across chunks and partial takes, holds at most its
// capacity, and loses nothing with several goroutines pushing while the
// producer takes.
func TestEventQueue(t *testing.T) {
	q := newEventQueue(200)
	for i := range 250 {
		r := traffic.Request{Status: i}
		if got, want := q.push(&r), i < 200; got != want {
			t.Fatalf("push %d: %v, want %v", i, got, want)
		}
	}
	if q.len() != 200 {
		t.Fatalf("len %d", q.len())
	}
	// Take 10 of the first chunk, give the rest back, then everything.
	next := 0
	c := q.take()
	for ; c.off < 10; c.off++ {
		if c.reqs[c.off].Status != next {
			t.Fatalf("got %d, want %d", c.reqs[c.off].Status, next)
		}
		next++
	}
	q.putBack(c)
	if q.len() != 190 {
		t.Fatalf("len after a partial take: %d", q.len())
	}
	r := traffic.Request{Status: 200}
	if !q.push(&r) {
		t.Fatal("no room after a partial take")
	}
	for c := q.take(); c != nil; c = q.take() {
		for ; c.off < c.n; c.off++ {
			if c.reqs[c.off].Status != next {
				t.Fatalf("got %d, want %d", c.reqs[c.off].Status, next)
			}
			next++
		}
		q.putBack(c)
	}
	if next != 201 || q.len() != 0 {
		t.Fatalf("took %d, %d left", next, q.len())
	}
	// Free chunks come back cleared: they keep nothing alive.
	if c := q.newChunk(); c.n != 0 || c.reqs[0].Path != "" || c.reqs[0].Status != 0 {
		t.Fatalf("reused chunk not empty: %+v", c.reqs[0])
	}

	for i := range 100 {
		r := traffic.Request{Status: i}
		q.push(&r)
	}
	if n := q.discard(); n != 100 || q.len() != 0 || q.take() != nil {
		t.Fatalf("discard: %d, %d left", n, q.len())
	}

	// Four pushers, one taker: every request taken once, in order per pusher.
	q = newEventQueue(1000)
	const per = 20000
	var wg sync.WaitGroup
	pushed := make([]int, 4)
	for p := range 4 {
		wg.Go(func() {
			for i := range per {
				r := traffic.Request{Status: p, ServerPort: uint16(i % 65536), RequestBodySize: int64(i)}
				if q.push(&r) {
					pushed[p]++
				}
			}
		})
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	last := []int64{-1, -1, -1, -1}
	taken := make([]int, 4)
	for finished := false; ; {
		select {
		case <-done:
			finished = true
		default:
		}
		c := q.take()
		if c == nil {
			if finished && q.len() == 0 {
				break
			}
			continue
		}
		for ; c.off < c.n; c.off++ {
			r := &c.reqs[c.off]
			if r.RequestBodySize <= last[r.Status] {
				t.Fatalf("pusher %d: %d after %d", r.Status, r.RequestBodySize, last[r.Status])
			}
			last[r.Status] = r.RequestBodySize
			taken[r.Status]++
		}
		q.putBack(c)
	}
	for p := range 4 {
		if taken[p] != pushed[p] {
			t.Errorf("pusher %d: pushed %d, taken %d", p, pushed[p], taken[p])
		}
	}
}
