package wasmbin

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/tetratelabs/wazero/api"
)

// callI32 calls the exported function name of mod and returns its i32 result.
func callI32(t *testing.T, mod api.Module, name string, args ...uint64) int32 {
	t.Helper()
	res, err := mod.ExportedFunction(name).Call(context.Background(), args...)
	if err != nil {
		t.Fatalf("%s%v: %v", name, args, err)
	}
	return int32(uint32(res[0]))
}

// With MemoryBudget, table.grow fails once memory and tables would take more than the budget,
// GlobalTableElems follows every successful grow, and each table's maximum is clamped.
func TestMemoryBudgetTables(t *testing.T) {
	budget := uint64(65536 + 100*TableElemBytes) // one page and 100 elements
	for _, yield := range []bool{false, true} {
		out := mustRewrite(t, testutil.Testdata(t, "tables.wasm"), Options{Instrument: true, Yield: yield, TrackGrow: true, MemoryBudget: budget})
		info, err := Inspect(out)
		if err != nil {
			t.Fatal(err)
		}
		for i, tb := range info.Tables {
			if !tb.HasMax || tb.Max != uint32(budget/TableElemBytes) {
				t.Errorf("table %d: %+v, want a maximum of %d", i, tb, budget/TableElemBytes)
			}
		}
		mod := instantiate(t, newRuntime(t, nil), out)
		elems, failed := global(t, mod, GlobalTableElems), global(t, mod, GlobalGrowFailed)
		if elems.Get() != 2 {
			t.Fatalf("%s = %d at instantiation, want the minimums (2)", GlobalTableElems, elems.Get())
		}
		if got := callI32(t, mod, "grow_f", 50); got != 2 {
			t.Errorf("grow_f(50) = %d, want 2", got)
		}
		if got := callI32(t, mod, "grow_e", 40); got != 0 {
			t.Errorf("grow_e(40) = %d, want 0", got)
		}
		if got := callI32(t, mod, "grow_f_loop", 20); got != 8 {
			t.Errorf("grow_f_loop(20) = %d grows, want 8 (to 100 elements)", got)
		}
		if elems.Get() != 100 || failed.Get() != 2 {
			t.Errorf("after the loop: elems %d, grow_failed %d; want 100, 2", elems.Get(), failed.Get())
		}
		failed.Set(0)
		for _, delta := range []uint64{1, 1 << 20, 0xffffffff} {
			if got := callI32(t, mod, "grow_e", delta); got != -1 {
				t.Errorf("grow_e(%d) over the budget = %d, want -1", delta, got)
			}
		}
		if failed.Get() != 2 || elems.Get() != 100 || callI32(t, mod, "size_f") != 60 || callI32(t, mod, "size_e") != 40 {
			t.Errorf("refused grows changed something: failed %d elems %d sizes %d %d",
				failed.Get(), elems.Get(), callI32(t, mod, "size_f"), callI32(t, mod, "size_e"))
		}
		if got := callI32(t, mod, "grow_f", 0); got != 60 {
			t.Errorf("grow_f(0) = %d, want 60", got)
		}
	}

	// Memory counts too: a page more leaves no room for elements.
	budget = 2*65536 + 10*TableElemBytes
	mod := instantiate(t, newRuntime(t, nil), mustRewrite(t, testutil.Testdata(t, "tables.wasm"), Options{MemoryBudget: budget}))
	if got := callI32(t, mod, "grow_mem", 1); got != 1 {
		t.Fatalf("grow_mem(1) = %d", got)
	}
	if got := callI32(t, mod, "grow_f", 8); got != 2 {
		t.Errorf("grow_f(8) = %d, want 2", got)
	}
	if got := callI32(t, mod, "grow_f", 1); got != -1 {
		t.Errorf("grow_f(1) past 2 pages and 10 elements = %d, want -1", got)
	}
}

func TestMemoryBudgetMinimums(t *testing.T) {
	_, err := Rewrite(testutil.Testdata(t, "tables.wasm"), Options{MemoryBudget: 65536 + TableElemBytes})
	var le *LimitError
	if !errors.As(err, &le) || le.TableElems != 2 || le.MinPages != 1 {
		t.Fatalf("got %v, want a *LimitError for 1 page and 2 elements", err)
	}
	if !strings.Contains(err.Error(), "1 pages of memory and 2 table elements") {
		t.Errorf("message: %v", err)
	}
	t.Log(err)
}

func TestInspectWithin(t *testing.T) {
	tests := []struct {
		fixture string
		b       Bounds
		want    BoundError
	}{
		{"control.wasm", Bounds{Functions: 10}, BoundError{"functions", 18, 10}},
		{"control.wasm", Bounds{CodeBytes: 100}, BoundError{"bytes of code", 491, 100}},
		{"control.wasm", Bounds{DataSegments: 2}, BoundError{"data segments", 3, 2}},
		{"tables.wasm", Bounds{Tables: 1}, BoundError{"tables", 2, 1}},
		{"refs.wasm", Bounds{Globals: 1}, BoundError{"globals", 2, 1}},
		{"refs.wasm", Bounds{ElementSegments: 4}, BoundError{"element segments", 8, 4}},
		{"refs.wasm", Bounds{Elements: 10}, BoundError{"element references", 11, 10}},
		{"control.wasm", Bounds{Types: 2}, BoundError{"types", 5, 2}},
		{"cprog.wasm", Bounds{Imports: 2}, BoundError{"imports", 7, 2}},
		{"control.wasm", Bounds{Exports: 3}, BoundError{"exports", 14, 3}},
	}
	for _, tt := range tests {
		_, err := InspectWithin(testutil.Testdata(t, tt.fixture), tt.b)
		var be *BoundError
		if !errors.As(err, &be) || *be != tt.want {
			t.Errorf("%s within %+v: got %v, want %v", tt.fixture, tt.b, err, &tt.want)
		}
	}
	// At the bound is fine.
	if _, err := InspectWithin(testutil.Testdata(t, "control.wasm"), Bounds{Functions: 18, CodeBytes: 491, DataSegments: 3, Tables: 1, Globals: 1, ElementSegments: 1}); err != nil {
		t.Errorf("at the bounds: %v", err)
	}
}
