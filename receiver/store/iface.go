package store

import (
	"context"
	"errors"
)

// Store is the durable state the API and the engine use.
type Store interface {
	// Accept durably records a received payload and enqueues the deliveries
	// whose idempotency key is not live; it returns the accepted deliveries
	// (Seq set) and how many were duplicates, only once they are durable.
	Accept(rec *Record, ds []*Delivery) (accepted []*Delivery, dups int, err error)
	// Pending loads every delivery in the outbox in acceptance order.
	Pending() ([]*Delivery, error)
	// Apply writes state changes, new deliveries (skipped when their key is
	// live) and audit records in one transaction.
	Apply(changes []Change, add []*Delivery, recs []*Record) (added []*Delivery, err error)
	// DeadLetters returns the stored dead letters, oldest first.
	DeadLetters() ([]*Delivery, error)
	// Audit runs q: matching records newest first and the next page's cursor.
	Audit(q Query) ([]Record, string, error)
	// Prune applies the retention and the dedup window.
	Prune() (int, error)
	// PutIncidents durably writes escalation state by group id, deletes the
	// ids in del and appends the audit records, in one transaction.
	PutIncidents(vals map[string][]byte, del []string, recs []*Record) error
	// Incidents returns every stored incident value by id.
	Incidents() (map[string][]byte, error)
	// AcceptPages durably enqueues deliveries the receiver made itself
	// (escalation pages, announcements), dropping those whose idempotency
	// key is live, with their audit records.
	AcceptPages(ds []*Delivery, recs []*Record) ([]*Delivery, error)
	Close() error
}

var _ Store = (*Bolt)(nil)

// Shared is a Store that several replicas use at once. Each channel is
// delivered by one replica at a time, the holder of its lease, so ordering,
// provider rate limits and the one-message-in-flight bound hold across
// replicas; a replica that stops renewing loses its channels to the others.
type Shared interface {
	Store
	// Lease acquires or renews this replica's lease on each of channels it
	// can (and on channels that only the outbox still names) and returns
	// the channels it holds now.
	Lease(ctx context.Context, channels []string) ([]string, error)
	// PendingOf loads the pending deliveries of channels in acceptance order.
	PendingOf(ctx context.Context, channels []string) ([]*Delivery, error)
	// Fresh returns the deliveries of channels committed since the previous
	// call (by any replica); some may be returned again.
	Fresh(ctx context.Context, channels []string) ([]*Delivery, error)
	// Release gives up this replica's leases so others take over at once.
	Release(ctx context.Context) error
}

// ErrLeaseLost is returned when marking a delivery in flight on a channel
// whose lease this replica no longer holds: another replica delivers it.
var ErrLeaseLost = errors.New("channel lease lost to another replica")
