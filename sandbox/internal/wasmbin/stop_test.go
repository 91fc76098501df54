package wasmbin

import (
	"context"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tetratelabs/wazero/api"

	"github.com/edgefn/edgefn/internal/testutil"
)

// callAsync calls fn on mod and delivers the error; the test fails if nothing comes back in 10 s.
func callWithin(t *testing.T, f func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the guest did not stop within 10 s")
		return nil
	}
}

// The stop flag set from another goroutine stops the guest. Yield is on
// (its host side answers 0, so the flag is what stops the guest) because
// without it a spinning guest can hold up Go's stop-the-world and the
// goroutine that sets the flag with it: see TestNoYieldDeadlocks.
func TestStopFlag(t *testing.T) {
	r := newRuntime(t, nil)
	wasm := mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Instrument: true, Yield: true})
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{
		{"spin", nil},
		{"fib", i32s(40)}, // loop-free: only the entry checks can stop it
	} {
		t.Run(tc.fn, func(t *testing.T) {
			mod := instantiate(t, r, wasm)
			stop := global(t, mod, GlobalStop)
			setAt := make(chan time.Time, 1)
			timer := time.AfterFunc(20*time.Millisecond, func() {
				stop.Set(1)
				setAt <- time.Now()
			})
			defer timer.Stop()
			start := time.Now()
			err := callWithin(t, func() error {
				_, err := mod.ExportedFunction(tc.fn).Call(context.Background(), tc.args...)
				return err
			})
			end := time.Now()
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("got %v, want an unreachable trap", err)
			}
			at := <-setAt
			t.Logf("%s: ran %v, stopped %v after the flag was set", tc.fn, end.Sub(start), end.Sub(at))
			if d := global(t, mod, GlobalDepth).Get(); d == 0 {
				t.Errorf("depth budget 0 after a stop: the host could not tell stop from depth")
			}
		})
	}
}

func TestDepthBudget(t *testing.T) {
	r := newRuntime(t, nil)
	mod := instantiate(t, r, mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Instrument: true}))
	if d := global(t, mod, GlobalDepth).Get(); d != DefaultInitialDepth {
		t.Fatalf("initial depth %d, want %d", d, DefaultInitialDepth)
	}
	_, err := mod.ExportedFunction("recurse").Call(context.Background(), 0)
	if err == nil || !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("got %v, want an unreachable trap", err)
	}
	if d, s := global(t, mod, GlobalDepth).Get(), global(t, mod, GlobalStop).Get(); d != 0 || s != 0 {
		t.Fatalf("after depth exhaustion: depth %d stop %d, want 0 0", d, s)
	}
	// Within the budget the depth comes back to where the host set it.
	global(t, mod, GlobalDepth).Set(101)
	if _, err := mod.ExportedFunction("down").Call(context.Background(), 100); err != nil {
		t.Fatalf("depth 100 with budget 101: %v", err)
	}
	if d := global(t, mod, GlobalDepth).Get(); d != 101 {
		t.Fatalf("depth after the call %d, want 101", d)
	}
	global(t, mod, GlobalDepth).Set(100)
	if _, err := mod.ExportedFunction("down").Call(context.Background(), 100); err == nil {
		t.Fatal("depth 101 calls with budget 100: no trap")
	}
}

// TestDepthMemory reports the host memory a recursion of a given depth costs under wazero's
// compiler (its stack lives on the Go heap and grows by doubling).
func TestDepthMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("measurement")
	}
	wasm := mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Instrument: true, InitialDepth: 1 << 30})
	for _, tc := range []struct {
		fn    string
		depth uint64
	}{{"down", 1000}, {"down", 10000}, {"down", 100000}, {"fat", 1000}, {"fat", 10000}, {"fat", 100000}} {
		depth := tc.depth
		r := newRuntime(t, nil)
		mod := instantiate(t, r, wasm)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		if _, err := mod.ExportedFunction(tc.fn).Call(context.Background(), depth); err != nil {
			t.Fatalf("depth %d: %v", depth, err)
		}
		runtime.ReadMemStats(&after)
		heap := int64(after.HeapInuse) - int64(before.HeapInuse)
		t.Logf("%s depth %6d: HeapInuse +%.2f MiB (%d B/frame), Sys +%.2f MiB", tc.fn, depth, float64(heap)/(1<<20),
			heap/int64(depth), float64(int64(after.Sys)-int64(before.Sys))/(1<<20))
		runtime.KeepAlive(mod)
	}
}

// stopping returns a host yield that stops the guest (setting GlobalStop, as the sandbox does)
// once stop reports true, and counts its calls.
func stopping(calls *atomic.Int64, stop func() bool) func(context.Context, api.Module) uint32 {
	return func(_ context.Context, m api.Module) uint32 {
		calls.Add(1)
		if !stop() {
			return 0
		}
		m.ExportedGlobal(GlobalStop).(api.MutableGlobal).Set(1)
		return 1
	}
}

// With Yield the guest stops through the host's answer alone: no goroutine sets the flag.
func TestYieldStops(t *testing.T) {
	wasm := mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Yield: true})
	for _, tc := range []struct {
		name, fn string
		args     []uint64
		after    string // "calls" or "deadline"
	}{
		{"spin after 100 yields", "spin", nil, "calls"},
		{"fib after 100 yields", "fib", i32s(40), "calls"},
		{"spin after 30ms", "spin", nil, "deadline"},
		{"fib after 30ms", "fib", i32s(40), "deadline"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int64
			deadline := time.Now().Add(30 * time.Millisecond)
			stop := func() bool { return calls.Load() > 100 }
			if tc.after == "deadline" {
				stop = func() bool { return time.Now().After(deadline) }
			}
			r := newRuntimeYield(t, nil, stopping(&calls, stop))
			mod := instantiate(t, r, wasm)
			err := callWithin(t, func() error {
				_, err := mod.ExportedFunction(tc.fn).Call(context.Background(), tc.args...)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("got %v, want an unreachable trap", err)
			}
			if !strings.Contains(err.Error(), "."+tc.fn+"(") {
				t.Errorf("the stack trace does not name %s: %v", tc.fn, err)
			}
			if s, d := global(t, mod, GlobalStop).Get(), global(t, mod, GlobalDepth).Get(); s != 1 || d == 0 {
				t.Errorf("stop %d depth %d after the trap, want 1 and not 0", s, d)
			}
			if tc.after == "calls" && calls.Load() != 101 {
				t.Errorf("yield called %d times, want 101", calls.Load())
			}
			t.Logf("yield called %d times", calls.Load())
		})
	}
}

// The host's yield is called once every CheckInterval loop iterations and function entries.
func TestYieldInterval(t *testing.T) {
	var calls atomic.Int64
	r := newRuntimeYield(t, nil, stopping(&calls, func() bool { return false }))
	mod := instantiate(t, r, mustRewrite(t, testutil.Testdata(t, "bench.wasm"), Options{Yield: true, CheckInterval: 100}))
	for _, tc := range []struct {
		fn       string
		arg      uint64
		min, max int64
	}{
		{"checksum", 100_000, 999, 1001}, // 100000 iterations, plus 1 entry
		{"fib", 20, 218, 220},            // fib(20) makes 21891 calls
	} {
		calls.Store(0)
		if _, err := mod.ExportedFunction(tc.fn).Call(context.Background(), tc.arg); err != nil {
			t.Fatal(err)
		}
		if n := calls.Load(); n < tc.min || n > tc.max {
			t.Errorf("%s(%d): %d yields, want %d to %d", tc.fn, tc.arg, n, tc.min, tc.max)
		}
	}
}

// THE REGRESSION TEST. wazero's compiled code cannot be preempted by Go: a guest spinning in a
// loop that never calls the host blocks every stop-the-world, and with it the goroutine that
// would set the stop flag, forever (TestNoYieldDeadlocks shows it in a child process). With
// Yield the guest calls the host every CheckInterval iterations, where the runtime can stop
// it, and the host's answer stops it at the deadline.
func TestYieldUnderGC(t *testing.T) {
	wasm := mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Yield: true})
	for _, tc := range []struct {
		fn   string
		args []uint64
	}{{"spin", nil}, {"fib", i32s(45)}} {
		t.Run(tc.fn, func(t *testing.T) {
			var calls atomic.Int64
			var deadline time.Time
			r := newRuntimeYield(t, nil, stopping(&calls, func() bool { return time.Now().After(deadline) }))
			mod := instantiate(t, r, wasm)
			testutil.GCLoop(t)
			start := time.Now()
			deadline = start.Add(50 * time.Millisecond)
			err := callWithin(t, func() error {
				_, err := mod.ExportedFunction(tc.fn).Call(context.Background(), tc.args...)
				return err
			})
			if err == nil || !strings.Contains(err.Error(), "unreachable") {
				t.Fatalf("got %v, want an unreachable trap", err)
			}
			t.Logf("%s stopped after %v, %d yields, with collections running", tc.fn, time.Since(start), calls.Load())
		})
	}
}

// TestNoYieldDeadlocks documents the bug Yield fixes: without it, an instrumented guest spinning
// while another goroutine collects garbage hangs the whole process, although a timer sets the
// stop flag after 50 ms. It runs the scenario in a child process and kills it after 5 s.
func TestNoYieldDeadlocks(t *testing.T) {
	if os.Getenv("WASMBIN_NO_YIELD_CHILD") == "1" {
		noYieldChild(t)
		return
	}
	if testing.Short() {
		t.Skip("waits 5 s for a child process to hang")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^TestNoYieldDeadlocks$", "-test.v")
	cmd.Env = append(os.Environ(), "WASMBIN_NO_YIELD_CHILD=1")
	out, err := cmd.CombinedOutput()
	if ctx.Err() == nil {
		t.Skipf("the child did not hang this time (err %v):\n%s", err, out)
	}
	t.Logf("the child hung and was killed after 5 s, as expected without Yield")
}

func noYieldChild(t *testing.T) {
	r := newRuntime(t, nil)
	mod := instantiate(t, r, mustRewrite(t, testutil.Testdata(t, "stop.wasm"), Options{Instrument: true}))
	stop := global(t, mod, GlobalStop)
	timer := time.AfterFunc(50*time.Millisecond, func() { stop.Set(1) })
	defer timer.Stop()
	testutil.GCLoop(t)
	_, err := mod.ExportedFunction("spin").Call(context.Background())
	t.Logf("spin returned: %v", err)
}
