package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/edgefn/edgefn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// usageKey is one function's minute in usage_minutes.
type usageKey struct{ fn, minute int64 }

// batch is one transaction in the making, on the pinned writer
// connection (Store.wc).
type batch struct {
	st       state
	newNames map[string]int64
	// newStreams are the streams this batch added; gcStreams says the batch
	// deleted unused ones (the in-memory map is reloaded after the commit).
	newStreams map[streamKey]int64
	gcStreams  bool
	// Buffered rows, inserted many per statement by flush: one statement
	// per row costs more in cgo calls and database/sql than SQLite's work.
	recRows []any
	invRows []any
	usage   map[usageKey]*usageAgg // successful invocations of this batch
	// wroteUsage: the batch wrote the usage sums (its own and the pending
	// ones of earlier batches).
	wroteUsage bool
	flush      bool // an opFlush is in the batch: write the usage sums
	added      bool
	deleted    bool
	drops      bool
	now        time.Time
}

// commitBatch commits reqs in one transaction and answers each of them.
// tick marks the idle maintenance batch (expiry), retention the periodic
// age-based pruning of invocation records.
func (s *Store) commitBatch(reqs []*request, tick, retention bool) {
	defer s.complete()
	live := reqs[:0:0]
	for _, r := range reqs {
		switch {
		case r.kind == opExec:
			r.err = r.exec(r.ctx, s.wc)
			s.finish(r)
		case r.ctx.Err() != nil:
			r.err = r.ctx.Err()
			s.finish(r)
		default:
			live = append(live, r)
		}
	}
	if len(live) == 0 && !tick {
		return
	}
	bg := context.Background() // no cancellation inside a transaction
	b := &batch{st: s.st.clone(), newNames: map[string]int64{}, newStreams: map[streamKey]int64{}, now: time.Now()}
	// BEGIN IMMEDIATE ... COMMIT on the pinned connection, by prepared
	// statements: no pool hand-off and no sql.Tx per batch. A failed
	// statement or COMMIT rolls back (SQLite may have rolled back already,
	// or left the transaction open: ROLLBACK is harmless either way), so
	// the connection is out of any transaction for the next batch.
	_, err := s.stmts.begin.ExecContext(bg)
	if err == nil {
		err = s.apply(bg, b, live, tick, retention)
		if err == nil {
			_, err = s.stmts.commit.ExecContext(bg)
		}
		if err != nil {
			_, _ = s.stmts.rollback.ExecContext(bg)
		}
	}
	if err != nil {
		f := s.storageFailure(err)
		s.log.Error("outbox commit failed", "err", f, "invocations", len(live))
		for _, r := range live {
			r.out, r.err = nil, f
			s.finish(r)
		}
		return
	}
	if b.wroteUsage {
		clear(s.usagePend)
		s.usageWrote = b.now
	} else {
		mergeUsage(&s.usagePend, b.usage)
	}
	s.defMu.Lock()
	s.usageDirty = len(s.usagePend) > 0
	s.defMu.Unlock()
	for name, id := range b.newNames {
		s.names[name] = id
	}
	for k, id := range b.newStreams {
		s.streams[k] = id
	}
	if b.deleted {
		s.deletedSinceGC = true
	}
	if b.gcStreams {
		if err := s.loadStreams(bg); err != nil {
			s.log.Error("outbox: reload streams after pruning", "err", err)
		}
		s.deletedSinceGC = false
	}
	b.st.commits++
	s.st = b.st
	s.mu.Lock()
	s.seen = b.st // never mutated again: the next batch clones it
	s.mu.Unlock()
	if b.added {
		// Before answering, so a caller that saw its commit also sees the
		// notification.
		select {
		case s.notify <- struct{}{}:
		default:
		}
	}
	for _, r := range live {
		s.finish(r)
	}
}

func (s *Store) storageFailure(err error) *edgefn.Failure {
	var se sqlite3.Error
	if errors.As(err, &se) && se.Code == sqlite3.ErrFull {
		return &edgefn.Failure{Reason: edgefn.ReasonStorage,
			Message: fmt.Sprintf("disk full: cannot commit to %s (commits resume by themselves once space is freed)", s.cfg.Path), Err: err}
	}
	return &edgefn.Failure{Reason: edgefn.ReasonStorage, Message: "cannot commit to " + s.cfg.Path, Err: err}
}

func (s *Store) apply(ctx context.Context, b *batch, reqs []*request, tick, retention bool) error {
	for _, r := range reqs {
		var err error
		switch r.kind {
		case opInvoke:
			err = s.applyInvocation(ctx, b, r)
		case opConfirm:
			if err = s.flush(ctx, b); err == nil {
				_, err = s.deleteRecords(ctx, b, r.seqs)
			}
		case opDeadLetter:
			if err = s.flush(ctx, b); err == nil {
				err = s.applyDeadLetter(ctx, b, r)
			}
		case opFlush:
			b.flush = true
		}
		if err != nil {
			return err
		}
	}
	if err := s.flush(ctx, b); err != nil {
		return err
	}
	// Usage sums are written at most once per DeferFlush (a read-modify-
	// write per function and minute), by the first transaction after it.
	if b.flush || tick || b.now.Sub(s.usageWrote) >= DeferFlush {
		if len(b.usage) > 0 || len(s.usagePend) > 0 {
			all := map[usageKey]*usageAgg{}
			mergeUsage(&all, s.usagePend)
			mergeUsage(&all, b.usage)
			if err := s.writeUsage(ctx, b, all); err != nil {
				return fmt.Errorf("usage: %w", err)
			}
		}
		b.wroteUsage = true
	}
	if s.cfg.OnFull == DropOldest && b.st.bytes > int64(s.cfg.MaxBytes) {
		if err := s.dropOldest(ctx, b); err != nil {
			return fmt.Errorf("drop oldest: %w", err)
		}
	}
	if s.cfg.MaxAge > 0 && (b.added || tick) {
		if err := s.expire(ctx, b); err != nil {
			return fmt.Errorf("expire: %w", err)
		}
	}
	if err := s.prune(ctx, b, retention); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	if tick {
		if err := s.pruneStreams(ctx, b); err != nil {
			return fmt.Errorf("prune streams: %w", err)
		}
	}
	if b.deleted {
		// max(seq) no longer proves the high-water mark once rows are gone.
		if _, err := s.stmts.setCounter.ExecContext(ctx, counterLastSeq, int64(b.st.lastSeq)); err != nil {
			return err
		}
	}
	if b.drops {
		for name, v := range b.st.drops {
			if v != s.st.drops[name] {
				if _, err := s.stmts.setCounter.ExecContext(ctx, name, v); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

const counterLastSeq = "last_seq"

// rowsPerInsert is how many rows one multi-row INSERT carries.
const rowsPerInsert = 32

// flush inserts the buffered record and invocation rows.
func (s *Store) flush(ctx context.Context, b *batch) error {
	for _, x := range []struct {
		rows      *[]any
		cols      int
		one, many *sql.Stmt
	}{
		{&b.recRows, recordCols, s.stmts.insRecord, s.stmts.insRecords},
		{&b.invRows, invocationCols, s.stmts.insInv, s.stmts.insInvs},
	} {
		rows := *x.rows
		for len(rows) >= rowsPerInsert*x.cols {
			if _, err := x.many.ExecContext(ctx, rows[:rowsPerInsert*x.cols]...); err != nil {
				return err
			}
			rows = rows[rowsPerInsert*x.cols:]
		}
		for len(rows) > 0 {
			if _, err := x.one.ExecContext(ctx, rows[:x.cols]...); err != nil {
				return err
			}
			rows = rows[x.cols:]
		}
		*x.rows = (*x.rows)[:0]
	}
	return nil
}

func (s *Store) nameID(ctx context.Context, b *batch, name string) (int64, error) {
	return intern(s.names, b.newNames, &b.st.nextName, name, func(id int64) error {
		_, err := s.stmts.insName.ExecContext(ctx, id, name)
		return err
	})
}

// streamKey is what the records of one stream share.
type streamKey struct {
	fn, version, source int64
	subject             string
}

func (s *Store) streamID(ctx context.Context, b *batch, k streamKey) (int64, error) {
	return intern(s.streams, b.newStreams, &b.st.nextStream, k, func(id int64) error {
		_, err := s.stmts.insStream.ExecContext(ctx, id, k.fn, k.version, k.source, k.subject)
		return err
	})
}

// intern returns the id of k: known since the store opened, added earlier
// in the batch, or else the batch's next id, which insert writes.
func intern[K comparable](known, added map[K]int64, next *int64, k K, insert func(id int64) error) (int64, error) {
	if id, ok := known[k]; ok {
		return id, nil
	}
	if id, ok := added[k]; ok {
		return id, nil
	}
	*next++
	id := *next
	if err := insert(id); err != nil {
		return 0, err
	}
	added[k] = id
	return id, nil
}

// seqList formats seqs as a JSON array for json_each.
func seqList(seqs []uint64) string {
	var sb strings.Builder
	sb.WriteByte('[')
	for i, q := range seqs {
		if i > 0 {
			sb.WriteByte(',')
		}
		sb.WriteString(strconv.FormatUint(q, 10))
	}
	sb.WriteByte(']')
	return sb.String()
}

// deleteRecords deletes the given pending records, updating the accounting.
func (s *Store) deleteRecords(ctx context.Context, b *batch, seqs []uint64) (int64, error) {
	if len(seqs) == 0 {
		return 0, nil
	}
	var n, sum int64
	rows, err := s.stmts.delRecords.QueryContext(ctx, seqList(seqs))
	if err != nil {
		return 0, err
	}
	for rows.Next() {
		var l int64
		if err := rows.Scan(&l); err != nil {
			rows.Close()
			return 0, err
		}
		n++
		sum += l
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	b.st.depth -= n
	b.st.bytes -= sum + n*RecordOverhead
	b.deleted = b.deleted || n > 0
	return n, nil
}

func (s *Store) applyDeadLetter(ctx context.Context, b *batch, r *request) error {
	if len(r.seqs) == 0 {
		return nil
	}
	if _, err := s.stmts.insDead.ExecContext(ctx, r.reason, b.now.UnixMilli(), seqList(r.seqs)); err != nil {
		return err
	}
	n, err := s.deleteRecords(ctx, b, r.seqs)
	if err != nil {
		return err
	}
	b.st.deadCount += n
	if over := b.st.deadCount - int64(s.cfg.MaxDeadLetters); over > 0 {
		res, err := s.wc.ExecContext(ctx, "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)", over)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.deadCount -= k
		b.st.drops[DropDeadLetters] += k
		b.drops = true
		s.log.Warn("outbox: dead letters over max_dead_letters, oldest deleted", "deleted", k, "max_dead_letters", s.cfg.MaxDeadLetters)
	}
	return nil
}
