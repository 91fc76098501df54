package gateway

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"go.uber.org/goleak"
)

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// The pool grows to its bound under load, never past it, and shrinks to
// zero when idle.
func TestQueueScalesUpToConcurrencyAndToZero(t *testing.T) {
	defer goleak.VerifyNone(t)
	var running, peak atomic.Int32
	release := make(chan struct{})
	q := newQueue("f", 100, 3, 20*time.Millisecond, func(_ context.Context, j *job) {
		n := running.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		running.Add(-1)
		j.done <- outcome{}
	}, discardLogger())
	var dones []chan outcome
	for i := 0; i < 20; i++ {
		d := make(chan outcome, 1)
		dones = append(dones, d)
		if err := q.offer(context.Background(), &job{done: d}, false); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, func() bool { return running.Load() == 3 })
	close(release)
	for _, d := range dones {
		if o := <-d; o.Err != nil {
			t.Fatal(o.Err)
		}
	}
	if p := peak.Load(); p != 3 {
		t.Errorf("peak workers = %d, want 3", p)
	}
	waitFor(t, func() bool { return q.currentWorkers() == 0 })
	if err := q.close(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A full queue drops non-waiting offers with a typed, counted failure, and
// blocks waiting offers until there is room.
func TestQueueFull(t *testing.T) {
	defer goleak.VerifyNone(t)
	block := make(chan struct{})
	q := newQueue("f", 2, 1, time.Second, func(_ context.Context, j *job) { <-block }, discardLogger())
	for i := 0; i < 3; i++ { // one running, two queued
		if err := q.offer(context.Background(), &job{}, false); err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			waitFor(t, func() bool { return q.depth() == 0 })
		}
	}
	err := q.offer(context.Background(), &job{}, false)
	var f *edgefn.Failure
	if !errors.As(err, &f) || f.Reason != edgefn.ReasonQueueFull {
		t.Fatalf("err = %v, want queue_full", err)
	}
	if q.dropped.Load() != 1 {
		t.Errorf("dropped = %d", q.dropped.Load())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := q.offer(ctx, &job{}, true); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiting offer on a full queue = %v, want deadline exceeded", err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := q.offer(context.Background(), &job{}, true); err != nil {
			t.Error(err)
		}
	}()
	close(block)
	wg.Wait()
	if err := q.close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := q.offer(context.Background(), &job{}, false); !errors.Is(err, errQueueClosed) {
		t.Errorf("offer after close = %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, 30*time.Second, "condition", cond)
}

// A caller running a job on its own goroutine takes a worker slot: the
// slots it holds count against the bound, it never overtakes a queued job,
// the job queued while every slot was taken runs once one is given back,
// and close waits for it.
func TestQueueInlineSlots(t *testing.T) {
	defer goleak.VerifyNone(t)
	ran := make(chan struct{}, 1)
	q := newQueue("f", 4, 2, time.Second, func(_ context.Context, j *job) { ran <- struct{}{} }, discardLogger())
	for i := range 2 {
		if !q.tryInline() {
			t.Fatalf("free slot %d of 2: inline refused", i+1)
		}
	}
	if q.tryInline() {
		t.Fatal("a third inline run past concurrency 2")
	}
	if err := q.offer(context.Background(), &job{}, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ran:
		t.Fatal("a queued job ran while both slots were held inline")
	case <-time.After(20 * time.Millisecond):
	}
	q.inlineDone()
	if q.tryInline() {
		t.Fatal("inline run taken before the queued job")
	}
	<-ran // the slot given back started a worker for the queued job
	waitFor(t, func() bool { return q.depth() == 0 })

	closed := make(chan error, 1)
	go func() { closed <- q.close(context.Background()) }()
	select {
	case err := <-closed:
		t.Fatalf("close returned (%v) while an inline run holds a slot", err)
	case <-time.After(20 * time.Millisecond):
	}
	if q.tryInline() {
		t.Error("inline run after close")
	}
	q.inlineDone()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}
