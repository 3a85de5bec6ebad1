// Package pgstore keeps the receiver's outbox, idempotency keys, audit log
// and dead letters in PostgreSQL, shared by any number of replicas.
//
// Idempotency keys are a primary key, so the same notification sent by two
// Alertmanagers to two replicas becomes one outbox row per channel. Each
// channel is delivered by the replica holding its lease (a row renewed
// every lease/3 against the database clock); a replica that stops renewing
// loses its channels to the others once the lease runs out. Marking a
// delivery in flight checks the lease in the same statement, so a replica
// that lost a channel cannot start another send on it.
package pgstore

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/open-autoglm/autoglm-monitor/receiver/store"
)

// Config says where the database is.
type Config struct {
	// DSN is a libpq URL or key=value string.
	DSN string
	// Password, when set, replaces the DSN's.
	Password string
	// MaxConns bounds this replica's pool (0: pgxpool's default, 4 per CPU).
	MaxConns int
	// Lease is how long a channel stays this replica's without renewal.
	Lease time.Duration
	// Owner names this replica in the lease table (default host-pid-random).
	Owner string
}

// Store is a store.Shared on PostgreSQL.
type Store struct {
	pool  *pgxpool.Pool
	opts  store.Options
	lease time.Duration
	owner string
	// secrets are scrubbed from every error.
	secrets []string

	ops  chan *acceptOp
	quit chan struct{}
	wg   sync.WaitGroup

	mu sync.Mutex
	// xmin is the oldest transaction still running at the previous Fresh:
	// rows it or later ones commit are looked at again next time.
	xmin string
}

var _ store.Shared = (*Store)(nil)

// Open connects, applies the schema migrations and returns the store.
func Open(ctx context.Context, c Config, o store.Options) (*Store, error) {
	o = o.WithDefaults()
	if c.Lease <= 0 {
		c.Lease = 15 * time.Second
	}
	s := &Store{opts: o, lease: c.Lease, owner: c.Owner, secrets: []string{c.DSN, c.Password}}
	if s.owner == "" {
		host, _ := os.Hostname()
		s.owner = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), randomID())
	}
	cfg, err := pgxpool.ParseConfig(c.DSN)
	if err != nil {
		return nil, errors.New("receiver.storage.postgres.dsn is not a valid PostgreSQL connection string")
	}
	if pw, _ := cfgPassword(cfg); pw != "" {
		s.secrets = append(s.secrets, pw)
	}
	if c.Password != "" {
		cfg.ConnConfig.Password = c.Password
	}
	if c.MaxConns > 0 {
		cfg.MaxConns = int32(min(c.MaxConns, math.MaxInt32))
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "autoglm-receiver"
	target := fmt.Sprintf("%s:%d/%s as %s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database, cfg.ConnConfig.User)
	s.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, s.scrub(fmt.Errorf("connect to PostgreSQL %s: %w", target, err))
	}
	if err := s.pool.Ping(ctx); err != nil {
		s.pool.Close()
		return nil, s.scrub(fmt.Errorf("connect to PostgreSQL %s: %w", target, err))
	}
	if err := migrate(ctx, s.pool); err != nil {
		s.pool.Close()
		return nil, s.scrub(fmt.Errorf("PostgreSQL %s: %w", target, err))
	}
	if err := s.pool.QueryRow(ctx, "SELECT pg_snapshot_xmin(pg_current_snapshot())::text").Scan(&s.xmin); err != nil {
		s.pool.Close()
		return nil, s.scrub(fmt.Errorf("PostgreSQL %s: %w", target, err))
	}
	// Unbuffered: an Accept is either taken by a committer or refused at Close.
	s.ops, s.quit = make(chan *acceptOp), make(chan struct{})
	for range committers {
		s.wg.Add(1)
		go s.committer()
	}
	return s, nil
}

func cfgPassword(c *pgxpool.Config) (string, bool) {
	return c.ConnConfig.Password, c.ConnConfig.Password != ""
}

// scrub removes the DSN and passwords from err; the DSN never reaches a log.
func (s *Store) scrub(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, v := range s.secrets {
		if len(v) >= 4 && strings.Contains(msg, v) {
			msg, changed = strings.ReplaceAll(msg, v, "<secret>"), true
		}
	}
	if !changed {
		return err
	}
	return errors.New(msg)
}

func (s *Store) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 30*time.Second)
}

// Close releases this replica's leases and the connections.
func (s *Store) Close() error {
	select {
	case <-s.quit:
		return nil
	default:
	}
	close(s.quit)
	s.wg.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.Release(ctx)
	s.pool.Close()
	return err
}

// candidates are deliveries to insert unless their idempotency key is live:
// a key is new, or older than the dedup window with its delivery gone. The
// key's primary key makes concurrent replicas agree on one winner.
const candidates = `cand AS (
	SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[]) WITH ORDINALITY AS c(id, channel, delivery, ord)
), keys AS (
	INSERT INTO idempotency AS i (id, accepted_at, seq)
	SELECT id, $4, nextval('outbox_seq') FROM cand ORDER BY ord
	ON CONFLICT (id) DO UPDATE SET accepted_at = excluded.accepted_at, seq = excluded.seq
		WHERE i.accepted_at < $5 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = i.seq)
	RETURNING id, seq
), ins AS (
	INSERT INTO outbox (seq, id, channel, delivery)
	SELECT k.seq, c.id, c.channel, c.delivery FROM cand c JOIN keys k USING (id)
	RETURNING seq, id
)`

func encode(ds []*store.Delivery) (ids, chans []string, vals [][]byte, err error) {
	ids, chans, vals = make([]string, len(ds)), make([]string, len(ds)), make([][]byte, len(ds))
	for i, d := range ds {
		if vals[i], err = json.Marshal(d); err != nil {
			return nil, nil, nil, fmt.Errorf("encode delivery: %w", err)
		}
		ids[i], chans[i] = d.ID, d.Channel
	}
	return ids, chans, vals, nil
}

func (s *Store) keyArgs(ds []*store.Delivery) ([]any, error) {
	ids, chans, vals, err := encode(ds)
	if err != nil {
		return nil, err
	}
	now := s.opts.Now()
	return []any{ids, chans, vals, now.UnixNano(), now.Add(-s.opts.DedupWindow).UnixNano()}, nil
}

// assign sets Seq on the deliveries the database inserted and returns them in order.
func assign(ds []*store.Delivery, rows pgx.Rows) ([]*store.Delivery, error) {
	seqs := map[string]uint64{}
	for rows.Next() {
		var seq int64
		var id string
		if err := rows.Scan(&seq, &id); err != nil {
			return nil, err
		}
		seqs[id] = uint64(seq)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	var out []*store.Delivery
	for _, d := range ds {
		if seq, ok := seqs[d.ID]; ok {
			d.Seq = seq
			out = append(out, d)
		}
	}
	return out, nil
}

// acceptSQL enqueues one payload's deliveries and audits it.
const acceptSQL = `WITH ` + candidates + `, rec AS (
	INSERT INTO audit (at, channel, outcome, alertnames, record)
	SELECT $6::bigint, '', $7::text, $8::text[], jsonb_set($9::jsonb, '{count}', to_jsonb((SELECT count(*) FROM ins)))
	UNION ALL
	SELECT $6::bigint, '', 'duplicate', $8::text[], jsonb_set(jsonb_set($9::jsonb, '{outcome}', '"duplicate"'), '{count}',
		to_jsonb((SELECT count(*) FROM cand) - (SELECT count(*) FROM ins)))
	WHERE (SELECT count(*) FROM cand) > (SELECT count(*) FROM ins)
)
SELECT seq, id FROM ins`

// acceptOp is one Accept waiting for its group's commit.
type acceptOp struct {
	args     []any
	ds       []*store.Delivery
	accepted []*store.Delivery
	done     chan error
}

// maxGroup bounds how many payloads one commit carries.
const maxGroup = 256

// committers is how many groups may be in flight to the database at once.
const committers = 2

// Accept implements store.Store. Payloads accepted concurrently share one
// transaction and one commit (group commit, as in the embedded store): under
// load one WAL flush covers many requests, at rest a payload commits alone.
func (s *Store) Accept(rec *store.Record, ds []*store.Delivery) ([]*store.Delivery, int, error) {
	args, err := s.keyArgs(ds)
	if err != nil {
		return nil, 0, err
	}
	r, err := json.Marshal(rec)
	if err != nil {
		return nil, 0, fmt.Errorf("encode audit record: %w", err)
	}
	op := &acceptOp{args: append(args, rec.Time.UnixNano(), rec.Outcome, nonNil(rec.Alertnames), string(r)), ds: ds, done: make(chan error, 1)}
	select {
	case s.ops <- op:
	case <-s.quit:
		return nil, 0, fmt.Errorf("%w: store closed", store.ErrUnavailable)
	}
	if err := <-op.done; err != nil {
		return nil, 0, fmt.Errorf("%w: accept payload: %v", store.ErrUnavailable, err)
	}
	return op.accepted, len(ds) - len(op.accepted), nil
}

func (s *Store) committer() {
	defer s.wg.Done()
	group := make([]*acceptOp, 0, maxGroup)
	for {
		select {
		case <-s.quit:
			return
		case op := <-s.ops:
			group = append(group[:0], op)
		}
	drain:
		for len(group) < maxGroup {
			select {
			case op := <-s.ops:
				group = append(group, op)
			default:
				break drain
			}
		}
		err := s.commitGroup(group)
		for _, op := range group {
			op.done <- err
		}
		clear(group)
	}
}

// commitGroup runs the group's statements in one implicit transaction.
// Replicas enqueueing the same notifications at once can deadlock on the
// idempotency keys; PostgreSQL then aborts one group, which is retried.
func (s *Store) commitGroup(group []*acceptOp) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = s.tryGroup(group); !retryable(err) {
			return err
		}
	}
	return err
}

func (s *Store) tryGroup(group []*acceptOp) error {
	b := &pgx.Batch{}
	for _, op := range group {
		b.Queue(acceptSQL, op.args...)
	}
	ctx, cancel := s.ctx()
	defer cancel()
	br := s.pool.SendBatch(ctx, b)
	var err error
	for _, op := range group {
		var rows pgx.Rows
		if rows, err = br.Query(); err != nil {
			break
		}
		op.accepted, err = assign(op.ds, rows)
		rows.Close()
		if err != nil {
			break
		}
	}
	if err = errors.Join(err, br.Close()); err != nil {
		for _, op := range group {
			op.accepted = nil
			for _, d := range op.ds {
				d.Seq = 0
			}
		}
		return s.scrub(err)
	}
	return nil
}

// retryable reports a deadlock or serialization failure.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

func nonNil(ss []string) []string {
	if ss == nil {
		return []string{}
	}
	return ss
}

func (s *Store) pending(ctx context.Context, where string, args ...any) ([]*store.Delivery, error) {
	rows, err := s.pool.Query(ctx, "SELECT seq, in_flight, delivery FROM outbox "+where+" ORDER BY seq", args...)
	if err != nil {
		return nil, fmt.Errorf("load outbox: %w", s.scrub(err))
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var seq int64
		var flight bool
		var v []byte
		if err := rows.Scan(&seq, &flight, &v); err != nil {
			return nil, fmt.Errorf("load outbox: %w", err)
		}
		d := new(store.Delivery)
		if err := json.Unmarshal(v, d); err != nil {
			return nil, fmt.Errorf("decode outbox entry %d: %w", seq, err)
		}
		d.Seq, d.InFlight = uint64(seq), flight
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load outbox: %w", s.scrub(err))
	}
	return out, nil
}

// Pending implements store.Store: every replica's outbox.
func (s *Store) Pending() ([]*store.Delivery, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	return s.pending(ctx, "")
}

// PendingOf implements store.Shared.
func (s *Store) PendingOf(ctx context.Context, channels []string) ([]*store.Delivery, error) {
	return s.pending(ctx, "WHERE channel = ANY($1)", channels)
}

// Fresh implements store.Shared. Rows carry the id of the transaction that
// inserted them; every transaction at or after the oldest one running at
// the previous call may have committed since, so those rows are read again
// (the engine drops the ones it has).
func (s *Store) Fresh(ctx context.Context, channels []string) ([]*store.Delivery, error) {
	s.mu.Lock()
	since := s.xmin
	s.mu.Unlock()
	rows, err := s.pool.Query(ctx, `WITH snap AS (SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x)
		SELECT snap.x, o.seq, o.in_flight, o.delivery FROM snap
		LEFT JOIN outbox o ON o.channel = ANY($1) AND o.xid >= $2::xid8
		ORDER BY o.seq`, channels, since)
	if err != nil {
		return nil, fmt.Errorf("poll outbox: %w", s.scrub(err))
	}
	defer rows.Close()
	var out []*store.Delivery
	next := since
	for rows.Next() {
		var seq *int64
		var flight *bool
		var v []byte
		if err := rows.Scan(&next, &seq, &flight, &v); err != nil {
			return nil, fmt.Errorf("poll outbox: %w", err)
		}
		if seq == nil {
			continue
		}
		d := new(store.Delivery)
		if err := json.Unmarshal(v, d); err != nil {
			return nil, fmt.Errorf("decode outbox entry %d: %w", *seq, err)
		}
		d.Seq, d.InFlight = uint64(*seq), *flight
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("poll outbox: %w", s.scrub(err))
	}
	s.mu.Lock()
	s.xmin = next
	s.mu.Unlock()
	return out, nil
}

// Apply implements store.Store in one implicit transaction (one batch, one
// round trip). Marking a delivery in flight needs this replica's lease on
// its channel; without it Apply returns store.ErrLeaseLost (the rest of the
// batch, such as the outcome of the previous send, is still written).
func (s *Store) Apply(changes []store.Change, add []*store.Delivery, recs []*store.Record) ([]*store.Delivery, error) {
	var marks, unmarks, deletes, upSeq, deadSeq []int64
	var upVal, deadVal [][]byte
	var upFlight []bool
	for _, c := range changes {
		d := c.Delivery
		switch {
		case c.Done:
			deletes = append(deletes, int64(d.Seq))
			if c.Dead {
				v, err := json.Marshal(d)
				if err != nil {
					return nil, fmt.Errorf("encode delivery: %w", err)
				}
				deadSeq, deadVal = append(deadSeq, int64(d.Seq)), append(deadVal, v)
			}
		case c.FlagOnly && d.InFlight:
			marks = append(marks, int64(d.Seq))
		case c.FlagOnly:
			unmarks = append(unmarks, int64(d.Seq))
		default:
			v, err := json.Marshal(d)
			if err != nil {
				return nil, fmt.Errorf("encode delivery: %w", err)
			}
			upSeq, upVal, upFlight = append(upSeq, int64(d.Seq)), append(upVal, v), append(upFlight, d.InFlight)
		}
	}
	b := &pgx.Batch{}
	// The outcomes first: they are true whatever happens to the marks.
	if len(upSeq) > 0 {
		b.Queue(`UPDATE outbox AS o SET delivery = u.d, in_flight = u.f
			FROM unnest($1::bigint[], $2::bytea[], $3::bool[]) AS u(seq, d, f) WHERE o.seq = u.seq`, upSeq, upVal, upFlight)
	}
	if len(unmarks) > 0 {
		b.Queue("UPDATE outbox SET in_flight = false WHERE seq = ANY($1)", unmarks)
	}
	if len(deletes) > 0 {
		b.Queue("DELETE FROM outbox WHERE seq = ANY($1)", deletes)
	}
	now := s.opts.Now()
	if len(deadSeq) > 0 {
		b.Queue("INSERT INTO dead (at, seq, delivery) SELECT $1, u.seq, u.d FROM unnest($2::bigint[], $3::bytea[]) AS u(seq, d)",
			now.UnixNano(), deadSeq, deadVal)
	}
	if err := queueAudit(b, recs); err != nil {
		return nil, err
	}
	addAt := -1
	if len(add) > 0 {
		args, err := s.keyArgs(add)
		if err != nil {
			return nil, err
		}
		addAt = b.Len()
		b.Queue(`WITH `+candidates+` SELECT seq, id FROM ins`, args...)
	}
	markAt := -1
	if len(marks) > 0 {
		markAt = b.Len()
		// All or none: every row still pending, not in flight, on a
		// channel whose lease this replica holds.
		b.Queue(`WITH ok AS (
			SELECT count(*) = cardinality($1::bigint[]) AS ok FROM outbox o
			JOIN channel_lease l ON l.channel = o.channel AND l.owner = $2 AND l.until > now()
			WHERE o.seq = ANY($1) AND NOT o.in_flight)
		UPDATE outbox AS o SET in_flight = true FROM ok WHERE ok.ok AND o.seq = ANY($1)`, marks, s.owner)
	}
	if b.Len() == 0 {
		return nil, nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	br := s.pool.SendBatch(ctx, b)
	var added []*store.Delivery
	var lost bool
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		switch i {
		case addAt:
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				added, err = assign(add, rows)
				rows.Close()
			}
		case markAt:
			var tag interface{ RowsAffected() int64 }
			if tag, err = br.Exec(); err == nil && tag.RowsAffected() != int64(len(marks)) {
				lost = true
			}
		default:
			_, err = br.Exec()
		}
	}
	err = errors.Join(err, br.Close())
	if err != nil {
		return nil, fmt.Errorf("write delivery state: %w", s.scrub(err))
	}
	if lost {
		return added, store.ErrLeaseLost
	}
	return added, nil
}

// queueAudit adds the insert of recs to b.
func queueAudit(b *pgx.Batch, recs []*store.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ats, chans, outcomes, names, vals := make([]int64, len(recs)), make([]string, len(recs)), make([]string, len(recs)), make([]string, len(recs)), make([]string, len(recs))
	for i, r := range recs {
		v, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("encode audit record: %w", err)
		}
		ats[i], chans[i], outcomes[i], names[i], vals[i] = r.Time.UnixNano(), r.Channel, r.Outcome, strings.Join(r.Alertnames, "\x1f"), string(v)
	}
	b.Queue(`INSERT INTO audit (at, channel, outcome, alertnames, record)
		SELECT u.at, u.ch, u.oc, string_to_array(u.n, E'\x1f'), u.r::jsonb
		FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[]) AS u(at, ch, oc, n, r)`,
		ats, chans, outcomes, names, vals)
	return nil
}

// runBatch sends b in one implicit transaction; the rows of the query at
// index rowsAt (-1: none) go to scan.
func (s *Store) runBatch(b *pgx.Batch, rowsAt int, scan func(pgx.Rows) error) error {
	if b.Len() == 0 {
		return nil
	}
	ctx, cancel := s.ctx()
	defer cancel()
	br := s.pool.SendBatch(ctx, b)
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		if i == rowsAt {
			var rows pgx.Rows
			if rows, err = br.Query(); err == nil {
				err = scan(rows)
				rows.Close()
			}
			continue
		}
		_, err = br.Exec()
	}
	return s.scrub(errors.Join(err, br.Close()))
}

// PutIncidents implements store.Store.
func (s *Store) PutIncidents(vals map[string][]byte, del []string, recs []*store.Record) error {
	ids, vs := make([]string, 0, len(vals)), make([][]byte, 0, len(vals))
	for id, v := range vals {
		ids, vs = append(ids, id), append(vs, v)
	}
	b := &pgx.Batch{}
	if len(ids) > 0 {
		b.Queue(`INSERT INTO incident (id, value) SELECT * FROM unnest($1::text[], $2::bytea[])
			ON CONFLICT (id) DO UPDATE SET value = excluded.value`, ids, vs)
	}
	if len(del) > 0 {
		b.Queue("DELETE FROM incident WHERE id = ANY($1)", del)
	}
	if err := queueAudit(b, recs); err != nil {
		return err
	}
	if err := s.runBatch(b, -1, nil); err != nil {
		return fmt.Errorf("%w: write incidents: %v", store.ErrUnavailable, err)
	}
	return nil
}

// Incidents implements store.Store.
func (s *Store) Incidents() (map[string][]byte, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT id, value FROM incident")
	if err != nil {
		return nil, fmt.Errorf("read incidents: %w", s.scrub(err))
	}
	defer rows.Close()
	out := map[string][]byte{}
	for rows.Next() {
		var id string
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("read incidents: %w", err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read incidents: %w", s.scrub(err))
	}
	return out, nil
}

// AcceptPages implements store.Store: pages made by several replicas for
// the same step share an idempotency key, so one is kept.
func (s *Store) AcceptPages(ds []*store.Delivery, recs []*store.Record) ([]*store.Delivery, error) {
	b := &pgx.Batch{}
	at := -1
	if len(ds) > 0 {
		args, err := s.keyArgs(ds)
		if err != nil {
			return nil, err
		}
		at = 0
		b.Queue(`WITH `+candidates+` SELECT seq, id FROM ins`, args...)
	}
	if err := queueAudit(b, recs); err != nil {
		return nil, err
	}
	var accepted []*store.Delivery
	err := s.runBatch(b, at, func(rows pgx.Rows) error {
		var err error
		accepted, err = assign(ds, rows)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: enqueue pages: %v", store.ErrUnavailable, err)
	}
	return accepted, nil
}

// DeadLetters implements store.Store.
func (s *Store) DeadLetters() ([]*store.Delivery, error) {
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, "SELECT seq, delivery FROM dead ORDER BY at, id")
	if err != nil {
		return nil, s.scrub(err)
	}
	defer rows.Close()
	var out []*store.Delivery
	for rows.Next() {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return nil, err
		}
		d := new(store.Delivery)
		if err := json.Unmarshal(v, d); err != nil {
			return nil, err
		}
		d.Seq = uint64(seq)
		out = append(out, d)
	}
	return out, s.scrub(rows.Err())
}

// cursor is the 16 bytes of (at, id), hex-encoded like the embedded store's.
func cursor(at, id int64) string {
	k := make([]byte, 16)
	binary.BigEndian.PutUint64(k, uint64(at))
	binary.BigEndian.PutUint64(k[8:], uint64(id))
	return hex.EncodeToString(k)
}

// Audit implements store.Store: the same answers from every replica.
func (s *Store) Audit(q store.Query) ([]store.Record, string, error) {
	if q.Limit <= 0 {
		q.Limit = 100
	}
	afterAt, afterID := int64(math.MaxInt64), int64(math.MaxInt64)
	if q.Cursor != "" {
		k, err := hex.DecodeString(q.Cursor)
		if err != nil || len(k) != 16 {
			return nil, "", store.ErrBadCursor
		}
		afterAt, afterID = int64(binary.BigEndian.Uint64(k)), int64(binary.BigEndian.Uint64(k[8:]))
	}
	from, to := int64(math.MinInt64), int64(math.MaxInt64)
	if !q.From.IsZero() {
		from = q.From.UnixNano()
	}
	if !q.To.IsZero() {
		to = q.To.UnixNano()
	}
	ctx, cancel := s.ctx()
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT id, at, record FROM audit
		WHERE ($1 = '' OR channel = $1) AND ($2 = '' OR outcome = $2) AND ($3 = '' OR $3 = ANY(alertnames))
			AND at >= $4 AND at <= $5 AND (at, id) < ($6, $7)
		ORDER BY at DESC, id DESC LIMIT $8`, q.Channel, q.Outcome, q.Alertname, from, to, afterAt, afterID, q.Limit+1)
	if err != nil {
		return nil, "", fmt.Errorf("query audit log: %w", s.scrub(err))
	}
	defer rows.Close()
	out := make([]store.Record, 0, min(q.Limit, 256))
	next := ""
	for rows.Next() {
		var id, at int64
		var v []byte
		if err := rows.Scan(&id, &at, &v); err != nil {
			return nil, "", fmt.Errorf("query audit log: %w", err)
		}
		if len(out) == q.Limit {
			next = out[len(out)-1].Cursor
			break
		}
		var r store.Record
		if err := json.Unmarshal(v, &r); err != nil {
			return nil, "", fmt.Errorf("decode audit record: %w", err)
		}
		r.Cursor = cursor(at, id)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("query audit log: %w", s.scrub(err))
	}
	return out, next, nil
}

// Prune implements store.Store; any replica may run it.
func (s *Store) Prune() (int, error) {
	now := s.opts.Now()
	ctx, cancel := s.ctx()
	defer cancel()
	b := &pgx.Batch{}
	cut := now.Add(-s.opts.Retention).UnixNano()
	b.Queue("DELETE FROM audit WHERE at < $1", cut)
	b.Queue("DELETE FROM dead WHERE at < $1", cut)
	b.Queue(`DELETE FROM idempotency i WHERE i.accepted_at < $1 AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.seq = i.seq)`,
		now.Add(-s.opts.DedupWindow).UnixNano())
	b.Queue("DELETE FROM channel_lease WHERE until < now() - interval '1 hour'")
	br := s.pool.SendBatch(ctx, b)
	n := 0
	var err error
	for i := 0; i < b.Len() && err == nil; i++ {
		var tag interface{ RowsAffected() int64 }
		if tag, err = br.Exec(); err == nil && i < 3 {
			n += int(tag.RowsAffected())
		}
	}
	if err = errors.Join(err, br.Close()); err != nil {
		return n, fmt.Errorf("prune store: %w", s.scrub(err))
	}
	return n, nil
}

// Lease implements store.Shared against the database's clock, so replicas'
// clocks do not matter.
func (s *Store) Lease(ctx context.Context, channels []string) ([]string, error) {
	rows, err := s.pool.Query(ctx, `INSERT INTO channel_lease AS l (channel, owner, until)
		SELECT c, $2, now() + $3 * interval '1 millisecond'
		FROM (SELECT unnest($1::text[]) AS c UNION SELECT DISTINCT channel FROM outbox) AS cs
		ON CONFLICT (channel) DO UPDATE SET owner = excluded.owner, until = excluded.until
			WHERE l.owner = excluded.owner OR l.until < now()
		RETURNING channel`, nonNil(channels), s.owner, s.lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("renew channel leases: %w", s.scrub(err))
	}
	held, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("renew channel leases: %w", s.scrub(err))
	}
	return held, nil
}

// Release implements store.Shared.
func (s *Store) Release(ctx context.Context) error {
	if _, err := s.pool.Exec(ctx, "DELETE FROM channel_lease WHERE owner = $1", s.owner); err != nil {
		return fmt.Errorf("release channel leases: %w", s.scrub(err))
	}
	return nil
}

// Owner is this replica's name in the lease table.
func (s *Store) Owner() string { return s.owner }

// Ping checks the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.scrub(s.pool.Ping(ctx)) }

func randomID() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
