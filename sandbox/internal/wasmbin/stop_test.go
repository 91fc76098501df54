package wasmbin

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"
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

func TestStopFlag(t *testing.T) {
	r := newRuntime(t, nil)
	wasm := mustRewrite(t, fixture(t, "stop.wasm"), Options{Instrument: true})
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
	mod := instantiate(t, r, mustRewrite(t, fixture(t, "stop.wasm"), Options{Instrument: true}))
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
	wasm := mustRewrite(t, fixture(t, "stop.wasm"), Options{Instrument: true, InitialDepth: 1 << 30})
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
