package testutil

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
)

func TestRun(t *testing.T) {
	var returned atomic.Bool
	stop := Run(t, func(ctx context.Context) error {
		<-ctx.Done()
		returned.Store(true)
		return nil
	})
	stop()
	if !returned.Load() {
		t.Fatal("stop returned before Run")
	}
	stop() // a second stop, and the one at cleanup, do nothing
}

func TestRunError(t *testing.T) {
	ft := &fakeT{TB: t}
	Run(ft, func(ctx context.Context) error {
		<-ctx.Done()
		return errors.New("boom")
	})()
	if !ft.failed {
		t.Error("an error from Run did not fail the test")
	}
}

func TestEventually(t *testing.T) {
	n := 0
	Eventually(t, StopTimeout, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times, want 3", n)
	}
}

func TestGCLoop(t *testing.T) {
	t.Run("loop", func(t *testing.T) { GCLoop(t) })
	// The loop's cleanup has waited for its goroutine.
}

// fakeT records Errorf instead of failing the real test.
type fakeT struct {
	testing.TB
	failed bool
}

func (f *fakeT) Helper()               {}
func (f *fakeT) Errorf(string, ...any) { f.failed = true }
