package sandbox

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/wasmgen"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
)

func TestLoadRejectsBadModules(t *testing.T) {
	r := newRuntime(t, Config{})
	cases := []struct {
		name string
		wasm []byte
		want []string
	}{
		{"bad", fixture(t, "bad"), []string{
			`missing export "edgefn_handle"`,
			"unknown import foo.bar",
			"memory minimum 64 MiB over cap 8 MiB",
		}},
		{"badsig", fixture(t, "badsig"), []string{"emit"}},
		{"garbage", []byte("\x00asm\x01\x00\x00\x00\x01\xff"), []string{"malformed"}},
		{"empty", nil, []string{"malformed"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := r.Load(context.Background(), testSpec(c.name), c.wasm)
			if err == nil {
				t.Fatal("loaded a bad module")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestLoadRejectsBadSpec(t *testing.T) {
	r := newRuntime(t, Config{MaxMemory: 64 * edgefn.MiB})
	s := testSpec("trivial")
	s.Limits.Memory = 128 * edgefn.MiB
	s.Limits.Concurrency = 0
	_, err := r.Load(context.Background(), s, fixture(t, "trivial"))
	if err == nil || !strings.Contains(err.Error(), "limits.memory") || !strings.Contains(err.Error(), "limits.concurrency") {
		t.Fatalf("want both limit errors, got %v", err)
	}

	// Every limit but max_publishes must be positive; max_publishes 0 (no
	// publishes) is fine, -1 is not.
	s = testSpec("trivial")
	s.Limits = edgefn.Limits{Memory: s.Limits.Memory}
	_, err = r.Load(context.Background(), s, fixture(t, "trivial"))
	for _, f := range edgefn.LimitFields {
		named := err != nil && strings.Contains(err.Error(), "limits."+f.Key+" ")
		if want := f.Key != "memory" && f.Key != "max_publishes"; named != want {
			t.Errorf("all limits 0 but memory: error names limits.%s: %v, want %v (%v)", f.Key, named, want, err)
		}
	}
	s = testSpec("trivial")
	s.Limits.MaxPublishes = -1
	if _, err = r.Load(context.Background(), s, fixture(t, "trivial")); err == nil || !strings.Contains(err.Error(), "limits.max_publishes -1: must not be negative") {
		t.Errorf("max_publishes -1: %v", err)
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

func TestShapes(t *testing.T) {
	r := newRuntime(t, Config{})
	if s := load(t, r, "trivial", nil).Shape(); s != ShapeReactor {
		t.Errorf("trivial: %s", s)
	}
	if s := load(t, r, "cmd", nil).Shape(); s != ShapeCommand {
		t.Errorf("cmd: %s", s)
	}
	f := load(t, r, "trivial", nil)
	_ = f.Close(context.Background())
	res := f.Invoke(context.Background(), event(""))
	var fl *edgefn.Failure
	if !errors.As(res.Err, &fl) || fl.Reason != edgefn.ReasonInternal {
		t.Fatalf("invoke after close: %v", res.Err)
	}
}
