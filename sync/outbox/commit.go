package outbox

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/edgefn/edgefn"
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
// An invocation that emits no record and writes no kv key has nothing its
// caller waits for: Commit returns (nil, nil) at once and its failure
// record and logs go into the next transaction that commits records, or
// within DeferFlush (1 s) if none does. Usage sums of every successful
// invocation are kept in memory and written at most once per DeferFlush. A
// crash can lose up to that much metering and those failure records and
// logs; never a record or a kv write. Readers (Stats, Usage, Logs) see
// them: they commit what waits first.
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
	if deferrable(inv) {
		return nil, s.deferInvocation(inv)
	}
	r := &request{kind: opInvoke, ctx: ctx, inv: inv, at: time.Now(), done: make(chan struct{})}
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

// CommitAsync is Commit in two halves, for a caller that may take its next
// event while this one commits (the embedded broker pipelines a device's
// QoS 1 messages so). It queues inv, blocking only while the committer's
// queue is full or until ctx ends, and returns; then is called exactly once
// with what Commit would have returned: on the store's completion goroutine
// after the commit, in commit order, or before CommitAsync returns, on the
// caller's goroutine, when inv has nothing to wait for (see Commit) or
// could not be queued. Invocations queued by one goroutine commit in the
// order it queued them. then must not block for long: the callbacks of
// later commits wait for it.
func (s *Store) CommitAsync(ctx context.Context, inv *Invocation, then func([]uint64, error)) {
	if inv == nil || inv.Function == "" {
		then(nil, errors.New("outbox: commit: invocation without a function name"))
		return
	}
	if deferrable(inv) {
		then(nil, s.deferInvocation(inv))
		return
	}
	r := &request{kind: opInvoke, ctx: ctx, inv: inv, at: time.Now(), then: then}
	if err := s.enqueue(ctx, r); err != nil {
		then(nil, err)
	}
}

type opKind uint8

const (
	opInvoke opKind = iota
	opConfirm
	opDeadLetter
	opExec  // test hook: runs a function on the writer connection
	opFlush // commits the deferred invocations and the usage sums
)

// DeferFlush is the longest a deferred invocation (no record, no kv write)
// and the usage sums wait for a transaction.
const DeferFlush = time.Second

// maxDeferred bounds the deferred invocations held in memory; past it the
// committer is woken to commit them.
const maxDeferred = 1024

// deferrable reports whether inv stores nothing its caller must wait for:
// no record and no kv write (a failed invocation stores neither).
func deferrable(inv *Invocation) bool {
	if inv.Err != nil {
		return true
	}
	for i := range inv.Effects {
		switch inv.Effects[i].Kind {
		case edgefn.EffectEmit, edgefn.EffectKVSet, edgefn.EffectKVDelete:
			return false
		}
	}
	return true
}

// deferInvocation holds inv for the committer's next transaction.
func (s *Store) deferInvocation(inv *Invocation) error {
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	s.defMu.Lock()
	s.deferred = append(s.deferred, &request{kind: opInvoke, ctx: context.Background(), inv: inv})
	n := len(s.deferred)
	s.defMu.Unlock()
	if n >= maxDeferred {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return nil
}

// takeDeferred returns the deferred invocations and empties the list.
func (s *Store) takeDeferred() []*request {
	s.defMu.Lock()
	defer s.defMu.Unlock()
	d := s.deferred
	s.deferred = nil
	return d
}

// flushDeferred commits the deferred invocations and the usage sums, so a
// reader sees them.
func (s *Store) flushDeferred(ctx context.Context) error {
	s.defMu.Lock()
	pending := len(s.deferred) > 0 || s.usageDirty
	s.defMu.Unlock()
	if !pending {
		return nil
	}
	err := s.do(ctx, &request{kind: opFlush})
	if errors.Is(err, ErrClosed) {
		return nil // Close committed them
	}
	return err
}

type request struct {
	kind   opKind
	ctx    context.Context
	inv    *Invocation
	seqs   []uint64
	reason string
	exec   func(context.Context, *sql.Conn) error
	// at is when Commit was called (invocations only): the batching rule
	// follows the rate of invocations from it.
	at time.Time

	out  []uint64
	err  error
	done chan struct{}
	// then answers a CommitAsync caller instead of done.
	then func([]uint64, error)
}

// finish answers the request's caller (a deferred invocation has none): a
// Commit caller at once, a CommitAsync caller through the completion
// goroutine once the batch is over (complete).
func (s *Store) finish(r *request) {
	switch {
	case r.then != nil:
		s.thens = append(s.thens, r)
	case r.done != nil:
		close(r.done)
	}
}

// complete hands the CommitAsync requests answered by the last batch to
// the completion goroutine, in commit order: one hand-off per batch.
func (s *Store) complete() {
	if len(s.thens) == 0 {
		return
	}
	s.completions <- s.thens
	s.thens = nil
}

// completer calls the CommitAsync callbacks, batch after batch, off the
// committer's goroutine: the next transaction does not wait for them.
func (s *Store) completer() {
	defer close(s.completed)
	for rs := range s.completions {
		for _, r := range rs {
			r.then(r.out, r.err)
		}
	}
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
