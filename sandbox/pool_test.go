package sandbox

import (
	"context"
	"os"
	"path/filepath"
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
	if st := f.Stats(); st.Alive != 0 || st.Cold != 10200 {
		t.Errorf("stats %+v", st)
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

func TestDiskCacheAndPrune(t *testing.T) {
	if !compiled() {
		t.Skip("wazero's interpreter (32-bit ARM) compiles nothing to cache")
	}
	dir := t.TempDir()
	ctx := context.Background()
	files := func() int {
		m, _ := filepath.Glob(filepath.Join(dir, "wazero-*", "*"))
		return len(m)
	}
	r1, err := New(ctx, Config{CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	a, err := r1.Load(ctx, testSpec("echo"), fixture(t, "echo"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := r1.Load(ctx, testSpec("trivial"), fixture(t, "trivial"))
	if err != nil {
		t.Fatal(err)
	}
	if n := files(); n != 2 {
		t.Fatalf("%d cache files, want 2", n)
	}
	_ = a.Close(ctx)
	_ = b.Close(ctx)
	if err := r1.Close(ctx); err != nil {
		t.Fatal(err)
	}

	// A restart compiles from the cache: no new file.
	r2 := newRuntime(t, Config{CacheDir: dir})
	a2 := load(t, r2, "echo", nil)
	if n := files(); n != 2 {
		t.Fatalf("%d cache files after reload, want 2", n)
	}
	wantOK(t, a2.Invoke(ctx, event("x")))
	removed, err := r2.Prune(a2)
	if err != nil || removed != 1 || files() != 1 {
		t.Fatalf("prune: removed %d, err %v, %d files left", removed, err, files())
	}
	idx, _ := os.ReadDir(filepath.Join(dir, indexDir))
	if len(idx) != 1 || idx[0].Name() != a2.Hash() {
		t.Errorf("index left: %v", idx)
	}
	wantOK(t, a2.Invoke(ctx, event("x")))
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
