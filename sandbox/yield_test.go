package sandbox

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
)

// A guest spinning while other goroutines collect garbage is stopped at its
// deadline. Before wasmbin.Options.Yield this hung the whole process: the
// collector waited for the spinning goroutine, which wazero's compiled code
// never lets Go preempt, and the timer that would stop it was stopped too.
func TestDeadlineUnderGC(t *testing.T) {
	r := newRuntime(t, Config{})
	testutil.GCLoop(t)
	for _, name := range []string{"loop", "fib"} {
		t.Run(name, func(t *testing.T) {
			f := load(t, r, name, func(s *Spec) { s.Limits.Timeout = 50 * time.Millisecond })
			got := make(chan *Result, 1)
			go func() { got <- f.Invoke(context.Background(), event("")) }()
			select {
			case res := <-got:
				fl := wantFailure(t, res, edgefn.ReasonTimeout)
				t.Logf("%s: %v in %s", name, fl, res.Duration)
			case <-time.After(20 * time.Second):
				t.Fatal("the guest was not stopped within 20 s while collections ran")
			}
		})
	}
}

// The yield import is added by instrumentation after validation; a user
// module importing from its module is refused.
func TestYieldModuleReserved(t *testing.T) {
	r := newRuntime(t, Config{})
	var wasm []byte
	wasm = append(wasm, 0, 'a', 's', 'm', 1, 0, 0, 0)
	wasm = append(wasm, 1, 5, 1, 0x60, 0, 1, 0x7f) // type () -> i32
	imp := []byte{1, byte(len(wasmbin.YieldModule))}
	imp = append(imp, wasmbin.YieldModule...)
	imp = append(imp, byte(len(wasmbin.YieldName)))
	imp = append(imp, wasmbin.YieldName...)
	imp = append(imp, 0, 0) // func, type 0
	wasm = append(wasm, 2, byte(len(imp)))
	wasm = append(wasm, imp...)
	_, err := r.Load(context.Background(), testSpec("reserved"), wasm)
	if err == nil || !strings.Contains(err.Error(), wasmbin.YieldModule) {
		t.Fatalf("got %v, want an error naming %s", err, wasmbin.YieldModule)
	}
	t.Log(err)
}
