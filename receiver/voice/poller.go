package voice

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Querier answers the result of a call (Notifier is one).
type Querier interface {
	Query(ctx context.Context, c Call) (Result, error)
}

// Poller asks the provider for the results of placed calls until it has
// them: first a minute after the call (Aliyun documents the details arrive
// 3 to 5 minutes after it ends), then at doubling intervals up to 8
// minutes, giving up after GiveUp.
type Poller struct {
	// OnResult receives each call's result; OnGiveUp the calls never resolved.
	OnResult func(Call, Result)
	OnGiveUp func(Call, error)
	// GiveUp bounds how long a call is polled (default 30 minutes).
	GiveUp time.Duration

	wake chan struct{}
	mu   sync.Mutex
	jobs []*pollJob
}

type pollJob struct {
	call  Call
	q     Querier
	next  time.Time
	every time.Duration
	last  error
}

const (
	firstPoll = time.Minute
	maxPoll   = 8 * time.Minute
)

// Track starts polling c through q.
func (p *Poller) Track(q Querier, c Call) {
	p.mu.Lock()
	if p.wake == nil {
		p.wake = make(chan struct{}, 1)
	}
	p.jobs = append(p.jobs, &pollJob{call: c, q: q, next: c.Placed.Add(firstPoll), every: firstPoll})
	w := p.wake
	p.mu.Unlock()
	select {
	case w <- struct{}{}:
	default:
	}
}

// Pending counts calls without a result yet.
func (p *Poller) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.jobs)
}

// Run polls until ctx ends.
func (p *Poller) Run(ctx context.Context) {
	p.mu.Lock()
	if p.wake == nil {
		p.wake = make(chan struct{}, 1)
	}
	wake := p.wake
	p.mu.Unlock()
	giveUp := p.GiveUp
	if giveUp <= 0 {
		giveUp = 30 * time.Minute
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		p.mu.Lock()
		var due []*pollJob
		next := now.Add(time.Hour)
		kept := p.jobs[:0]
		for _, j := range p.jobs {
			if !now.Before(j.next) {
				due = append(due, j)
				continue
			}
			kept = append(kept, j)
			if j.next.Before(next) {
				next = j.next
			}
		}
		p.jobs = kept
		p.mu.Unlock()
		for _, j := range due {
			res, err := j.q.Query(ctx, j.call)
			switch {
			case err == nil:
				if p.OnResult != nil {
					p.OnResult(j.call, res)
				}
				continue
			case errors.Is(err, ErrNoQuery):
				continue // the provider calls back instead
			case time.Since(j.call.Placed) >= giveUp:
				if p.OnGiveUp != nil {
					p.OnGiveUp(j.call, err)
				}
				continue
			}
			j.last = err
			j.every = min(2*j.every, maxPoll)
			j.next = time.Now().Add(j.every)
			p.mu.Lock()
			p.jobs = append(p.jobs, j)
			if j.next.Before(next) {
				next = j.next
			}
			p.mu.Unlock()
		}
		timer.Reset(time.Until(next))
		select {
		case <-ctx.Done():
			return
		case <-wake:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		case <-timer.C:
		}
	}
}
