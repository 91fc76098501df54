package outbox

import (
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

func invoke(emits int) *request {
	inv := &Invocation{Function: "f"}
	for range emits {
		inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectEmit})
	}
	inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectKVSet, Key: "k"})
	return &request{kind: opInvoke, inv: inv}
}

func TestBatchRule(t *testing.T) {
	confirm, dead := &request{kind: opConfirm}, &request{kind: opDeadLetter}
	r := newBatchRule(Config{FlushRecords: 8, FlushInterval: time.Millisecond})

	r.start()
	r.add(invoke(0)) // no emit: still a row (its invocation record)
	r.add(confirm)
	r.add(invoke(5))
	if r.rows != 7 || r.invs != 2 || r.full() || !r.waits() {
		t.Fatalf("rows %d invs %d full %v waits %v, want 7 2 false true", r.rows, r.invs, r.full(), r.waits())
	}
	r.add(invoke(1))
	if !r.full() || r.waits() {
		t.Fatalf("8 rows of 8: full %v waits %v", r.full(), r.waits())
	}

	if !r.carries(confirm) || !r.carries(dead) || r.carries(invoke(1)) {
		t.Error("only an uplink's request carries")
	}
	r.start()
	r.add(confirm)
	if r.carried(dead) || !r.carried(invoke(0)) {
		t.Error("carrying ends with an invocation, not with another uplink request")
	}
	r.rows = 8
	if !r.carried(dead) {
		t.Error("carrying ends with a full batch")
	}

	if r := newBatchRule(Config{FlushRecords: 8}); r.waits() {
		t.Error("no window: a batch takes only what is queued")
	}
}

func TestBatchRuleExpect(t *testing.T) {
	r := newBatchRule(Config{FlushRecords: 1 << 20, FlushInterval: time.Millisecond})
	batch := func(invs int) {
		r.start()
		for range invs {
			r.add(invoke(1))
		}
	}
	batch(1)
	if r.callersBack() {
		t.Error("a lone caller never ends the wait early")
	}
	r.committed()
	batch(1)
	if r.callersBack() {
		t.Error("expect 1: still waits")
	}
	r.committed()

	batch(64)
	r.committed()
	if r.expect != 64 {
		t.Fatalf("expect %d after a batch of 64, want 64", r.expect)
	}
	batch(63)
	if r.callersBack() {
		t.Error("63 of 64 callers back: waits for the last")
	}
	r.add(invoke(0))
	if !r.callersBack() {
		t.Error("64 of 64 callers back: commits")
	}
	// Smaller batches lower expect by about 1/32 a commit, never below the
	// batch just committed.
	for _, want := range []int{62, 60, 58, 56} {
		batch(10)
		r.committed()
		if r.expect != want {
			t.Fatalf("expect %d, want %d", r.expect, want)
		}
	}
	batch(100)
	r.committed()
	if r.expect != 100 {
		t.Fatalf("expect %d after a batch of 100, want 100", r.expect)
	}
}

// The gatherer on channels, without a database: each case ends without
// waiting on a timer (the window is an hour).
func TestGather(t *testing.T) {
	cfg := Config{FlushRecords: 16, FlushInterval: time.Hour, FlushQuiet: -1}
	queue, stop := make(chan *request, 64), make(chan struct{})
	g := newGatherer(cfg, queue, stop)

	// A batch of four commits; the next one ends as soon as four
	// invocations are in again.
	g.rule.expect = 4
	for range 3 {
		queue <- invoke(1)
	}
	if got := g.gather(invoke(1)); len(got) != 4 {
		t.Fatalf("gathered %d, want 4 (callers back)", len(got))
	}
	g.committed()

	// A full batch ends at once, whatever is still queued.
	for range 20 {
		queue <- invoke(1)
	}
	if got := g.gather(invoke(1)); len(got) != 16 || len(queue) != 5 {
		t.Fatalf("gathered %d leaving %d, want 16 leaving 5", len(got), len(queue))
	}
	g.committed()
	for len(queue) > 0 {
		<-queue
	}

	// An uplink confirm carries the invocation that follows it; Close ends
	// the wait.
	close(stop)
	queue <- &request{kind: opDeadLetter}
	queue <- invoke(2)
	if got := g.gather(&request{kind: opConfirm}); len(got) != 3 || got[2].kind != opInvoke {
		t.Fatalf("gathered %d, want confirm, dead letter, invocation", len(got))
	}

	// Without a window only the queued requests join.
	g = newGatherer(Config{FlushRecords: 16}, queue, make(chan struct{}))
	queue <- invoke(1)
	if got := g.gather(invoke(1)); len(got) != 2 {
		t.Fatalf("gathered %d, want 2", len(got))
	}
}
