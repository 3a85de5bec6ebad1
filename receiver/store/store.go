// Package store is the receiver's durable state: the outbox of pending
// deliveries, idempotency keys, dead letters and the audit log. Store is
// the interface; Bolt, the embedded default, keeps it in one bbolt file for
// one replica, and receiver/store/pgstore in PostgreSQL for any number.
//
// Bolt's writes are group-committed: everything queued while a transaction
// commits goes into the next one, so concurrent requests share one fsync.
package store

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/prometheus/alertmanager/template"
	bolt "go.etcd.io/bbolt"

	"github.com/open-autoglm/autoglm-monitor/receiver/notify"
	"github.com/open-autoglm/autoglm-monitor/receiver/oncall"
)

var (
	bucketOutbox = []byte("outbox")
	bucketIdem   = []byte("idempotency")
	bucketAudit  = []byte("audit")
	bucketDead   = []byte("dead")
	// bucketFlight holds the outbox keys of deliveries being sent, kept apart
	// so marking one costs a tiny write instead of re-encoding it.
	bucketFlight = []byte("inflight")
)

// Delivery is one notification to deliver over one channel: an outbox entry.
type Delivery struct {
	// Seq orders deliveries by acceptance; it is the outbox key (not in the value).
	Seq uint64 `json:"-"`
	// ID is the idempotency key: group key, status, fingerprints with start/end and channel.
	ID string `json:"id"`
	// Base is the ID without the channel, used to derive fallback deliveries' IDs.
	Base       string   `json:"base"`
	Channel    string   `json:"channel"`
	Route      string   `json:"route"`
	Fallback   []string `json:"fallback,omitempty"`
	IsFallback bool     `json:"is_fallback,omitempty"`
	// EscalateAt is when Fallback is used if this delivery has not succeeded (zero: no time trigger).
	EscalateAt            time.Time `json:"escalate_at,omitzero"`
	EscalateAfterFailures int       `json:"escalate_after_failures,omitempty"`
	Escalated             bool      `json:"escalated,omitempty"`

	GroupKey        string          `json:"group_key"`
	Priority        notify.Priority `json:"priority"`
	Data            *template.Data  `json:"data"`
	TruncatedAlerts int             `json:"truncated_alerts,omitempty"`
	Received        time.Time       `json:"received"`
	ExpireAt        time.Time       `json:"expire_at"`

	Attempts    int       `json:"attempts"`
	Failures    int       `json:"failures"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// InFlight is set durably before a send; finding it set at start means a
	// crash may have happened after the provider accepted the message.
	InFlight  bool   `json:"-"`
	LastError string `json:"last_error,omitempty"`
	LastCode  string `json:"last_code,omitempty"`
	// SentParts are the provider messages of this notification already
	// accepted (parts of a split text, SMS per number): never sent again.
	SentParts []string `json:"sent_parts,omitempty"`

	// Step is set on the pages of an escalation chain: the chain step, from 1.
	Step int `json:"step,omitempty"`
	// Recipients are the people a page is for (mentioned, texted, called).
	Recipients []oncall.Recipient `json:"recipients,omitempty"`
	// Note makes the delivery an announcement (who claimed the group).
	Note string `json:"note,omitempty"`
}

// Notification converts the delivery for a channel.
func (d *Delivery) Notification() *notify.Notification {
	return &notify.Notification{
		ID: d.ID, GroupKey: d.GroupKey, Data: d.Data, Priority: d.Priority,
		Route: d.Route, Received: d.Received, TruncatedAlerts: d.TruncatedAlerts, Note: d.Note,
	}
}

// Audit outcomes.
const (
	OutcomeReceived   = "received"
	OutcomeDuplicate  = "duplicate"
	OutcomeUnrouted   = "unrouted"
	OutcomeDelivered  = "delivered"
	OutcomeRetry      = "retry"
	OutcomePermanent  = "permanent"
	OutcomeConfig     = "config"
	OutcomeDead       = "dead_letter"
	OutcomeEscalated  = "escalated"
	OutcomeUncertain  = "uncertain"
	OutcomeTemplating = "template_error"
	// On call: escalation chains, claims, silences, calls, schedules.
	OutcomeIncidentOpened   = "incident_opened"
	OutcomeEscalationStep   = "escalation_step"
	OutcomeNobodyOnCall     = "nobody_on_call"
	OutcomeClaimed          = "claimed"
	OutcomeSilenced         = "silenced"
	OutcomeIncidentResolved = "incident_resolved"
	OutcomeCancelled        = "cancelled"
	OutcomeScheduleChanged  = "schedule_changed"
	OutcomeCallPlaced       = "call_placed"
	OutcomeCallAnswered     = "call_answered"
	OutcomeCallUnanswered   = "call_unanswered"
	OutcomeCallUnknown      = "call_result_unknown"
)

// Record is one audit log entry: a received payload or a delivery attempt.
type Record struct {
	// Cursor identifies the record for pagination; not stored.
	Cursor       string    `json:"cursor,omitempty"`
	Time         time.Time `json:"time"`
	Outcome      string    `json:"outcome"`
	GroupKey     string    `json:"group_key,omitempty"`
	Status       string    `json:"status,omitempty"`
	Alertnames   []string  `json:"alertnames,omitempty"`
	Fingerprints []string  `json:"fingerprints,omitempty"`
	Receiver     string    `json:"receiver,omitempty"`
	Route        string    `json:"route,omitempty"`
	Channel      string    `json:"channel,omitempty"`
	Target       string    `json:"target,omitempty"`
	Priority     string    `json:"priority,omitempty"`
	DeliveryID   string    `json:"delivery_id,omitempty"`
	Attempt      int       `json:"attempt,omitempty"`
	Digest       int       `json:"digest,omitempty"`
	Code         string    `json:"code,omitempty"`
	Error        string    `json:"error,omitempty"`
	Latency      float64   `json:"latency_seconds,omitempty"`
	Count        int       `json:"count,omitempty"`
	// By is who acted (claimed, silenced); People who a step paged.
	By     string   `json:"by,omitempty"`
	People []string `json:"people,omitempty"`
	// Detail describes an on-call record (step, silence, call, schedule change).
	Detail string `json:"detail,omitempty"`
}

// Options tune the store.
type Options struct {
	// CommitDelay is how long a write waits for others to share its fsync.
	CommitDelay time.Duration
	// DedupWindow is how long an idempotency key suppresses an identical notification.
	DedupWindow time.Duration
	// Retention is how long audit records and dead letters are kept.
	Retention time.Duration
	Now       func() time.Time
}

// WithDefaults fills the options left zero: the system clock, a one-hour
// deduplication window and 30 days of retention.
func (o Options) WithDefaults() Options {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.DedupWindow <= 0 {
		o.DedupWindow = time.Hour
	}
	if o.Retention <= 0 {
		o.Retention = 30 * 24 * time.Hour
	}
	return o
}

// Bolt is the embedded store: one bbolt file, one replica.
type Bolt struct {
	db   *bolt.DB
	opts Options
	ops  chan *op
	quit chan struct{}
	done chan struct{}
}

// op is one write waiting for the group commit.
type op struct {
	fn   func(*bolt.Tx) error
	done chan error
}

// maxGroup caps how many writes share one transaction.
const maxGroup = 2048

// ErrUnavailable wraps failures to write, which the API answers with 503.
var ErrUnavailable = errors.New("store unavailable")

// Open opens (creating if needed) the store in dir.
func Open(dir string, o Options) (*Bolt, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("create store directory: %w", err)
	}
	o = o.WithDefaults()
	path := filepath.Join(dir, "receiver.db")
	bo := &bolt.Options{
		Timeout: 5 * time.Second,
		// The freelist is rebuilt on open instead of written on every commit.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// Growing the map blocks writers; start with room for a large outbox.
		InitialMmapSize: 64 << 20,
	}
	initBuckets := func(db *bolt.DB) error {
		return db.Update(func(tx *bolt.Tx) error {
			for _, b := range [][]byte{bucketOutbox, bucketIdem, bucketAudit, bucketDead, bucketFlight} {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := create(path, bo, initBuckets); err != nil {
			return nil, err
		}
	}
	db, err := openChecked(path, bo)
	if err != nil {
		return nil, err
	}
	if err := initBuckets(db); err != nil {
		return nil, errors.Join(fmt.Errorf("initialise store: %w", err), db.Close())
	}
	s := &Bolt{db: db, opts: o, ops: make(chan *op, maxGroup), quit: make(chan struct{}), done: make(chan struct{})}
	go s.committer()
	return s, nil
}

// ErrClosed is returned for writes after Close.
var ErrClosed = errors.New("store closed")

// Close stops the committer and closes the database file.
func (s *Bolt) Close() error {
	select {
	case <-s.quit:
		return nil
	default:
	}
	close(s.quit)
	<-s.done
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// write runs fn in a transaction shared with the writes that queued up
// while the previous transaction was committing (group commit): under load
// one fsync covers many requests, at rest a write commits right away.
func (s *Bolt) write(fn func(*bolt.Tx) error) error {
	o := &op{fn: fn, done: make(chan error, 1)}
	select {
	case s.ops <- o:
	case <-s.quit:
		return ErrClosed
	}
	select {
	case err := <-o.done:
		return err
	case <-s.done:
		// The committer may have finished this op just before stopping.
		select {
		case err := <-o.done:
			return err
		default:
			return ErrClosed
		}
	}
}

func (s *Bolt) committer() {
	defer close(s.done)
	group := make([]*op, 0, maxGroup)
	for {
		select {
		case <-s.quit:
			// Fail whatever is still queued.
			for {
				select {
				case o := <-s.ops:
					o.done <- ErrClosed
				default:
					return
				}
			}
		case o := <-s.ops:
			group = append(group[:0], o)
			if s.opts.CommitDelay > 0 {
				time.Sleep(s.opts.CommitDelay)
			}
		drain:
			for len(group) < maxGroup {
				select {
				case o := <-s.ops:
					group = append(group, o)
				default:
					break drain
				}
			}
			s.commit(group)
		}
	}
}

func (s *Bolt) commit(group []*op) {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, o := range group {
			if err := o.fn(tx); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		for _, o := range group {
			o.done <- nil
		}
		return
	}
	if len(group) == 1 {
		group[0].done <- err
		return
	}
	// One write failed the shared transaction: run each alone so only it fails.
	for _, o := range group {
		o.done <- s.db.Update(o.fn)
	}
}

func u64(v uint64) []byte {
	b := make([]byte, 8)
	binary.BigEndian.PutUint64(b, v)
	return b
}

// auditKey orders records by time, then by insertion.
func auditKey(t time.Time, seq uint64) []byte {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano()))
	binary.BigEndian.PutUint64(k[8:], seq)
	return k
}

func putAudit(tx *bolt.Tx, recs []*Record) error {
	b := tx.Bucket(bucketAudit)
	for _, r := range recs {
		seq, err := b.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := b.Put(auditKey(r.Time, seq), v); err != nil {
			return err
		}
	}
	return nil
}

// encode marshals deliveries before the write transaction, so the one
// goroutine that commits spends its time writing, not encoding.
func encode(ds []*Delivery) ([][]byte, error) {
	out := make([][]byte, len(ds))
	for i, d := range ds {
		v, err := json.Marshal(d)
		if err != nil {
			return nil, fmt.Errorf("encode delivery: %w", err)
		}
		out[i] = v
	}
	return out, nil
}

// idemValue is the idempotency record: when the key was accepted and its outbox entry.
func idemValue(now time.Time, seq uint64) []byte {
	v := make([]byte, 16)
	binary.BigEndian.PutUint64(v, uint64(now.UnixNano()))
	binary.BigEndian.PutUint64(v[8:], seq)
	return v
}

// isDuplicate reports whether a key is within the dedup window or its delivery is still pending.
func isDuplicate(tx *bolt.Tx, v []byte, now time.Time, window time.Duration) bool {
	if len(v) < 16 {
		return false
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(v)))
	if now.Sub(at) < window {
		return true
	}
	return tx.Bucket(bucketOutbox).Get(v[8:16]) != nil
}

// Accept durably records a received payload and enqueues the deliveries whose
// idempotency key is not live. It returns the accepted deliveries (with Seq
// set) and how many were duplicates. It returns only after fsync.
func (s *Bolt) Accept(rec *Record, ds []*Delivery) (accepted []*Delivery, dups int, err error) {
	vals, err := encode(ds)
	if err != nil {
		return nil, 0, err
	}
	err = s.write(func(tx *bolt.Tx) error {
		// A failed group commit runs this again alone; start from scratch each time.
		var err error
		accepted, dups, err = s.enqueueTx(tx, ds, vals)
		if err != nil {
			return err
		}
		r := *rec
		r.Count = len(accepted)
		recs := []*Record{&r}
		if dups > 0 {
			dr := *rec
			dr.Outcome = OutcomeDuplicate
			dr.Count = dups
			recs = append(recs, &dr)
		}
		return putAudit(tx, recs)
	})
	if err != nil {
		return nil, 0, fmt.Errorf("%w: accept payload: %v", ErrUnavailable, err)
	}
	return accepted, dups, nil
}

// enqueueTx puts the deliveries whose idempotency key is not live into the
// outbox and returns them, and how many were duplicates.
func (s *Bolt) enqueueTx(tx *bolt.Tx, ds []*Delivery, vals [][]byte) ([]*Delivery, int, error) {
	now := s.opts.Now()
	idem := tx.Bucket(bucketIdem)
	outbox := tx.Bucket(bucketOutbox)
	accepted, dups := make([]*Delivery, 0, len(ds)), 0
	for i, d := range ds {
		if isDuplicate(tx, idem.Get([]byte(d.ID)), now, s.opts.DedupWindow) {
			dups++
			continue
		}
		seq, err := outbox.NextSequence()
		if err != nil {
			return nil, 0, err
		}
		d.Seq = seq
		if err := outbox.Put(u64(seq), vals[i]); err != nil {
			return nil, 0, err
		}
		if err := idem.Put([]byte(d.ID), idemValue(now, seq)); err != nil {
			return nil, 0, err
		}
		accepted = append(accepted, d)
	}
	return accepted, dups, nil
}

// Pending loads every delivery in the outbox in acceptance order.
func (s *Bolt) Pending() ([]*Delivery, error) {
	var out []*Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		flight := tx.Bucket(bucketFlight)
		return tx.Bucket(bucketOutbox).ForEach(func(k, v []byte) error {
			d := new(Delivery)
			if err := json.Unmarshal(v, d); err != nil {
				return fmt.Errorf("decode outbox entry: %w", err)
			}
			d.Seq = binary.BigEndian.Uint64(k)
			d.InFlight = flight.Get(k) != nil
			out = append(out, d)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("load outbox: %w", err)
	}
	return out, nil
}

// Change is one durable state transition of a delivery.
type Change struct {
	Delivery *Delivery
	// Done removes the delivery from the outbox (delivered or dead).
	Done bool
	// Dead also keeps a copy as a dead letter.
	Dead bool
	// FlagOnly writes just the in-flight flag; the rest of the delivery is unchanged.
	FlagOnly bool
}

// Apply writes state changes, new deliveries and audit records in one transaction.
// New deliveries get Seq assigned and are skipped (not returned) when their idempotency key is live.
func (s *Bolt) Apply(changes []Change, add []*Delivery, recs []*Record) (added []*Delivery, err error) {
	states := make([][]byte, len(changes))
	for i, c := range changes {
		if c.FlagOnly || (c.Done && !c.Dead) {
			continue
		}
		if states[i], err = json.Marshal(c.Delivery); err != nil {
			return nil, fmt.Errorf("encode delivery: %w", err)
		}
	}
	addVals, err := encode(add)
	if err != nil {
		return nil, err
	}
	err = s.write(func(tx *bolt.Tx) error {
		added = added[:0]
		outbox := tx.Bucket(bucketOutbox)
		flight := tx.Bucket(bucketFlight)
		for i, c := range changes {
			d := c.Delivery
			key := u64(d.Seq)
			var err error
			switch {
			case c.Done:
				err = errors.Join(outbox.Delete(key), flight.Delete(key))
			case d.InFlight:
				err = flight.Put(key, nil)
			default:
				err = flight.Delete(key)
			}
			if err != nil {
				return err
			}
			if !c.Done && !c.FlagOnly {
				if err := outbox.Put(key, states[i]); err != nil {
					return err
				}
			}
			if c.Dead {
				if err := tx.Bucket(bucketDead).Put(auditKey(s.opts.Now(), d.Seq), states[i]); err != nil {
					return err
				}
			}
		}
		now := s.opts.Now()
		idem := tx.Bucket(bucketIdem)
		for i, d := range add {
			if isDuplicate(tx, idem.Get([]byte(d.ID)), now, s.opts.DedupWindow) {
				continue
			}
			seq, err := outbox.NextSequence()
			if err != nil {
				return err
			}
			d.Seq = seq
			if err := outbox.Put(u64(seq), addVals[i]); err != nil {
				return err
			}
			if err := idem.Put([]byte(d.ID), idemValue(now, seq)); err != nil {
				return err
			}
			added = append(added, d)
		}
		return putAudit(tx, recs)
	})
	if err != nil {
		return nil, fmt.Errorf("write delivery state: %w", err)
	}
	return added, nil
}

// DeadLetters returns the stored dead letters, oldest first.
func (s *Bolt) DeadLetters() ([]*Delivery, error) {
	var out []*Delivery
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDead).ForEach(func(k, v []byte) error {
			d := new(Delivery)
			if err := json.Unmarshal(v, d); err != nil {
				return err
			}
			d.Seq = binary.BigEndian.Uint64(k[8:])
			out = append(out, d)
			return nil
		})
	})
	return out, err
}

// Query selects audit records, newest first.
type Query struct {
	From, To  time.Time
	Alertname string
	Channel   string
	Outcome   string
	Limit     int
	// Cursor continues after the record with this cursor.
	Cursor string
}

// ErrBadCursor is returned for a cursor this store did not hand out.
var ErrBadCursor = errors.New("invalid cursor")

// Audit runs q and returns the matching records and the cursor of the next page ("" when done).
func (s *Bolt) Audit(q Query) ([]Record, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	var start []byte
	if q.Cursor != "" {
		k, err := hex.DecodeString(q.Cursor)
		if err != nil || len(k) != 16 {
			return nil, "", ErrBadCursor
		}
		start = k
	}
	out := make([]Record, 0, min(q.Limit, 256))
	next := ""
	err := s.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAudit).Cursor()
		var k, v []byte
		switch {
		case start != nil:
			k, v = c.Seek(start)
			if k != nil && bytes.Equal(k, start) {
				k, v = c.Prev()
			} else if k == nil {
				k, v = c.Last()
			} else {
				k, v = c.Prev()
			}
		case !q.To.IsZero():
			k, v = c.Seek(auditKey(q.To, ^uint64(0)))
			if k == nil {
				k, v = c.Last()
			} else if bytes.Compare(k, auditKey(q.To, ^uint64(0))) > 0 {
				k, v = c.Prev()
			}
		default:
			k, v = c.Last()
		}
		from := q.From.UnixNano()
		for ; k != nil; k, v = c.Prev() {
			ts := int64(binary.BigEndian.Uint64(k))
			if !q.From.IsZero() && ts < from {
				break
			}
			if !q.To.IsZero() && ts > q.To.UnixNano() {
				continue
			}
			var r Record
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("decode audit record: %w", err)
			}
			if !matches(&r, q) {
				continue
			}
			if len(out) == q.Limit {
				next = out[len(out)-1].Cursor
				return nil
			}
			r.Cursor = hex.EncodeToString(k)
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("query audit log: %w", err)
	}
	return out, next, nil
}

func matches(r *Record, q Query) bool {
	if q.Channel != "" && r.Channel != q.Channel {
		return false
	}
	if q.Outcome != "" && r.Outcome != q.Outcome {
		return false
	}
	if q.Alertname != "" {
		for _, a := range r.Alertnames {
			if a == q.Alertname {
				return true
			}
		}
		return false
	}
	return true
}

// Prune deletes audit records and dead letters older than the retention and
// idempotency keys past the dedup window whose delivery is no longer pending.
// It returns how many entries were deleted.
func (s *Bolt) Prune() (int, error) {
	now := s.opts.Now()
	auditCut := u64(uint64(now.Add(-s.opts.Retention).UnixNano()))
	n := 0
	err := s.db.Update(func(tx *bolt.Tx) error {
		// Deleting while a cursor walks a bucket skips keys, so collect first.
		for _, name := range [][]byte{bucketAudit, bucketDead} {
			b := tx.Bucket(name)
			var old [][]byte
			c := b.Cursor()
			for k, _ := c.First(); k != nil && bytes.Compare(k[:8], auditCut) < 0; k, _ = c.Next() {
				old = append(old, bytes.Clone(k))
			}
			for _, k := range old {
				if err := b.Delete(k); err != nil {
					return err
				}
			}
			n += len(old)
		}
		b := tx.Bucket(bucketIdem)
		var old [][]byte
		if err := b.ForEach(func(k, v []byte) error {
			if !isDuplicate(tx, v, now, s.opts.DedupWindow) {
				old = append(old, bytes.Clone(k))
			}
			return nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		n += len(old)
		return nil
	})
	if err != nil {
		return n, fmt.Errorf("prune store: %w", err)
	}
	return n, nil
}

// Alertnames returns the distinct alertname labels, sorted.
func Alertnames(as template.Alerts) []string {
	seen := make(map[string]bool, 1)
	out := make([]string, 0, 1)
	for _, a := range as {
		n := a.Labels["alertname"]
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out
}
