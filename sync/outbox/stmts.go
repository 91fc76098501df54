package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
)

// stmts are the writer's prepared statements, all on the pinned writer
// connection (Store.wc).
type stmts struct {
	begin, commit, rollback                                                                  *sql.Stmt
	insStream                                                                                *sql.Stmt
	insRecord, insInv, insLog, insName, kvSet, kvDel, kvLen, setCounter, delRecords, insDead *sql.Stmt
	usageGet, usagePut                                                                       *sql.Stmt
	insRecords, insInvs                                                                      *sql.Stmt // rowsPerInsert rows
}

const (
	recordCols     = 4
	insertRecord   = "INSERT INTO records (seq, stream, time, payload) VALUES "
	invocationCols = 14
	insertInv      = "INSERT INTO invocations (id, fn, version, event_id, source, subject, time, reason, message, duration_us, memory, memory_cap, cold, records) VALUES "
)

// values returns n placeholder tuples of cols each.
func values(n, cols int) string {
	tuple := "(" + strings.TrimSuffix(strings.Repeat("?, ", cols), ", ") + ")"
	return strings.TrimSuffix(strings.Repeat(tuple+", ", n), ", ")
}

func (p *stmts) prepare(ctx context.Context, db *sql.Conn) error {
	for _, x := range []struct {
		s **sql.Stmt
		q string
	}{
		{&p.begin, "BEGIN IMMEDIATE"},
		{&p.commit, "COMMIT"},
		{&p.rollback, "ROLLBACK"},
		{&p.insRecord, insertRecord + values(1, recordCols)},
		{&p.insRecords, insertRecord + values(rowsPerInsert, recordCols)},
		{&p.insInv, insertInv + values(1, invocationCols)},
		{&p.insInvs, insertInv + values(rowsPerInsert, invocationCols)},
		{&p.insLog, "INSERT INTO logs (id, fn, time, level, message, event_id, reason) VALUES (?, ?, ?, ?, ?, ?, ?)"},
		{&p.insName, "INSERT INTO names (id, name) VALUES (?, ?)"},
		{&p.insStream, "INSERT INTO streams (id, fn, version, source, subject) VALUES (?, ?, ?, ?, ?)"},
		{&p.usageGet, "SELECT count, cold, duration_us, max_us, gb_seconds, hist FROM usage_minutes WHERE fn = ? AND minute = ?"},
		{&p.usagePut, "INSERT OR REPLACE INTO usage_minutes (fn, minute, count, cold, duration_us, max_us, gb_seconds, hist) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"},
		{&p.kvSet, "INSERT INTO kv (fn, key, value) VALUES (?, ?, ?) ON CONFLICT (fn, key) DO UPDATE SET value = excluded.value"},
		{&p.kvDel, "DELETE FROM kv WHERE fn = ? AND key = ?"},
		{&p.kvLen, "SELECT length(key) + length(value) FROM kv WHERE fn = ? AND key = ?"},
		{&p.setCounter, "INSERT INTO counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = excluded.value"},
		{&p.delRecords, "DELETE FROM records WHERE seq IN (SELECT value FROM json_each(?)) RETURNING length(payload)"},
		{&p.insDead, "INSERT INTO dead_letters (seq, fn, version, source, subject, time, payload, reason, at) SELECT r.seq, st.fn, st.version, st.source, st.subject, r.time, r.payload, ?, ? FROM records r JOIN streams st ON st.id = r.stream WHERE r.seq IN (SELECT value FROM json_each(?))"},
	} {
		st, err := db.PrepareContext(ctx, x.q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", x.q, err)
		}
		*x.s = st
	}
	return nil
}

func (p *stmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{p.begin, p.commit, p.rollback, p.insRecord, p.insRecords, p.insInv, p.insInvs, p.insLog, p.insName, p.insStream, p.kvSet, p.kvDel, p.kvLen, p.setCounter, p.delRecords, p.insDead, p.usageGet, p.usagePut} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
