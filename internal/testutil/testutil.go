package testutil

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"
)

// StopTimeout bounds how long a stop waits for Run to return after its
// context is cancelled: a guard against a hang, not a measurement.
const StopTimeout = 30 * time.Second

// Run calls run in a goroutine with a context that stop cancels; stop then
// waits for run to return and fails the test if it returned an error or
// did not return within StopTimeout. stop runs once, at the latest when the
// test ends.
func Run(t testing.TB, run func(ctx context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run returned %v", err)
			}
		case <-time.After(StopTimeout):
			t.Errorf("Run did not return within %s of cancel", StopTimeout)
		}
	})
	t.Cleanup(stop)
	return stop
}

// Eventually polls cond until it holds, and fails the test if it still
// does not after timeout.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

// GCLoop runs runtime.GC in a loop until the test ends: every collection
// stops the world, which code that cannot be preempted would block.
func GCLoop(t testing.TB) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
				runtime.GC()
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
}
