// Package providertest has httptest fakes of the providers the receiver
// talks to. They enforce the documented contracts (signatures, size and rate
// limits, errcodes), record what they accepted, and let tests inject failures.
package providertest

import (
	"net/http"
	"sync"
	"time"
)

// Failure is an injected answer: HTTP Status with Body (JSON), instead of the
// normal processing. A zero Status lets that request through unchanged, so
// FailNext(Failure{}, Failure{Status: 502}) fails only the second request.
type Failure struct {
	Status int
	Body   string
}

// failures is a queue of injected answers shared by the fakes.
type failures struct {
	mu     sync.Mutex
	next   []Failure
	always *Failure
}

// FailNext makes the next len(fs) requests answer with fs in order.
func (f *failures) FailNext(fs ...Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = append(f.next, fs...)
}

// FailAlways makes every request answer fail until Recover (e.g. a gateway that is down).
func (f *failures) FailAlways(fl Failure) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.always = &fl
}

// Recover clears injected failures.
func (f *failures) Recover() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next, f.always = nil, nil
}

func (f *failures) take() (Failure, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.next) > 0 {
		fl := f.next[0]
		f.next = f.next[1:]
		return fl, true
	}
	if f.always != nil {
		return *f.always, true
	}
	return Failure{}, false
}

func (f *failures) serve(w http.ResponseWriter) bool {
	fl, ok := f.take()
	if !ok || fl.Status == 0 {
		return false
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(fl.Status)
	_, _ = w.Write([]byte(fl.Body))
	return true
}

// window counts accepted messages in the last minute (per robot).
type window struct {
	times []time.Time
}

func (w *window) allow(now time.Time, perMinute int) bool {
	cut := now.Add(-time.Minute)
	i := 0
	for i < len(w.times) && !w.times[i].After(cut) {
		i++
	}
	w.times = w.times[i:]
	return len(w.times) < perMinute
}

func (w *window) add(now time.Time) { w.times = append(w.times, now) }

// clock is a settable time source shared by the fakes.
type clock struct {
	mu  sync.Mutex
	now func() time.Time
}

// SetNow replaces the fake's clock (for rate-limit windows and timestamp checks).
func (c *clock) SetNow(now func() time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = now
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.now == nil {
		return time.Now()
	}
	return c.now()
}
