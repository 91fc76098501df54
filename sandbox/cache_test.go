package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
)

func loadEntries(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, loadDir))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
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

// A restart takes the validated, rewritten module from the load cache and
// skips the rewrite and the trial instantiation; a damaged entry is a miss
// and is written again.
func TestLoadCache(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", nil)
	if first.fromCache {
		t.Fatal("first load came from an empty cache")
	}
	ents := loadEntries(t, dir)
	if len(ents) != 1 {
		t.Fatalf("load cache entries %v, want 1", ents)
	}
	entry := filepath.Join(dir, loadDir, ents[0])

	again := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", nil)
	if !again.fromCache || again.Hash() != first.Hash() || again.Shape() != ShapeReactor {
		t.Fatalf("reload: from cache %v, hash %s (first %s), shape %s", again.fromCache, again.Hash(), first.Hash(), again.Shape())
	}
	res := again.Invoke(ctx, event("x"))
	wantOK(t, res)
	if string(res.Effects[0].Payload) != "x" {
		t.Fatalf("effects %+v", res.Effects)
	}

	// Damage the module bytes: the checksum catches it.
	b, err := os.ReadFile(entry)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	if err := os.WriteFile(entry, b, 0o600); err != nil {
		t.Fatal(err)
	}
	damaged := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", nil)
	if damaged.fromCache || damaged.Hash() != first.Hash() {
		t.Fatalf("damaged entry: from cache %v, hash %s", damaged.fromCache, damaged.Hash())
	}
	wantOK(t, damaged.Invoke(ctx, event("x")))
	if repaired := load(t, newRuntime(t, Config{CacheDir: dir}), "echo", nil); !repaired.fromCache {
		t.Error("the damaged entry was not written again")
	}
}

// The entry depends on the limits that change the rewrite or validation,
// and a module that fails to load leaves no entry.
func TestLoadCacheKey(t *testing.T) {
	dir := t.TempDir()
	r := newRuntime(t, Config{CacheDir: dir})
	small := load(t, r, "echo", nil)
	big := load(t, r, "echo", func(s *Spec) { s.Limits.Memory = 16 * edgefn.MiB })
	depth := load(t, r, "echo", func(s *Spec) { s.Limits.MaxDepth = 77 })
	if small.Hash() == big.Hash() || small.Hash() == depth.Hash() {
		t.Error("different limits gave the same module")
	}
	if n := len(loadEntries(t, dir)); n != 3 {
		t.Fatalf("%d entries, want 3", n)
	}
	if big.fromCache || depth.fromCache {
		t.Error("a load with other limits hit the cache")
	}
	if _, err := r.Load(context.Background(), testSpec("bad"), fixture(t, "bad")); err == nil {
		t.Fatal("loaded a bad module")
	}
	if _, err := r.Load(context.Background(), testSpec("badsig"), fixture(t, "badsig")); err == nil {
		t.Fatal("loaded a module whose import has the wrong signature")
	}
	if n := len(loadEntries(t, dir)); n != 3 {
		t.Fatalf("%d entries after failed loads, want 3", n)
	}
	// A stray temporary file and the entries of modules not kept go.
	if err := os.WriteFile(filepath.Join(dir, loadDir, "x.tmp123"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Prune(small); err != nil {
		t.Fatal(err)
	}
	ents := loadEntries(t, dir)
	if len(ents) != 1 {
		t.Fatalf("entries after prune: %v", ents)
	}
	if h, err := preparedHash(filepath.Join(dir, loadDir, ents[0])); err != nil || h != small.Hash() {
		t.Errorf("kept entry is for %s (%v), want %s", h, err, small.Hash())
	}
}

// Every loaded module calls the yield import (a guest must stay preemptible
// by Go), whether prepared now or taken from the load cache.
func TestPreparedModulesYield(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ {
		r := newRuntime(t, Config{CacheDir: dir})
		p, err := r.prepare(context.Background(), testSpec("loop"), fixture(t, "loop"))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			r.writePrepared(&prepared{bin: p.bin, hash: p.hash, shape: p.shape, key: p.key})
		} else if !p.cached {
			t.Fatal("second prepare missed the cache")
		}
		info, err := wasmbin.Inspect(p.bin)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, im := range info.Imports {
			found = found || (im.Module == wasmbin.YieldModule && im.Name == wasmbin.YieldName)
		}
		if !found {
			t.Errorf("run %d: prepared module does not import %s.%s", i, wasmbin.YieldModule, wasmbin.YieldName)
		}
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
