package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

// A warm invocation allocates only its Result (which holds the invocation
// state): no timer, context or event copy of its own.
func TestWarmInvocationAllocatesOnce(t *testing.T) {
	f := loadAlone(t, "trivial", nil)
	ev := event("")
	ctx := context.Background()
	wantOK(t, f.Invoke(ctx, ev)) // the cold start
	allocs := testing.AllocsPerRun(1000, func() {
		if res := f.Invoke(ctx, ev); res.Err != nil || res.Cold {
			t.Fatalf("%v cold %v", res.Err, res.Cold)
		}
	})
	want := 1.0
	if !compiled() {
		want = 2 // wazero's interpreter allocates a call frame of its own
	}
	if allocs > want {
		t.Errorf("%.1f allocations per warm invocation, want at most %.0f", allocs, want)
	}
}

// deadlineOnly has a deadline but no Done channel, so only the instance's
// timer (not a context callback) can stop the guest.
type deadlineOnly struct {
	context.Context
	d time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }

// spin is a payload that keeps the count fixture busy for seconds.
var spin = strings.Repeat("x", 2_000_000)

// The timer is left armed after a warm call; a later call with an earlier
// deadline must re-arm it.
func TestWarmTimerRearmsForEarlierDeadline(t *testing.T) {
	f := loadAlone(t, "count", func(s *Spec) { s.Limits.Timeout = time.Minute })
	wantOK(t, f.Invoke(context.Background(), event("x"))) // arms the timer a minute ahead
	ctx := deadlineOnly{context.Background(), time.Now().Add(50 * time.Millisecond)}
	res := f.Invoke(ctx, event(spin))
	wantFailure(t, res, edgefn.ReasonTimeout)
	if res.Cold {
		t.Error("the spinning call was not on the warm instance")
	}
	if res.Duration > 50*time.Millisecond+margin {
		t.Errorf("stopped after %s", res.Duration)
	}
}

// The timer armed by an earlier call fires before a later call's deadline:
// it must re-arm itself, not stop the later call early.
func TestWarmTimerRearmsForLaterDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	f := loadAlone(t, "count", func(s *Spec) { s.Limits.Timeout = timeout })
	first := time.Now()
	wantOK(t, f.Invoke(context.Background(), event("x"))) // arms the timer for first+timeout
	// Start the spinning call late enough that its deadline is well after
	// the one the timer is armed for.
	for time.Since(first) < timeout/2 {
		wantOK(t, f.Invoke(context.Background(), event("x")))
	}
	res := f.Invoke(context.Background(), event(spin))
	wantFailure(t, res, edgefn.ReasonTimeout)
	if res.Duration < timeout {
		t.Errorf("stopped after %s, before its deadline of %s", res.Duration, timeout)
	}
}

// A deadline already past when the guest would start is a timeout, not the
// guest's return code (its results were never written).
func TestDeadlinePassedBeforeCallIsTimeout(t *testing.T) {
	f := loadAlone(t, "echo", nil)
	for _, warm := range []bool{false, true} {
		if warm {
			wantOK(t, f.Invoke(context.Background(), event("x")))
		}
		ctx := deadlineOnly{context.Background(), time.Now().Add(-time.Second)}
		wantFailure(t, f.Invoke(ctx, event("x")), edgefn.ReasonTimeout)
	}
}
