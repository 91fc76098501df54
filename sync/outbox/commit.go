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

// Invocation is what one finished invocation leaves in the outbox.
type Invocation struct {
	Function string
	Version  int
	EventID  string
	Source   edgefn.Source
	Subject  string
	// Time is the event's time; it is also the time of the emitted records
	// and what MaxAge is measured from. Zero means now.
	Time time.Time
	// Err is nil for a successful invocation, else its failure (normally a
	// *edgefn.Failure).
	Err         error
	Duration    time.Duration
	MemoryBytes uint64
	MemoryCap   int64
	Cold        bool
	// Effects in call order; only emit, kv_set and kv_delete are stored
	// here, the others are ignored. They are stored only if Err is nil.
	Effects []edgefn.Effect
	Logs    []edgefn.LogLine
}

// Commit queues inv into the next group commit and blocks until it is
// durable (as configured by Durability) or ctx is done. It returns the seqs
// of the records it stored, in emit order.
//
// A failed invocation (inv.Err != nil) stores only its invocation record and
// logs, and Commit returns (nil, nil). Commit returns a *edgefn.Failure when
// the store refuses the invocation: ReasonOutboxFull (budget full under
// reject_new), ReasonOutputLimit (the function's kv store would pass
// MaxKVKeys, MaxKVBytes or MaxKeyLen) — then none of its effects are stored
// and its invocation record says why — or ReasonStorage when the
// transaction could not be committed (disk full, I/O error: nothing of it is
// stored; later commits retry by themselves). If ctx ends first Commit
// returns ctx.Err(), and the invocation may or may not be committed later.
// After Close it returns ErrClosed.
func (s *Store) Commit(ctx context.Context, inv *Invocation) ([]uint64, error) {
	if inv == nil || inv.Function == "" {
		return nil, errors.New("outbox: commit: invocation without a function name")
	}
	r := &request{kind: opInvoke, ctx: ctx, inv: inv, done: make(chan struct{})}
	if err := s.enqueue(ctx, r); err != nil {
		return nil, err
	}
	select {
	case <-r.done:
		return r.out, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type opKind uint8

const (
	opInvoke opKind = iota
	opConfirm
	opDeadLetter
	opExec // test hook: runs a function on the writer connection
)

type request struct {
	kind   opKind
	ctx    context.Context
	inv    *Invocation
	seqs   []uint64
	reason string
	exec   func(context.Context, *sql.DB) error

	out  []uint64
	err  error
	done chan struct{}
}

// rows estimates the rows a request adds, for FlushRecords.
func (r *request) rows() int {
	if r.kind != opInvoke {
		return 1
	}
	n := 0
	for i := range r.inv.Effects {
		if r.inv.Effects[i].Kind == edgefn.EffectEmit {
			n++
		}
	}
	return max(n, 1)
}

func (s *Store) enqueue(ctx context.Context, r *request) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	select {
	case s.queue <- r:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// do queues a non-invocation request and waits for its commit.
func (s *Store) do(ctx context.Context, r *request) error {
	r.ctx = ctx
	r.done = make(chan struct{})
	if err := s.enqueue(ctx, r); err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run is the committer: the only goroutine that writes to the database.
func (s *Store) run() {
	defer close(s.exited)
	maint := time.Second
	if s.cfg.MaxAge > 0 {
		maint = min(maint, max(s.cfg.MaxAge/4, 10*time.Millisecond))
	}
	tick := time.NewTicker(maint)
	defer tick.Stop()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	quiet := time.NewTimer(time.Hour)
	quiet.Stop()
	var batch []*request
	// expect is how many invocations a batch gathers before it commits
	// without waiting for the window or the quiet time: the size of recent
	// batches (a decaying maximum), so the callers a commit answered are
	// back in the next one without idling once they are.
	expect := 0
	lastCheckpoint, lastWrite := time.Now(), time.Now()
	for {
		var first *request
		select {
		case first = <-s.queue:
		case <-tick.C:
			now := time.Now()
			ckpt := now.Sub(lastCheckpoint) >= s.cfg.CheckpointInterval
			if s.cfg.MaxAge > 0 || ckpt || s.streamsOver() {
				s.commitBatch(nil, true, ckpt)
			}
			if ckpt {
				lastCheckpoint = now
				// Only an idle store truncates its WAL: under load the
				// automatic checkpoints recycle it in place.
				if now.Sub(lastWrite) >= s.cfg.CheckpointInterval/2 {
					s.reclaim()
				}
			}
			continue
		case <-s.stop:
			for {
				batch = batch[:0]
				for len(batch) < 1024 {
					select {
					case r := <-s.queue:
						batch = append(batch, r)
						continue
					default:
					}
					break
				}
				if len(batch) == 0 {
					return
				}
				s.commitBatch(batch, false, false)
			}
		}
		lastWrite = time.Now()
		batch = batch[:0]
		rows, invs := 0, 0
		add := func(r *request) {
			batch = append(batch, r)
			rows += r.rows()
			if r.kind == opInvoke {
				invs++
			}
		}
		add(first)
		if s.cfg.FlushInterval > 0 && rows < s.cfg.FlushRecords {
			if first.kind == opConfirm || first.kind == opDeadLetter {
				// An uplink's request waits up to one window for an
				// invocation to share the commit with, instead of costing a
				// transaction of its own.
				timer.Reset(s.cfg.FlushInterval)
			carry:
				for {
					select {
					case r := <-s.queue:
						add(r)
						if r.kind == opInvoke || rows >= s.cfg.FlushRecords {
							break carry
						}
					case <-timer.C:
						break carry
					case <-s.stop:
						break carry
					}
				}
				timer.Stop()
			}
			timer.Reset(s.cfg.FlushInterval)
		gather:
			for rows < s.cfg.FlushRecords {
				select {
				case r := <-s.queue:
					add(r)
					continue
				default:
				}
				// The queue is empty. If as many invocations are in as
				// recent commits answered, their callers are back: commit
				// now. Else wait for more, but not past the window, and not for
				// long once arrivals stop (every caller of a burst is
				// probably in already).
				if expect > 1 && invs >= expect {
					break gather
				}
				if s.cfg.FlushQuiet > 0 {
					quiet.Reset(s.cfg.FlushQuiet)
				}
				select {
				case r := <-s.queue:
					add(r)
				case <-quiet.C:
					break gather
				case <-timer.C:
					break gather
				case <-s.stop:
					break gather // the stop case above drains the rest
				}
			}
			timer.Stop()
			quiet.Stop()
		} else {
		drain:
			for rows < s.cfg.FlushRecords {
				select {
				case r := <-s.queue:
					add(r)
				default:
					break drain
				}
			}
		}
		s.commitBatch(batch, false, false)
		expect = max(invs, expect-(expect+31)/32)
		clear(batch)
	}
}

// batch is one transaction in the making.
type usageKey struct{ fn, minute int64 }

type batch struct {
	tx       *sql.Tx
	st       state
	newNames map[string]int64
	// newStreams are the streams this batch added; gcStreams says the batch
	// deleted unused ones (the in-memory map is reloaded after the commit).
	newStreams map[streamKey]int64
	gcStreams  bool
	stmts      map[*sql.Stmt]*sql.Stmt
	// Buffered rows, inserted many per statement by flush: one statement
	// per row costs more in cgo calls and database/sql than SQLite's work.
	recRows []any
	invRows []any
	usage   map[usageKey]*usageAgg // successful invocations of this batch
	added   bool
	deleted bool
	drops   bool
	now     time.Time
}

func (b *batch) stmt(s *sql.Stmt) *sql.Stmt {
	if t, ok := b.stmts[s]; ok {
		return t
	}
	t := b.tx.Stmt(s)
	b.stmts[s] = t
	return t
}

// commitBatch commits reqs in one transaction and answers each of them.
// tick marks the idle maintenance batch (expiry), retention the periodic
// age-based pruning of invocation records.
func (s *Store) commitBatch(reqs []*request, tick, retention bool) {
	live := reqs[:0:0]
	for _, r := range reqs {
		switch {
		case r.kind == opExec:
			r.err = r.exec(r.ctx, s.wdb)
			close(r.done)
		case r.ctx.Err() != nil:
			r.err = r.ctx.Err()
			close(r.done)
		default:
			live = append(live, r)
		}
	}
	if len(live) == 0 && !tick {
		return
	}
	bg := context.Background() // no cancellation inside a transaction
	b := &batch{st: s.st.clone(), newNames: map[string]int64{}, newStreams: map[streamKey]int64{}, stmts: map[*sql.Stmt]*sql.Stmt{}, now: time.Now()}
	tx, err := s.wdb.BeginTx(bg, nil)
	if err == nil {
		b.tx = tx
		err = s.apply(bg, b, live, tick, retention)
		if err == nil {
			err = tx.Commit()
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}
	if err != nil {
		f := s.storageFailure(err)
		s.log.Error("outbox commit failed", "err", f, "invocations", len(live))
		for _, r := range live {
			r.out, r.err = nil, f
			close(r.done)
		}
		return
	}
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
		close(r.done)
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
		}
		if err != nil {
			return err
		}
	}
	if err := s.flush(ctx, b); err != nil {
		return err
	}
	if err := s.writeUsage(ctx, b); err != nil {
		return fmt.Errorf("usage: %w", err)
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
		if _, err := b.stmt(s.stmts.setCounter).ExecContext(ctx, counterLastSeq, int64(b.st.lastSeq)); err != nil {
			return err
		}
	}
	if b.drops {
		for name, v := range b.st.drops {
			if v != s.st.drops[name] {
				if _, err := b.stmt(s.stmts.setCounter).ExecContext(ctx, name, v); err != nil {
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
			if _, err := b.stmt(x.many).ExecContext(ctx, rows[:rowsPerInsert*x.cols]...); err != nil {
				return err
			}
			rows = rows[rowsPerInsert*x.cols:]
		}
		for len(rows) > 0 {
			if _, err := b.stmt(x.one).ExecContext(ctx, rows[:x.cols]...); err != nil {
				return err
			}
			rows = rows[x.cols:]
		}
		*x.rows = (*x.rows)[:0]
	}
	return nil
}

func (s *Store) nameID(ctx context.Context, b *batch, name string) (int64, error) {
	if id, ok := s.names[name]; ok {
		return id, nil
	}
	if id, ok := b.newNames[name]; ok {
		return id, nil
	}
	b.st.nextName++
	id := b.st.nextName
	if _, err := b.stmt(s.stmts.insName).ExecContext(ctx, id, name); err != nil {
		return 0, err
	}
	b.newNames[name] = id
	return id, nil
}

// streamKey is what the records of one stream share.
type streamKey struct {
	fn, version, source int64
	subject             string
}

func (s *Store) streamID(ctx context.Context, b *batch, k streamKey) (int64, error) {
	if id, ok := s.streams[k]; ok {
		return id, nil
	}
	if id, ok := b.newStreams[k]; ok {
		return id, nil
	}
	b.st.nextStream++
	id := b.st.nextStream
	if _, err := b.stmt(s.stmts.insStream).ExecContext(ctx, id, k.fn, k.version, k.source, k.subject); err != nil {
		return 0, err
	}
	b.newStreams[k] = id
	return id, nil
}

// minStreamsGC is how many streams the store keeps before it looks for
// unused ones to delete.
const minStreamsGC = 4096

// pruneStreams deletes the streams no pending record uses, once there are
// more than twice as many as after the last pruning (and at least
// minStreamsGC): topics with ever-new subjects would otherwise grow the
// table without end. It scans the records, so it runs only in the idle
// maintenance batch and rarely.
func (s *Store) pruneStreams(ctx context.Context, b *batch) error {
	if !s.streamsOver() {
		return nil
	}
	if _, err := b.tx.ExecContext(ctx, "DELETE FROM streams WHERE id NOT IN (SELECT DISTINCT stream FROM records)"); err != nil {
		return err
	}
	b.gcStreams = true
	return nil
}

// streamsOver says whether the idle tick should look for unused streams:
// the table doubled since the last pruning, or records were deleted since
// then (a pruning while they were all pending found nothing to delete).
func (s *Store) streamsOver() bool {
	n := len(s.streams)
	return n > max(minStreamsGC, 2*s.liveStreams) || (s.deletedSinceGC && n > minStreamsGC)
}

func millis(t, now time.Time) int64 {
	if t.IsZero() {
		t = now
	}
	return t.UnixMilli()
}

func (s *Store) applyInvocation(ctx context.Context, b *batch, r *request) error {
	inv := r.inv
	fn, err := s.nameID(ctx, b, inv.Function)
	if err != nil {
		return err
	}
	src, err := s.nameID(ctx, b, string(inv.Source))
	if err != nil {
		return err
	}
	t := millis(inv.Time, b.now)
	var stream int64 // of the emitted records, made on the first one
	var fail *edgefn.Failure
	var seqs []uint64
	if inv.Err == nil {
		var kvAfter kvUsage
		var kvTouched bool
		kvAfter, kvTouched, fail, err = s.checkKV(ctx, b, fn, inv)
		if err != nil {
			return err
		}
		emits, need := 0, int64(0)
		for i := range inv.Effects {
			if e := &inv.Effects[i]; e.Kind == edgefn.EffectEmit {
				emits++
				need += int64(len(e.Payload)) + RecordOverhead
			}
		}
		if fail == nil && s.cfg.OnFull == RejectNew && emits > 0 && b.st.bytes+need > int64(s.cfg.MaxBytes) {
			fail = edgefn.Fail(edgefn.ReasonOutboxFull, "outbox full: %d of %d bytes pending (max_bytes, on_full: reject_new), %d records need %d more",
				b.st.bytes, int64(s.cfg.MaxBytes), emits, need)
			b.st.drops[DropRejected] += int64(emits)
			b.drops = true
		}
		if fail == nil {
			if kvTouched {
				b.st.kv[fn] = kvAfter
			}
			for i := range inv.Effects {
				e := &inv.Effects[i]
				switch e.Kind {
				case edgefn.EffectEmit:
					b.st.lastSeq++
					seq := b.st.lastSeq
					payload := e.Payload
					if payload == nil {
						payload = []byte{}
					}
					if stream == 0 {
						if stream, err = s.streamID(ctx, b, streamKey{fn, int64(inv.Version), src, inv.Subject}); err != nil {
							return err
						}
					}
					b.recRows = append(b.recRows, int64(seq), stream, t, payload)
					seqs = append(seqs, seq)
					b.st.depth++
					b.st.bytes += int64(len(e.Payload)) + RecordOverhead
					b.added = true
				case edgefn.EffectKVSet:
					v := e.Payload
					if v == nil {
						v = []byte{}
					}
					if _, err := b.stmt(s.stmts.kvSet).ExecContext(ctx, fn, e.Key, v); err != nil {
						return err
					}
				case edgefn.EffectKVDelete:
					if _, err := b.stmt(s.stmts.kvDel).ExecContext(ctx, fn, e.Key); err != nil {
						return err
					}
				}
			}
		}
	}
	var reason, message any // NULL for a success
	switch {
	case fail != nil:
		reason, message = string(fail.Reason), fail.Error()
	case inv.Err != nil:
		var f *edgefn.Failure
		reason = string(edgefn.ReasonInternal)
		if errors.As(inv.Err, &f) {
			reason = string(f.Reason)
		}
		message = inv.Err.Error()
	}
	if reason == nil {
		k := usageKey{fn, floorDiv(t, 60000)}
		a := b.usage[k]
		if a == nil {
			if b.usage == nil {
				b.usage = map[usageKey]*usageAgg{}
			}
			a = &usageAgg{}
			b.usage[k] = a
		}
		a.add(inv.Duration, inv.MemoryCap, inv.Cold)
	} else {
		b.st.lastInv++
		b.st.invCount++
		b.invRows = append(b.invRows, b.st.lastInv, fn, inv.Version, inv.EventID, src, inv.Subject, t,
			reason, message, inv.Duration.Microseconds(), int64(inv.MemoryBytes), inv.MemoryCap, inv.Cold, len(seqs))
	}
	for i := range inv.Logs {
		l := &inv.Logs[i]
		b.st.lastLog++
		if _, err := b.stmt(s.stmts.insLog).ExecContext(ctx, b.st.lastLog, fn, millis(l.Time, b.now), int(l.Level), l.Message, inv.EventID, nil); err != nil {
			return err
		}
		b.st.logCount[fn]++
	}
	if reason != nil {
		b.st.lastLog++
		if _, err := b.stmt(s.stmts.insLog).ExecContext(ctx, b.st.lastLog, fn, b.now.UnixMilli(), int(edgefn.LogError), message, inv.EventID, reason); err != nil {
			return err
		}
		b.st.logCount[fn]++
	}
	r.out = seqs
	if fail != nil {
		r.err = fail
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// writeUsage adds the batch's successful invocations to their
// usage_minutes rows.
func (s *Store) writeUsage(ctx context.Context, b *batch) error {
	for k, add := range b.usage {
		var a usageAgg
		var hist []byte
		err := b.stmt(s.stmts.usageGet).QueryRowContext(ctx, k.fn, k.minute).Scan(&a.count, &a.cold, &a.durUS, &a.maxUS, &a.gbs, &hist)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if a.hist, err = decodeHist(hist); err != nil {
				return fmt.Errorf("function %d minute %d: %w", k.fn, k.minute, err)
			}
		}
		a.merge(add)
		b.st.usageCount += add.count
		if _, err := b.stmt(s.stmts.usagePut).ExecContext(ctx, k.fn, k.minute, a.count, a.cold, a.durUS, a.maxUS, a.gbs, encodeHist(a.hist)); err != nil {
			return err
		}
	}
	return nil
}

// checkKV computes the function's kv usage after inv's writes and refuses
// writes past the limits. err is a database error (the batch fails); fail
// refuses only this invocation.
func (s *Store) checkKV(ctx context.Context, b *batch, fn int64, inv *Invocation) (u kvUsage, touched bool, fail *edgefn.Failure, err error) {
	u = b.st.kv[fn]
	var sizes map[string]int64 // key -> key+value bytes after earlier writes of inv, -1 absent
	for i := range inv.Effects {
		e := &inv.Effects[i]
		if e.Kind != edgefn.EffectKVSet && e.Kind != edgefn.EffectKVDelete {
			continue
		}
		touched = true
		if e.Key == "" || len(e.Key) > s.cfg.MaxKeyLen {
			return u, false, edgefn.Fail(edgefn.ReasonOutputLimit, "kv key of %d bytes: must be 1 to %d bytes (max_key_len)", len(e.Key), s.cfg.MaxKeyLen), nil
		}
		if sizes == nil {
			sizes = map[string]int64{}
		}
		old, ok := sizes[e.Key]
		if !ok {
			var n sql.NullInt64
			err := b.stmt(s.stmts.kvLen).QueryRowContext(ctx, fn, e.Key).Scan(&n)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				old = -1
			case err != nil:
				return u, false, nil, err
			default:
				old = n.Int64
			}
		}
		if e.Kind == edgefn.EffectKVSet {
			n := int64(len(e.Key) + len(e.Payload))
			if old < 0 {
				u.keys++
				u.bytes += n
			} else {
				u.bytes += n - old
			}
			sizes[e.Key] = n
		} else {
			if old >= 0 {
				u.keys--
				u.bytes -= old
			}
			sizes[e.Key] = -1
		}
	}
	if u.keys > int64(s.cfg.MaxKVKeys) || u.bytes > int64(s.cfg.MaxKVBytes) {
		return u, false, edgefn.Fail(edgefn.ReasonOutputLimit, "kv store of function %q would hold %d keys and %d bytes, limits are %d keys (max_kv_keys) and %d bytes (max_kv_bytes)",
			inv.Function, u.keys, u.bytes, s.cfg.MaxKVKeys, int64(s.cfg.MaxKVBytes)), nil
	}
	return u, touched, nil, nil
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
	rows, err := b.stmt(s.stmts.delRecords).QueryContext(ctx, seqList(seqs))
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
	if _, err := b.stmt(s.stmts.insDead).ExecContext(ctx, r.reason, b.now.UnixMilli(), seqList(r.seqs)); err != nil {
		return err
	}
	n, err := s.deleteRecords(ctx, b, r.seqs)
	if err != nil {
		return err
	}
	b.st.deadCount += n
	if over := b.st.deadCount - int64(s.cfg.MaxDeadLetters); over > 0 {
		res, err := b.tx.ExecContext(ctx, "DELETE FROM dead_letters WHERE seq IN (SELECT seq FROM dead_letters ORDER BY seq LIMIT ?)", over)
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

// dropOldest deletes the oldest pending records until the outbox fits
// MaxBytes, counting them.
func (s *Store) dropOldest(ctx context.Context, b *batch) error {
	excess := b.st.bytes - int64(s.cfg.MaxBytes)
	var dropped int64
	for excess > 0 {
		var cut, n, freed int64
		err := scanAll(ctx, b.tx, "SELECT seq, length(payload) FROM records ORDER BY seq LIMIT 512", func(r *sql.Rows) error {
			var seq, l int64
			if err := r.Scan(&seq, &l); err != nil {
				return err
			}
			if excess > 0 {
				cut = seq
				n++
				freed += l + RecordOverhead
				excess -= l + RecordOverhead
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if _, err := b.tx.ExecContext(ctx, "DELETE FROM records WHERE seq <= ?", cut); err != nil {
			return err
		}
		b.st.depth -= n
		b.st.bytes -= freed
		dropped += n
	}
	if dropped > 0 {
		b.st.drops[DropMaxBytes] += dropped
		b.drops, b.deleted = true, true
		s.warnDrops(b.now, b.st.drops)
	}
	return nil
}

// warnDrops logs the drop counters at most once a minute: under a steady
// overflow every commit drops, and a line per commit would flood the log.
// The counters themselves are exact and in Stats.
func (s *Store) warnDrops(now time.Time, drops map[string]int64) {
	if now.Sub(s.lastDropLog) < time.Minute {
		return
	}
	s.lastDropLog = now
	s.log.Warn("outbox: records dropped by a bound (totals since the database was created)",
		DropMaxBytes, drops[DropMaxBytes], DropMaxAge, drops[DropMaxAge], DropRejected, drops[DropRejected],
		"max_bytes", s.cfg.MaxBytes, "max_age", s.cfg.MaxAge)
}

// expire deletes pending records older than MaxAge, walking from the oldest
// seq and stopping at the first younger record (record times follow seqs
// closely; a stray older record behind a younger one waits its turn).
func (s *Store) expire(ctx context.Context, b *batch) error {
	cutoff := b.now.Add(-s.cfg.MaxAge).UnixMilli()
	var expired int64
	for {
		var cut, n, freed int64
		stopped := false
		rows := 0
		err := scanAll(ctx, b.tx, "SELECT seq, time, length(payload) FROM records ORDER BY seq LIMIT 512", func(r *sql.Rows) error {
			var seq, t, l int64
			if err := r.Scan(&seq, &t, &l); err != nil {
				return err
			}
			rows++
			if stopped || t >= cutoff {
				stopped = true
				return nil
			}
			cut = seq
			n++
			freed += l + RecordOverhead
			return nil
		})
		if err != nil {
			return err
		}
		if n > 0 {
			if _, err := b.tx.ExecContext(ctx, "DELETE FROM records WHERE seq <= ?", cut); err != nil {
				return err
			}
			b.st.depth -= n
			b.st.bytes -= freed
			expired += n
		}
		if stopped || rows < 512 {
			break
		}
	}
	if expired > 0 {
		b.st.drops[DropMaxAge] += expired
		b.drops, b.deleted = true, true
		s.warnDrops(b.now, b.st.drops)
	}
	return nil
}

// prune keeps the invocation records and the log rings within bounds.
// Deleting in slices of an eighth of the bound keeps it off the hot path.
func (s *Store) prune(ctx context.Context, b *batch, retention bool) error {
	maxInv := int64(s.cfg.MaxInvocations)
	if b.st.invCount > maxInv+maxInv/8 {
		res, err := b.tx.ExecContext(ctx, "DELETE FROM invocations WHERE id <= ?", b.st.lastInv-maxInv)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.invCount -= k
	}
	if retention {
		cutoff := b.now.Add(-s.cfg.InvocationMaxAge).UnixMilli()
		res, err := b.tx.ExecContext(ctx, "DELETE FROM invocations WHERE time < ?", cutoff)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.invCount -= k
		var gone int64
		if err := b.tx.QueryRowContext(ctx, "SELECT coalesce(sum(count), 0) FROM usage_minutes WHERE minute < ?", floorDiv(cutoff, 60000)).Scan(&gone); err != nil {
			return err
		}
		if gone > 0 {
			if _, err := b.tx.ExecContext(ctx, "DELETE FROM usage_minutes WHERE minute < ?", floorDiv(cutoff, 60000)); err != nil {
				return err
			}
			b.st.usageCount -= gone
		}
	}
	maxLog := int64(s.cfg.MaxLogLines)
	for fn, n := range b.st.logCount {
		if n <= maxLog+maxLog/8 {
			continue
		}
		res, err := b.tx.ExecContext(ctx, "DELETE FROM logs WHERE fn = ? AND id <= (SELECT id FROM logs WHERE fn = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", fn, fn, maxLog)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.logCount[fn] = n - k
	}
	return nil
}

// maxVacuumBytes bounds the live data a reclaiming VACUUM copies (through a
// temporary database in memory, temp_store=MEMORY).
const maxVacuumBytes = 16 << 20

// reclaim truncates the WAL and, when more than a quarter of the file (and
// at least 256 pages) is free pages, returns them to the file system:
// databases created with auto_vacuum=INCREMENTAL (schema v1 and v2) by
// incremental_vacuum, newer ones by VACUUM, but only while the live data is
// at most maxVacuumBytes (the typical case: a backlog built up during an
// outage has drained). Under a steady load free pages are reused by new
// records instead, which writes less than moving pages around.
func (s *Store) reclaim() {
	ctx := context.Background()
	if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		s.log.Warn("outbox: checkpoint failed", "err", err)
	}
	var free, total, pageSize, autoVacuum int64
	for _, x := range []struct {
		q string
		v *int64
	}{{"PRAGMA freelist_count", &free}, {"PRAGMA page_count", &total}, {"PRAGMA page_size", &pageSize}, {"PRAGMA auto_vacuum", &autoVacuum}} {
		if err := s.wdb.QueryRowContext(ctx, x.q).Scan(x.v); err != nil {
			s.log.Warn("outbox: reclaim", "pragma", x.q, "err", err)
			return
		}
	}
	if free < 256 || free*4 <= total {
		return
	}
	q := "PRAGMA incremental_vacuum"
	if autoVacuum != 2 {
		if (total-free)*pageSize > maxVacuumBytes {
			return // a VACUUM would copy too much; new records reuse the pages
		}
		q = "VACUUM"
	}
	if _, err := s.wdb.ExecContext(ctx, q); err != nil {
		s.log.Warn("outbox: reclaiming free pages failed", "statement", q, "err", err)
		return
	}
	if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		s.log.Warn("outbox: checkpoint failed", "err", err)
	}
	s.log.Info("outbox: free pages returned to the file system", "pages", free, "by", q)
}

// stmts are the writer's prepared statements.
type stmts struct {
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

func (p *stmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, x := range []struct {
		s **sql.Stmt
		q string
	}{
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
	for _, st := range []*sql.Stmt{p.insRecord, p.insRecords, p.insInv, p.insInvs, p.insLog, p.insName, p.insStream, p.kvSet, p.kvDel, p.kvLen, p.setCounter, p.delRecords, p.insDead, p.usageGet, p.usagePut} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
