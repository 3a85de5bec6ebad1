package store

import (
	"fmt"
	"sort"

	bolt "go.etcd.io/bbolt"
)

// bucketIncidents holds the escalation state of alert groups (JSON by
// group id). It is created on first use so stores written by older
// versions open unchanged.
var bucketIncidents = []byte("incidents")

// PutIncidents durably writes incident values by id, deletes the ids in
// del and appends the audit records, in one transaction (after fsync).
func (s *Bolt) PutIncidents(vals map[string][]byte, del []string, recs []*Record) error {
	ids := make([]string, 0, len(vals))
	for id := range vals {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	err := s.write(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucketIncidents)
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := b.Put([]byte(id), vals[id]); err != nil {
				return err
			}
		}
		for _, id := range del {
			if err := b.Delete([]byte(id)); err != nil {
				return err
			}
		}
		return putAudit(tx, recs)
	})
	if err != nil {
		return fmt.Errorf("%w: write incidents: %v", ErrUnavailable, err)
	}
	return nil
}

// Incidents returns every stored incident value by id.
func (s *Bolt) Incidents() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketIncidents)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			out[string(k)] = append([]byte(nil), v...)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("read incidents: %w", err)
	}
	return out, nil
}

// AcceptPages durably enqueues deliveries that the receiver made itself
// (escalation pages, announcements), dropping those whose idempotency key is
// live, with their audit records.
func (s *Bolt) AcceptPages(ds []*Delivery, recs []*Record) ([]*Delivery, error) {
	vals, err := encode(ds)
	if err != nil {
		return nil, err
	}
	var accepted []*Delivery
	err = s.write(func(tx *bolt.Tx) error {
		var err error
		if accepted, _, err = s.enqueueTx(tx, ds, vals); err != nil {
			return err
		}
		return putAudit(tx, recs)
	})
	if err != nil {
		return nil, fmt.Errorf("%w: enqueue pages: %v", ErrUnavailable, err)
	}
	return accepted, nil
}
