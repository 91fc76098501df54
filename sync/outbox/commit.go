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
