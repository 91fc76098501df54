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

// invokeAt is invoke(emits) whose Commit was called at t0+at.
func invokeAt(emits int, at time.Duration) *request {
	q := invoke(emits)
	q.at = t0.Add(at)
	return q
}

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func TestBatchRule(t *testing.T) {
	confirm, dead := &request{kind: opConfirm}, &request{kind: opDeadLetter}
	r := newBatchRule(Config{FlushRecords: 8, FlushInterval: time.Millisecond})
	if r.window() != 0 || r.carries(confirm) {
		t.Fatal("no invocation seen yet: a batch does not wait")
	}
	for i := range 8 { // 4k invocations/s
		r.add(invokeAt(0, time.Duration(i)*250*time.Microsecond))
	}

	r.start()
	r.add(invoke(0)) // no emit: still a row (its invocation record)
	r.add(confirm)
	r.add(invoke(5))
	if r.rows != 7 || r.invs != 2 || r.full() || r.window() != time.Millisecond {
		t.Fatalf("rows %d invs %d full %v window %v, want 7 2 false 1ms", r.rows, r.invs, r.full(), r.window())
	}
	r.add(invoke(1))
	if !r.full() || r.window() != 0 {
		t.Fatalf("8 rows of 8: full %v window %v", r.full(), r.window())
	}

	r.start()
	if !r.carries(confirm) || !r.carries(dead) || r.carries(invoke(1)) {
		t.Error("only an uplink's request carries")
	}
	r.add(confirm)
	if r.carried(dead) || !r.carried(invoke(0)) {
		t.Error("carrying ends with an invocation, not with another uplink request")
	}
	r.rows = 8
	if !r.carried(dead) {
		t.Error("carrying ends with a full batch")
	}

	if r := newBatchRule(Config{FlushRecords: 8, FlushInterval: -1}); r.window() != 0 {
		t.Error("no window: a batch takes only what is queued")
	}
}

// The wait follows the rate of invocations: none when idle or slow, the
// window under load, back to none after a pause.
func TestBatchRuleAdapts(t *testing.T) {
	const ms = time.Millisecond
	r := newBatchRule(Config{FlushRecords: 512, FlushInterval: ms, FlushQuiet: 100 * time.Microsecond})
	at := time.Duration(0)
	every := func(gap time.Duration, n int) {
		for range n {
			at += gap
			r.add(invokeAt(1, at))
		}
	}
	every(4*ms, 20) // 250/s: further apart than two windows
	if r.window() != 0 {
		t.Errorf("250 invocations/s: window %v, want none", r.window())
	}
	every(ms, 20) // 1k/s
	if r.window() != ms {
		t.Errorf("1k invocations/s: window %v, want 1ms", r.window())
	}
	if q := r.quiet(); q < 1900*time.Microsecond || q > 2100*time.Microsecond {
		t.Errorf("1k invocations/s: quiet %v, want about twice the gap", q)
	}
	near := func(got, want time.Duration) bool { return got > want*95/100 && got < want*105/100 }
	every(250*time.Microsecond, 40) // 4k/s: twice the gap, not the whole window
	if w := r.window(); !near(w, 500*time.Microsecond) {
		t.Errorf("4k invocations/s: window %v, want about 500µs", w)
	}
	every(20*time.Microsecond, 40) // 50k/s
	if w := r.window(); !near(w, 40*time.Microsecond) || r.quiet() != 100*time.Microsecond {
		t.Errorf("50k invocations/s: window %v quiet %v, want about 40µs and FlushQuiet", w, r.quiet())
	}
	// Recent batches of 10: the time 10 invocations take to arrive.
	r.expect = 10
	if w := r.window(); !near(w, 200*time.Microsecond) {
		t.Errorf("50k invocations/s, batches of 10: window %v, want about 200µs", w)
	}
	r.expect = 0
	every(time.Second, 1) // a pause: the next batch does not wait
	if r.window() != 0 {
		t.Errorf("after a pause: window %v, want none", r.window())
	}
	every(250*time.Microsecond, 3)
	if r.window() != ms {
		t.Errorf("a few close invocations after the pause: window %v, want 1ms", r.window())
	}
	// Callers stamp their time before they queue: one that comes out of
	// order counts as no gap, and does not move the clock back.
	before := r.gap
	r.add(invokeAt(1, at-100*time.Microsecond))
	if r.gap > before || !r.last.Equal(t0.Add(at)) {
		t.Errorf("out of order: gap %v (was %v), last %v", r.gap, before, r.last.Sub(t0))
	}
	// Requests other than invocations do not count.
	r.add(&request{kind: opConfirm, at: t0.Add(at + time.Hour)})
	if !r.last.Equal(t0.Add(at)) {
		t.Error("a confirm moved the rate")
	}
	if r := newBatchRule(Config{FlushRecords: 8, FlushInterval: ms, FlushQuiet: -1}); r.quiet() != 0 {
		t.Error("FlushQuiet negative: no quiet time")
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
	g.rule.gap = 0 // invocations are coming: batches wait

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
	g = newGatherer(Config{FlushRecords: 16, FlushInterval: -1}, queue, make(chan struct{}))
	queue <- invoke(1)
	if got := g.gather(invoke(1)); len(got) != 2 {
		t.Fatalf("gathered %d, want 2", len(got))
	}

	// Idle (no invocation for long): the same, even with a window of an
	// hour, and an uplink's confirm does not wait for an invocation.
	g = newGatherer(cfg, queue, make(chan struct{}))
	queue <- invoke(1)
	if got := g.gather(&request{kind: opConfirm}); len(got) != 2 {
		t.Fatalf("idle: gathered %d, want 2", len(got))
	}
}

// Waiting stops when it gathers nothing (a device that sends its next
// message only after its PUBACK), one batch in probeEvery checks again,
// and waiting resumes once a probe pays.
func TestBatchRulePayoff(t *testing.T) {
	r := newBatchRule(Config{FlushRecords: 512, FlushInterval: time.Millisecond})
	at := time.Duration(0)
	batch := func(wait bool, invs int) (window time.Duration) {
		r.start()
		for i := range invs {
			at += 300 * time.Microsecond
			r.add(invokeAt(1, at))
			if i == 0 {
				window = r.window()
				if wait && window > 0 {
					r.waiting()
				}
			}
		}
		r.committed()
		return window
	}
	for range 20 { // invocations every 300 µs: batches wait
		at += 300 * time.Microsecond
		r.add(invokeAt(1, at))
	}
	misses := 0
	for batch(true, 1) > 0 {
		if misses++; misses > 10 {
			t.Fatal("still waiting after 10 waits that gathered nothing")
		}
	}
	if misses < 3 {
		t.Errorf("waiting stopped after %d misses, want a few", misses)
	}
	// The batch that ended the loop was the first of probeEvery-1 that do
	// not wait.
	for i := range probeEvery - 2 {
		if w := batch(true, 1); w > 0 {
			t.Fatalf("batch %d after waiting stopped: window %v, want none before the probe", i, w)
		}
	}
	if w := batch(true, 2); w == 0 {
		t.Fatal("the probe batch does not wait")
	}
	if w := batch(true, 2); w == 0 {
		t.Error("the probe gathered another invocation: waiting resumes")
	}
}
