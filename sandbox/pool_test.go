package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
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

// A function without an event for keep_warm loses its instances and its
// compiled code; the next event reloads the code from the disk caches and
// runs as before, in warm and fresh isolation alike.
func TestIdleFunctionUnloadsAndReloads(t *testing.T) {
	for _, iso := range []edgefn.Isolation{edgefn.IsolationWarm, edgefn.IsolationFresh} {
		t.Run(string(iso), func(t *testing.T) {
			r := newRuntime(t, Config{CacheDir: t.TempDir()})
			f := load(t, r, "echo", func(s *Spec) {
				s.Isolation = iso
				s.Limits.KeepWarm = 30 * time.Millisecond
			})
			for round := 0; round < 3; round++ {
				testutil.Eventually(t, 10*time.Second, "the idle function unloaded", func() bool { return !f.Stats().Loaded })
				if st := f.Stats(); st.Alive != 0 || st.Unloads != uint64(round+1) {
					t.Fatalf("round %d: unloaded with %+v", round, st)
				}
				res := f.Invoke(context.Background(), event("again"))
				wantOK(t, res)
				if string(res.Effects[0].Payload) != "again" || !res.Cold || res.Reload <= 0 {
					t.Fatalf("round %d: after unload: %+v", round, res)
				}
				st := f.Stats()
				if !st.Loaded || st.Reloads != uint64(round+1) || st.LastReload != res.Reload {
					t.Fatalf("round %d: after reload: %+v", round, st)
				}
				t.Logf("reload of echo from the disk cache: %s", res.Reload)
			}
		})
	}
}

// Without a disk cache (nothing to reload from) and with a load cache entry
// gone, the code stays loaded; an entry lost after the unload fails the
// next event with an internal error that names it.
func TestUnloadNeedsTheLoadCache(t *testing.T) {
	keep := func(s *Spec) { s.Limits.KeepWarm = 20 * time.Millisecond }
	t.Run("no cache dir", func(t *testing.T) {
		f := load(t, newRuntime(t, Config{}), "echo", keep)
		wantOK(t, f.Invoke(context.Background(), event("x")))
		testutil.Eventually(t, 10*time.Second, "the idle instance closed", func() bool { return f.Stats().Alive == 0 })
		if st := f.Stats(); !st.Loaded || st.Unloads != 0 {
			t.Fatalf("unloaded without a disk cache: %+v", st)
		}
		if f.key != "" {
			t.Fatalf("load cache key %q without a cache dir", f.key)
		}
	})
	t.Run("entry removed before", func(t *testing.T) {
		dir := t.TempDir()
		f := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", func(s *Spec) { s.Limits.KeepWarm = time.Hour })
		if err := os.Remove(filepath.Join(dir, loadDir, f.key)); err != nil {
			t.Fatal(err)
		}
		// As the timer would after keep_warm (an hour here).
		f.mu.Lock()
		f.lastEnd = time.Now().Add(-2 * time.Hour)
		f.mu.Unlock()
		f.reap()
		if st := f.Stats(); !st.Loaded || st.Unloads != 0 {
			t.Fatalf("unloaded without a load cache entry to reload from: %+v", st)
		}
		wantOK(t, f.Invoke(context.Background(), event("x")))
	})
	t.Run("entry removed after", func(t *testing.T) {
		dir := t.TempDir()
		f := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", keep)
		testutil.Eventually(t, 10*time.Second, "the idle function unloaded", func() bool { return !f.Stats().Loaded })
		if err := os.Remove(filepath.Join(dir, loadDir, f.key)); err != nil {
			t.Fatal(err)
		}
		fl := wantFailure(t, f.Invoke(context.Background(), event("x")), edgefn.ReasonInternal)
		if !strings.Contains(fl.Error(), f.key) || !strings.Contains(fl.Error(), "deploy the function again") {
			t.Fatalf("failure does not name the missing entry: %v", fl)
		}
	})
}

// BenchmarkReload: the first event after an unload, which reloads the
// compiled code from the disk caches (wazero's compilation cache and the
// load cache), against a warm invocation of the same function.
func BenchmarkReload(b *testing.B) {
	for _, name := range []string{"echo", "goreactor"} {
		b.Run(name, func(b *testing.B) {
			r := newRuntime(b, Config{CacheDir: b.TempDir()})
			f := load(b, r, name, func(s *Spec) {
				s.Limits.Memory = 64 * edgefn.MiB
				s.Limits.Timeout = time.Second
				s.Limits.KeepWarm = time.Hour
			})
			ev := event("x")
			var reload time.Duration
			cpu := cpuTime()
			for b.Loop() {
				b.StopTimer()
				f.mu.Lock()
				f.lastEnd = time.Now().Add(-2 * time.Hour)
				for _, inst := range f.idle {
					inst.lastUsed = f.lastEnd
				}
				f.mu.Unlock()
				f.reap()
				if f.Stats().Loaded {
					b.Fatal("not unloaded")
				}
				b.StartTimer()
				res := f.Invoke(context.Background(), ev)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				reload += res.Reload
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(reload.Microseconds())/float64(b.N), "reload-µs/op")
		})
	}
}
