package sandbox

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
)

// A pooled buffer smaller than the capacity asked for is not handed out:
// the caller would copy it at its first grow.
func TestMemPoolHonoursCapHint(t *testing.T) {
	p := newMemPool(1<<20, 1<<20)
	p.put(make([]byte, 64<<10))
	if b := p.get(0, 256<<10); cap(b) < 256<<10 {
		t.Fatalf("get(0, 256 KiB) returned a buffer of capacity %d", cap(b))
	}
	if b := p.get(0, 64<<10); cap(b) != 64<<10 || len(b) != 0 {
		t.Fatalf("the pooled 64 KiB buffer was not reused: len %d cap %d", len(b), cap(b))
	}
}

// New instances reserve the memory earlier instances ended with, capped by
// limits.memory, and still start at the module's initial size.
func TestInstanceStartsWithPeakCapacity(t *testing.T) {
	f := loadAlone(t, "echo", func(s *Spec) { s.Isolation = edgefn.IsolationFresh })
	res := f.Invoke(context.Background(), event("x"))
	wantOK(t, res)
	if got := f.memPeak.Load(); got != res.MemoryBytes {
		t.Fatalf("peak %d after an invocation that ended with %d bytes", got, res.MemoryBytes)
	}
	for _, c := range []struct{ peak, wantCap uint64 }{
		{256 << 10, 256 << 10},
		{1 << 30, uint64(f.spec.Limits.Memory)}, // capped
	} {
		f.memPeak.Store(c.peak)
		inst, err := f.newInstance(f.r.base)
		if err != nil {
			t.Fatal(err)
		}
		if cap(inst.mem.buf) < int(c.wantCap) || uint64(cap(inst.mem.buf)) > uint64(f.spec.Limits.Memory) || len(inst.mem.buf) != 64<<10 {
			t.Errorf("peak %d: memory len %d cap %d, want len 64 KiB, cap %d..%d", c.peak, len(inst.mem.buf), cap(inst.mem.buf), c.wantCap, f.spec.Limits.Memory)
		}
		f.settle(&Result{}, inst, false, false, time.Time{})
	}
	wantOK(t, f.Invoke(context.Background(), event("x")))
	if st := f.Stats(); st.Alive != st.Spare {
		t.Errorf("stats %+v", st)
	}
}

// Load merges the Go reactor's ~22,000 data segments (one per Go symbol)
// into a few: instantiation copies each segment separately, and unmerged
// they made a fresh Go instance several times slower.
func TestLoadMergesGoDataSegments(t *testing.T) {
	r := newRuntime(t, Config{})
	wasm := fixture(t, "goreactor")
	spec := testSpec("goreactor")
	spec.Limits.Memory = 64 * edgefn.MiB
	before, err := wasmbin.Inspect(wasm)
	if err != nil {
		t.Fatal(err)
	}
	p, err := r.prepare(context.Background(), spec, wasm)
	if err != nil {
		t.Fatal(err)
	}
	after, err := wasmbin.Inspect(p.bin)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("data segments: %d -> %d", before.DataSegments, after.DataSegments)
	if before.DataSegments < 1000 || after.DataSegments > 16 {
		t.Errorf("data segments %d -> %d, want thousands merged into a few", before.DataSegments, after.DataSegments)
	}
}

// Fresh reactors get spare instances made in the background: an event takes
// one that never ran, so every event still sees a new instance, and spares
// plus invocations stay within limits.concurrency.
func TestFreshSpares(t *testing.T) {
	r := newRuntime(t, Config{})
	f := load(t, r, "counter", func(s *Spec) {
		s.Isolation = edgefn.IsolationFresh
		s.Limits.Concurrency = 3
	})
	for i := 0; i < 50; i++ {
		res := f.Invoke(context.Background(), event(""))
		wantOK(t, res)
		if got := string(res.Effects[0].Payload); got != "1" || !res.Cold {
			t.Fatalf("call %d emitted %q (cold %v): the instance had run before", i, got, res.Cold)
		}
		testutil.Eventually(t, 10*time.Second, "a spare", func() bool { return f.Stats().Spare == 1 })
	}
	// Three at once raise the spares to three, never more.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() { wantOK(t, f.Invoke(context.Background(), event(""))) })
	}
	wg.Wait()
	testutil.Eventually(t, 10*time.Second, "spares for the peak", func() bool {
		st := f.Stats()
		if st.Alive > 3 || st.Spare > 3 {
			t.Fatalf("over limits.concurrency: %+v", st)
		}
		return st.Spare >= 1
	})
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Alive != 0 || st.Spare != 0 {
		t.Fatalf("after Close: %+v", st)
	}
}
