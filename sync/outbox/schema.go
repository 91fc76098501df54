package outbox

import (
	"context"
	"database/sql"
	"fmt"
)

// v1RecordColumns are a record's columns in the first schema; a dead letter
// kept them, with its reason and time. Migration 1 built from it is byte
// for byte the text that shipped.
const v1RecordColumns = `
		seq     INTEGER PRIMARY KEY,
		fn      INTEGER NOT NULL,
		version INTEGER NOT NULL,
		source  INTEGER NOT NULL,
		subject TEXT NOT NULL,
		time    INTEGER NOT NULL,
		payload BLOB NOT NULL`

// migrations is the ordered schema history: migrations[i] takes the
// database from user_version i to i+1. Append only; never edit a shipped
// entry. Each runs in its own transaction together with the user_version
// bump, so a crash leaves the schema at a whole version.
//
// Names (functions, sources) are interned in names so that the hot rows
// (records, invocations) carry small integers instead of repeated strings:
// on an SD card every byte of a row is written about twice (WAL, then the
// checkpoint).
var migrations = []string{
	// 1: the first schema.
	`CREATE TABLE names (
		id   INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE
	);
	CREATE TABLE records (` + v1RecordColumns + `
	);
	CREATE TABLE dead_letters (` + v1RecordColumns + `,
		reason  TEXT NOT NULL,
		at      INTEGER NOT NULL
	);
	CREATE TABLE invocations (
		id          INTEGER PRIMARY KEY,
		fn          INTEGER NOT NULL,
		version     INTEGER NOT NULL,
		event_id    TEXT NOT NULL,
		source      INTEGER NOT NULL,
		subject     TEXT NOT NULL,
		time        INTEGER NOT NULL,
		reason      TEXT,
		message     TEXT,
		duration_us INTEGER NOT NULL,
		memory      INTEGER NOT NULL,
		memory_cap  INTEGER NOT NULL,
		cold        INTEGER NOT NULL,
		records     INTEGER NOT NULL
	);
	CREATE TABLE logs (
		id       INTEGER PRIMARY KEY,
		fn       INTEGER NOT NULL,
		time     INTEGER NOT NULL,
		level    INTEGER NOT NULL,
		message  TEXT NOT NULL,
		event_id TEXT NOT NULL,
		reason   TEXT
	);
	CREATE INDEX logs_fn ON logs (fn, id);
	CREATE TABLE kv (
		fn    INTEGER NOT NULL,
		key   TEXT NOT NULL,
		value BLOB NOT NULL,
		PRIMARY KEY (fn, key)
	) WITHOUT ROWID;
	CREATE TABLE counters (
		name  TEXT PRIMARY KEY,
		value INTEGER NOT NULL
	) WITHOUT ROWID;`,
	// 2: successful invocations are summed per function and minute instead
	// of a row each (see usage.go). Rows already in invocations, successes
	// included, stay there and Usage keeps counting them until retention
	// deletes them, so nothing is lost in the conversion.
	`CREATE TABLE usage_minutes (
		fn          INTEGER NOT NULL,
		minute      INTEGER NOT NULL,
		count       INTEGER NOT NULL,
		cold        INTEGER NOT NULL,
		duration_us INTEGER NOT NULL,
		max_us      INTEGER NOT NULL,
		gb_seconds  REAL NOT NULL,
		hist        BLOB NOT NULL,
		PRIMARY KEY (fn, minute)
	) WITHOUT ROWID;`,
	// 3: what a record shares with the other records of its invocation and
	// of its topic (function, version, source, subject) moves to streams,
	// interned like names; a record row keeps seq, stream, time and payload
	// (about 120 bytes instead of 150 for a 100-byte payload and a 25-byte
	// subject). Existing records are converted in place.
	`CREATE TABLE streams (
		id      INTEGER PRIMARY KEY,
		fn      INTEGER NOT NULL,
		version INTEGER NOT NULL,
		source  INTEGER NOT NULL,
		subject TEXT NOT NULL,
		UNIQUE (fn, version, source, subject)
	);
	INSERT INTO streams (fn, version, source, subject)
		SELECT DISTINCT fn, version, source, subject FROM records;
	CREATE TABLE records_v3 (
		seq     INTEGER PRIMARY KEY,
		stream  INTEGER NOT NULL,
		time    INTEGER NOT NULL,
		payload BLOB NOT NULL
	);
	INSERT INTO records_v3 (seq, stream, time, payload)
		SELECT r.seq, s.id, r.time, r.payload FROM records r JOIN streams s
		ON s.fn = r.fn AND s.version = r.version AND s.source = r.source AND s.subject = r.subject;
	DROP TABLE records;
	ALTER TABLE records_v3 RENAME TO records;`,
}

// migrate brings the database to the latest schema version.
func migrate(ctx context.Context, db *sql.DB, path string) error {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("outbox %s: read schema version: %w", path, err)
	}
	if v > len(migrations) {
		return fmt.Errorf("outbox %s: schema version %d is newer than this edgefn understands (%d): upgrade edgefn, or move the file aside to start a fresh outbox", path, v, len(migrations))
	}
	for ; v < len(migrations); v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("outbox %s: migrate to version %d: %w", path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("outbox %s: migrate to version %d: %w", path, v+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			_ = tx.Rollback()
			return fmt.Errorf("outbox %s: migrate to version %d: %w", path, v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("outbox %s: migrate to version %d: commit: %w", path, v+1, err)
		}
	}
	return nil
}
