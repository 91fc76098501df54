package sandbox

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"go.uber.org/goleak"
)

func TestWarmReuseKeepsMemoryFlat(t *testing.T) {
	f := loadAlone(t, "memstable", nil)
	var first uint64
	for i := 0; i < 10000; i++ {
		res := f.Invoke(context.Background(), event("payload"))
		wantOK(t, res)
		if string(res.Effects[0].Payload) != "payload" {
			t.Fatalf("call %d: %q", i, res.Effects[0].Payload)
		}
		if i == 0 {
			first = res.MemoryBytes
			if !res.Cold {
				t.Fatal("first call not cold")
			}
		} else if res.Cold || res.MemoryBytes != first {
			t.Fatalf("call %d: cold %v memory %d (first %d)", i, res.Cold, res.MemoryBytes, first)
		}
	}
	if st := f.Stats(); st.Cold != 1 || st.Warm != 9999 || st.Alive != 1 {
		t.Errorf("stats %+v", st)
	}
}

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

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

func TestFreshInstancesLeakNothing(t *testing.T) {
	f := loadAlone(t, "echo", func(s *Spec) { s.Isolation = edgefn.IsolationFresh })
	run := func(n int) {
		for i := 0; i < n; i++ {
			res := f.Invoke(context.Background(), event("x"))
			if res.Err != nil || !res.Cold {
				t.Fatalf("call %d: %v cold %v", i, res.Err, res.Cold)
			}
		}
	}
	run(200)
	before, goroutines := heapInUse(), runtime.NumGoroutine()
	run(10000)
	after := heapInUse()
	t.Logf("heap in use %d -> %d KiB, goroutines %d -> %d", before>>10, after>>10, goroutines, runtime.NumGoroutine())
	if after > before+4<<20 {
		t.Errorf("heap grew from %d to %d", before, after)
	}
	if st := f.Stats(); st.Alive != st.Spare || st.Spare > 1 || st.Cold != 10200 {
		t.Errorf("stats %+v", st)
	}
	if err := f.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := f.Stats(); st.Alive != 0 {
		t.Errorf("after Close: %+v", st)
	}
	goleak.VerifyNone(t)
}

func TestConcurrencyLimit(t *testing.T) {
	kv := &memKV{block: make(chan struct{}), entered: make(chan struct{}, 16)}
	r := newRuntime(t, Config{KV: kv})
	f := load(t, r, "script", func(s *Spec) {
		s.Grants.KV = true
		s.Limits.Concurrency = 3
		s.Limits.Timeout = 10 * time.Second
	})
	var wg sync.WaitGroup
	results := make(chan *Result, 10)
	for i := 0; i < 10; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results <- f.Invoke(context.Background(), event("get k"))
		}()
	}
	for i := 0; i < 3; i++ {
		<-kv.entered
	}
	if st := f.Stats(); st.Alive != 3 {
		t.Errorf("alive %d while 3 invocations block", st.Alive)
	}
	// Let them all through, one at a time.
	go func() {
		for i := 0; i < 7; i++ {
			<-kv.entered
		}
	}()
	close(kv.block)
	wg.Wait()
	close(results)
	for res := range results {
		wantOK(t, res)
	}
	st := f.Stats()
	if kv.peak > 3 || st.Alive > 3 || st.Cold > 3 || st.Invocations != 10 {
		t.Errorf("peak %d, stats %+v", kv.peak, st)
	}
}

func TestKeepWarmScalesToZero(t *testing.T) {
	f := loadAlone(t, "trivial", func(s *Spec) { s.Limits.KeepWarm = 20 * time.Millisecond })
	wantOK(t, f.Invoke(context.Background(), event("")))
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Alive != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("instance still alive: %+v", f.Stats())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, not waiting for a fixed time
	}
	res := f.Invoke(context.Background(), event(""))
	wantOK(t, res)
	if !res.Cold {
		t.Error("invocation after scale-to-zero was warm")
	}
}

func TestGoReactor(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a 1.9 MB Go module")
	}
	f := loadAlone(t, "goreactor", func(s *Spec) {
		s.Limits.Memory = 64 * edgefn.MiB
		s.Limits.Timeout = 2 * time.Second
	})
	for i := 0; i < 3; i++ {
		res := f.Invoke(context.Background(), event("hello"))
		wantOK(t, res)
		if string(res.Effects[0].Payload) != "HELLO" || logText(res) != "go reactor\n" || res.Cold != (i == 0) {
			t.Fatalf("call %d: %+v logs %q cold %v", i, res.Effects, logText(res), res.Cold)
		}
	}
	res := f.Invoke(context.Background(), event("alloc"))
	fl := wantFailure(t, res, edgefn.ReasonMemory)
	t.Logf("alloc: %v (memory %d MiB)", fl, res.MemoryBytes>>20)
	res = f.Invoke(context.Background(), event("after"))
	wantOK(t, res)
	if !res.Cold {
		t.Error("instance that ran out of memory was reused")
	}
}
