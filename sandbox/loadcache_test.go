package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/edgefn/edgefn"
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
