package wasmbin

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
)

// seedFixtures adds the small built fixtures to the corpus (skipping the big Go program).
func seedFixtures(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	if len(paths) == 0 {
		f.Fatal("no test guests in testdata (run `make wasm` at the repository root)")
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil && len(b) < 64<<10 {
			f.Add(b)
		}
	}
	f.Add(oneFunc(0x01, 0x0b))
	f.Add(oneFunc(0xfe, 0x10, 0x02, 0x00, 0x0b))
}

func FuzzInspect(f *testing.F) {
	seedFixtures(f)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		info, err := Inspect(wasm)
		if (info == nil) == (err == nil) {
			t.Fatalf("info %v and err %v", info, err)
		}
		b := Bounds{Functions: 2, CodeBytes: 64, Tables: 1, Globals: 1, ElementSegments: 1, DataSegments: 2,
			Elements: 4, Types: 3, Imports: 2, Exports: 3}
		within, errWithin := InspectWithin(wasm, b)
		if (within == nil) == (errWithin == nil) || err != nil && errWithin == nil {
			t.Fatalf("within: info %v and err %v (unbounded: %v)", within, errWithin, err)
		}
		if within != nil && (within.Functions > 2 || within.CodeBytes > 64 || len(within.Tables) > 1 ||
			within.Globals > 1 || within.ElementSegments > 1 || within.DataSegments > 2 ||
			within.Elements > 4 || len(within.Imports) > 2 || len(within.Exports) > 3) {
			t.Fatalf("over the bounds: %+v", within)
		}
	})
}

// FuzzRewrite checks Rewrite never panics, that whenever wazero accepts the input it accepts
// the rewritten module too, with and without Yield, and that it never turns a module wazero
// refuses into one it accepts (an index past the module's own locals or globals would name the
// instrumentation's).
func FuzzRewrite(f *testing.F) {
	seedFixtures(f)
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, runtimeConfig())
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		opt := Options{Instrument: true, TrackGrow: true, MaxMemoryPages: 100, MergeData: true, StripDebug: true,
			MemoryBudget: 100<<16 + 1000*TableElemBytes}
		out, err := Rewrite(wasm, opt)
		opt.Yield = true
		outYield, errYield := Rewrite(wasm, opt)
		if err != nil {
			return
		}
		c, err := r.CompileModule(ctx, wasm)
		if err != nil {
			// Invalid input (type errors are wazero's to find): the instrumentation must not
			// make it valid. The baseline is the input re-encoded with StripDebug only, which
			// drops a malformed name section as every rewrite does, and strips debug
			// (custom) sections as opt does: a malformed custom section is not code.
			plain, _ := Rewrite(wasm, Options{StripDebug: true})
			if c, err := r.CompileModule(ctx, plain); err == nil {
				_ = c.Close(ctx)
				return
			}
			if c, err := r.CompileModule(ctx, out); err == nil {
				_ = c.Close(ctx)
				t.Fatal("wazero refuses the input but accepts the rewritten module")
			}
			return
		}
		_ = c.Close(ctx)
		c, err = r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("wazero accepts the input but not the rewritten module: %v", err)
		}
		_ = c.Close(ctx)
		if errYield != nil {
			// Only a module importing from YieldModule is refused with Yield alone.
			info, _ := Inspect(wasm)
			for _, im := range info.Imports {
				if im.Module == YieldModule {
					return
				}
			}
			t.Fatalf("Rewrite with Yield: %v", errYield)
		}
		c, err = r.CompileModule(ctx, outYield)
		if err != nil {
			t.Fatalf("wazero accepts the input but not the module rewritten with Yield: %v", err)
		}
		_ = c.Close(ctx)
	})
}
