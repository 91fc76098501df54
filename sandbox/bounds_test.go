package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/wasmgen"
)

// Tables count against limits.memory: a table.grow bomb is refused without allocating, and
// memory and tables share the cap exactly.
func TestTableGrowCountsAgainstMemory(t *testing.T) {
	r := newRuntime(t, Config{})
	f := load(t, r, "tablegrow", func(s *Spec) { s.Limits.Memory = edgefn.MiB })
	fl := wantFailure(t, f.Invoke(context.Background(), event("bomb")), edgefn.ReasonMemory)
	if !strings.Contains(fl.Message, "table.grow failed at the cap of 1 MiB") {
		t.Errorf("bomb: %q", fl.Message)
	}
	// One page of memory leaves 960 KiB, 122,880 elements, for the table; then memory cannot grow.
	for i := 0; i < 2; i++ { // the second run is on the warm instance, its table already full
		res := f.Invoke(context.Background(), event("fill"))
		wantOK(t, res)
		size, grow := filled(t, res)
		if size != 122880 || grow != -1 {
			t.Errorf("run %d: table size %d, memory.grow %d; want 122880, -1", i, size, grow)
		}
	}
	// With 2 MiB, the table stops at 2 MiB less two pages and memory still grew first.
	f = load(t, r, "tablegrow", func(s *Spec) { s.Limits.Memory = 2 * edgefn.MiB })
	res := f.Invoke(context.Background(), event("fill"))
	wantOK(t, res)
	if size, grow := filled(t, res); size != (2<<20-65536)/8/4096*4096 || grow != -1 {
		t.Errorf("2 MiB: table size %d, memory.grow %d", size, grow)
	}
}

// filled decodes what tablegrow's fill emits: the table size and memory.grow's result.
func filled(t *testing.T, res *Result) (size, grow int32) {
	t.Helper()
	if len(res.Effects) != 1 || len(res.Effects[0].Payload) != 8 {
		t.Fatalf("effects %+v", res.Effects)
	}
	p := res.Effects[0].Payload
	return int32(binary.LittleEndian.Uint32(p)), int32(binary.LittleEndian.Uint32(p[4:]))
}

// A memory.grow leaves room for the tables' elements.
func TestMemoryGrowCountsTables(t *testing.T) {
	f := loadAlone(t, "tablegrow", func(s *Spec) { s.Limits.Memory = edgefn.MiB + 8*edgefn.KiB })
	res := f.Invoke(context.Background(), event("fill"))
	wantOK(t, res)
	// 1 MiB + 8 KiB - 64 KiB is 124,928 elements; the loop stops at 122,880 (a multiple of
	// 4096): 16 KiB are left, less than a page.
	if size, grow := filled(t, res); size != 122880 || grow != -1 {
		t.Errorf("table size %d, memory.grow %d; want 122880, -1", size, grow)
	}
}

func TestTableMinimumsRefusedAtLoad(t *testing.T) {
	r := newRuntime(t, Config{})
	s := testSpec("tablemin")
	s.Limits.Memory = edgefn.MiB
	_, err := r.Load(context.Background(), s, fixture(t, "tablemin"))
	if err == nil {
		t.Fatal("loaded tables of 150,000,000 elements under a 1 MiB limit")
	}
	for _, w := range []string{"tables need at least 150000000 elements", "1144.4 MiB", "over cap 1 MiB (limits.memory)"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not say %q", err, w)
		}
	}
	t.Log(err)
}

// Every module bound refuses at load, naming the count and the bound.
func TestModuleBounds(t *testing.T) {
	cases := []struct {
		name   string
		bounds Bounds
		wasm   func(t *testing.T) []byte
		want   BoundError // Count 0: any count over Max (a Go-built fixture's counts vary with the toolchain and the build path)
	}{
		{"functions", Bounds{}, func(*testing.T) []byte { return wasmgen.Reactor(100_000, 0, 0) }, BoundError{"functions", 100_001, 20_000}},
		{"tables", Bounds{}, func(t *testing.T) []byte { return fixture(t, "manytables") }, BoundError{"tables", 9, 8}},
		{"globals", Bounds{}, func(*testing.T) []byte { return wasmgen.Reactor(0, 10_001, 0) }, BoundError{"globals", 10_001, 10_000}},
		{"element segments", Bounds{}, func(*testing.T) []byte { return wasmgen.Reactor(0, 0, 1_001) }, BoundError{"element segments", 1_001, 1_000}},
		{"data segments", Bounds{DataSegments: 1000}, func(t *testing.T) []byte { return fixture(t, "goreactor") }, BoundError{"data segments", 0, 1000}},
		{"code", Bounds{CodeBytes: edgefn.MiB}, func(t *testing.T) []byte { return fixture(t, "goreactor") }, BoundError{"bytes of code", 0, 1 << 20}},
		{"element references", Bounds{Elements: 1000}, func(t *testing.T) []byte { return fixture(t, "goreactor") }, BoundError{"element references", 0, 1000}},
		{"imports", Bounds{Imports: 2}, func(t *testing.T) []byte { return fixture(t, "cmd") }, BoundError{"imports", 8, 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRuntime(t, Config{Bounds: c.bounds})
			_, err := r.Load(context.Background(), testSpec(c.name), c.wasm(t))
			var be *BoundError
			if !errors.As(err, &be) {
				t.Fatalf("got %v, want a *BoundError", err)
			}
			got := *be
			if c.want.Count == 0 && got.Count > got.Max {
				got.Count = 0
			}
			if got != c.want {
				t.Errorf("got %+v, want %+v", *be, c.want)
			}
			if !strings.Contains(err.Error(), "over the agent's bound of") {
				t.Errorf("message %q", err)
			}
		})
	}
	// At the bounds the module loads.
	r := newRuntime(t, Config{Bounds: Bounds{Functions: 100, Globals: 10, ElementSegments: 5}})
	f, err := r.Load(context.Background(), testSpec("gen"), wasmgen.Reactor(100-1, 10, 5))
	if err != nil {
		t.Fatalf("at the bounds: %v", err)
	}
	defer f.Close(context.Background())
	wantOK(t, f.Invoke(context.Background(), event("")))
}

func TestCompileTimeout(t *testing.T) {
	if !compiled() {
		t.Skip("wazero's interpreter (32-bit ARM) translates without checking the context; the module bounds still apply")
	}
	r := newRuntime(t, Config{CompileTimeout: time.Nanosecond})
	_, err := r.Load(context.Background(), testSpec("goreactor"), fixture(t, "goreactor"))
	if err == nil || !strings.Contains(err.Error(), "compile: not done after 1ns, the agent's compile timeout") {
		t.Fatalf("got %v", err)
	}
}

func TestInitializeWithinDeadline(t *testing.T) {
	f := loadAlone(t, "initloop", func(s *Spec) { s.Limits.Timeout = 20 * time.Millisecond })
	fl := wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTimeout)
	if !strings.HasPrefix(fl.Message, "_initialize: deadline of 20ms exceeded") {
		t.Errorf("message %q", fl.Message)
	}
}

// A load cache entry written under looser bounds does not let a module past tighter ones.
func TestLoadCacheKeepsBounds(t *testing.T) {
	dir := t.TempDir()
	wasm := wasmgen.Reactor(50, 0, 0)
	r := newRuntime(t, Config{CacheDir: dir})
	f, err := r.Load(context.Background(), testSpec("gen"), wasm)
	if err != nil {
		t.Fatal(err)
	}
	_ = f.Close(context.Background())
	r2 := newRuntime(t, Config{CacheDir: dir, Bounds: Bounds{Functions: 10}})
	_, err = r2.Load(context.Background(), testSpec("gen"), wasm)
	var be *BoundError
	if !errors.As(err, &be) || be.Count != 51 {
		t.Fatalf("got %v, want a *BoundError for 51 functions", err)
	}
}
