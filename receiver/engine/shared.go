package engine

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Shared mode: with a store.Shared (PostgreSQL) several replicas deliver one
// outbox. Each channel is delivered by the replica holding its lease, so
// ordering, provider rate limits and the one-message-in-flight bound hold
// across replicas. This replica renews its leases every LeaseEvery, loads
// the outbox of each channel it gains, polls every PollEvery for deliveries
// other replicas accepted on its channels, and drops the channels it loses.
// The store refuses an in-flight mark on a channel whose lease this replica
// no longer holds, or on a row that is gone or already in flight, so a
// stale queue never sends anything twice; the channel is reloaded instead.

// sharedState is the engine's view of its leases.
type sharedState struct {
	st store.Shared
	// held are the channels this replica delivers now.
	held map[string]bool
	// done are the deliveries this replica finished lately, by seq: a poll
	// that read the outbox before their deletion committed must not queue them again.
	done map[uint64]time.Time
}

func (e *Engine) shared() store.Shared {
	if e.sh == nil {
		return nil
	}
	return e.sh.st
}

// startShared takes the first leases, loads their outbox, and keeps both
// up to date until ctx ends; then it gives the leases up so others take over at once.
func (e *Engine) startShared(ctx context.Context) error {
	if err := e.renew(ctx); err != nil {
		return err
	}
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		lease := time.NewTicker(e.o.LeaseEvery)
		defer lease.Stop()
		poll := time.NewTicker(e.o.PollEvery)
		defer poll.Stop()
		for {
			select {
			case <-ctx.Done():
				rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
				if err := e.sh.st.Release(rctx); err != nil {
					e.o.Logger.Warn("cannot release channel leases; other replicas take over when they expire", "err", e.redact(err.Error()))
				}
				cancel()
				return
			case <-lease.C:
				if err := e.renew(ctx); err != nil && ctx.Err() == nil {
					e.o.Logger.Error("cannot renew channel leases", "err", e.redact(err.Error()))
				}
			case <-poll.C:
				if err := e.poll(ctx); err != nil && ctx.Err() == nil {
					e.o.Logger.Warn("cannot poll the shared outbox", "err", e.redact(err.Error()))
				}
			}
		}
	}()
	return nil
}

// renew renews this replica's leases, drops the queues of channels it lost
// and loads the outbox of channels it gained.
func (e *Engine) renew(ctx context.Context) error {
	e.mu.Lock()
	names := make([]string, 0, len(e.chans))
	for n := range e.chans {
		names = append(names, n)
	}
	e.mu.Unlock()
	sort.Strings(names)
	held, err := e.sh.st.Lease(ctx, names)
	if err != nil {
		return err
	}
	now := make(map[string]bool, len(held))
	for _, c := range held {
		now[c] = true
	}
	var gained []string
	e.mu.Lock()
	for c := range e.sh.held {
		if !now[c] {
			e.dropLocked(c)
		}
	}
	for c := range now {
		if !e.sh.held[c] {
			gained = append(gained, c)
		}
	}
	e.sh.held = now
	e.mu.Unlock()
	if len(gained) == 0 {
		return nil
	}
	sort.Strings(gained)
	if err := e.load(ctx, gained); err != nil {
		// Not loaded: gain them again at the next renewal.
		e.mu.Lock()
		for _, c := range gained {
			delete(e.sh.held, c)
		}
		e.mu.Unlock()
		return err
	}
	e.o.Logger.Info("delivering channels", "channels", gained)
	return nil
}

// dropLocked forgets a channel's queue. Called with e.mu held.
func (e *Engine) dropLocked(c string) {
	if q := e.queues[c]; q != nil {
		clear(q.pending)
		q.pending = q.pending[:0]
	}
}

// load replaces the queues of channels with their outbox. Deliveries found
// in flight were being sent by a replica that died (or lost its lease) in
// the middle: they are audited as uncertain and sent again.
func (e *Engine) load(ctx context.Context, channels []string) error {
	ds, err := e.sh.st.PendingOf(ctx, channels)
	if err != nil {
		return err
	}
	var changes []store.Change
	var recs []*store.Record
	now := e.o.Now()
	for _, d := range ds {
		if d.InFlight {
			d.InFlight = false
			changes = append(changes, store.Change{Delivery: d, FlagOnly: true})
			recs = append(recs, e.record(d, now, store.OutcomeUncertain, 0, "", "interrupted while sending (replica stopped or lost its lease); sending again", 0))
		}
	}
	if len(changes) > 0 {
		if _, err := e.o.Store.Apply(changes, nil, recs); err != nil {
			return err
		}
		e.o.Logger.Warn("resending notifications interrupted on another replica", "count", len(changes))
	}
	e.mu.Lock()
	for _, c := range channels {
		e.dropLocked(c)
	}
	e.mu.Unlock()
	e.Enqueue(ds)
	return nil
}

// doneWindow is how long finished deliveries are remembered against stale polls.
const doneWindow = time.Minute

// poll queues the deliveries other replicas accepted on this replica's channels.
func (e *Engine) poll(ctx context.Context) error {
	e.mu.Lock()
	held := make([]string, 0, len(e.sh.held))
	for c := range e.sh.held {
		held = append(held, c)
	}
	e.mu.Unlock()
	if len(held) == 0 {
		return nil
	}
	ds, err := e.sh.st.Fresh(ctx, held)
	if err != nil {
		return err
	}
	now := time.Now()
	e.mu.Lock()
	for seq, at := range e.sh.done {
		if now.Sub(at) > doneWindow {
			delete(e.sh.done, seq)
		}
	}
	have := map[uint64]bool{}
	for _, c := range held {
		if q := e.queues[c]; q != nil {
			for _, d := range q.pending {
				have[d.Seq] = true
			}
		}
	}
	fresh := ds[:0]
	for _, d := range ds {
		if _, gone := e.sh.done[d.Seq]; !gone && !have[d.Seq] && !d.InFlight {
			fresh = append(fresh, d)
		}
	}
	e.mu.Unlock()
	e.Enqueue(fresh)
	return nil
}

// finished remembers deliveries this replica completed. Called with e.mu held.
func (e *Engine) finishedLocked(ds []*store.Delivery) {
	if e.sh == nil {
		return
	}
	now := time.Now()
	for _, d := range ds {
		e.sh.done[d.Seq] = now
	}
}

// lost handles store.ErrLeaseLost from an in-flight mark: the channel's
// queue is stale (another replica took it, or a delivery is already done)
// and is reloaded from the store at the next renewal if still ours.
func (e *Engine) lost(err error, channel string) bool {
	if e.sh == nil || !errors.Is(err, store.ErrLeaseLost) {
		return false
	}
	e.mu.Lock()
	delete(e.sh.held, channel)
	e.dropLocked(channel)
	e.mu.Unlock()
	e.o.Logger.Info("channel queue out of date, reloading it from the shared store", "channel", channel)
	return true
}

// Delivering is how many channels this replica delivers now.
func (e *Engine) Delivering() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.sh == nil {
		return len(e.chans)
	}
	n := 0
	for c := range e.sh.held {
		if e.chans[c] != nil {
			n++
		}
	}
	return n
}
