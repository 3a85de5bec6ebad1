package pgstore

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"
)

// migrations are applied in order, each once, in its own transaction; a
// released version is never edited, a change is a new entry.
var migrations = []string{
	// 1: outbox, idempotency keys, audit log, dead letters, channel leases.
	`CREATE SEQUENCE outbox_seq;
	CREATE TABLE outbox (
		seq       bigint PRIMARY KEY,
		id        text NOT NULL,
		channel   text NOT NULL,
		in_flight boolean NOT NULL DEFAULT false,
		-- the inserting transaction: replicas poll for rows committed since their last look
		xid       xid8 NOT NULL DEFAULT pg_current_xact_id(),
		delivery  bytea NOT NULL
	);
	CREATE INDEX outbox_channel ON outbox (channel, seq);
	CREATE INDEX outbox_fresh ON outbox (channel, xid);
	CREATE TABLE idempotency (
		id          text PRIMARY KEY,
		accepted_at bigint NOT NULL,
		seq         bigint NOT NULL
	);
	CREATE TABLE audit (
		id         bigserial PRIMARY KEY,
		at         bigint NOT NULL,
		channel    text NOT NULL,
		outcome    text NOT NULL,
		alertnames text[] NOT NULL,
		record     jsonb NOT NULL
	);
	CREATE INDEX audit_at ON audit (at, id);
	CREATE TABLE dead (
		id       bigserial PRIMARY KEY,
		at       bigint NOT NULL,
		seq      bigint NOT NULL,
		delivery bytea NOT NULL
	);
	CREATE INDEX dead_at ON dead (at);
	CREATE TABLE channel_lease (
		channel text PRIMARY KEY,
		owner   text NOT NULL,
		until   timestamptz NOT NULL
	);
	CREATE TABLE incident (
		id    text PRIMARY KEY,
		value bytea NOT NULL
	);`,
}

// lockKey is the advisory lock replicas take while migrating ("autoglm").
const lockKey = 0x6175746f676c6d

// migrate brings the schema to the latest version. Replicas starting
// together serialise on an advisory lock; a database newer than this
// binary is refused rather than written with an older layout.
func migrate(ctx context.Context, pool *pgxpool.Pool) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", lockKey); err != nil {
		return fmt.Errorf("take the migration lock: %w", err)
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", lockKey) }()
	if _, err := conn.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&current); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("the database schema is at version %d, newer than this receiver knows (%d): upgrade the receiver", current, len(migrations))
	}
	for v := current + 1; v <= len(migrations); v++ {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, migrations[v-1]); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("apply schema version %d: %w", v, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version) VALUES ($1)", v); err != nil {
			_ = tx.Rollback(ctx)
			return fmt.Errorf("record schema version %d: %w", v, err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("commit schema version %d: %w", v, err)
		}
	}
	return nil
}

// SchemaVersion is the version this binary migrates to.
func SchemaVersion() int { return len(migrations) }
