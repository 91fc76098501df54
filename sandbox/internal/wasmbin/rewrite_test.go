package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

var optionSets = map[string]Options{
	"instrument": {Instrument: true},
	"interval1":  {Instrument: true, CheckInterval: 1},
	"all":        {Instrument: true, TrackGrow: true, MaxMemoryPages: 3, MergeData: true, StripDebug: true},
	"grow only":  {TrackGrow: true},
	"none":       {},
}

type call struct {
	fn   string
	args []uint64
}

// outcome runs calls in order on a fresh instance of wasm and describes what each returned.
func outcome(t *testing.T, r wazero.Runtime, wasm []byte, calls []call) []string {
	t.Helper()
	mod := instantiate(t, r, wasm)
	defer mod.Close(context.Background())
	var got []string
	for _, c := range calls {
		res, err := mod.ExportedFunction(c.fn).Call(context.Background(), c.args...)
		if err != nil {
			got = append(got, fmt.Sprintf("%s%v: error %v", c.fn, c.args, err))
			continue
		}
		got = append(got, fmt.Sprintf("%s%v = %v", c.fn, c.args, res))
	}
	return got
}

func i32s(vs ...int32) []uint64 {
	out := make([]uint64, len(vs))
	for i, v := range vs {
		out[i] = uint64(uint32(v))
	}
	return out
}

func controlCalls() [][]call {
	var seqs [][]call
	var one []call
	for _, n := range []int32{0, 1, 2, 3, 4, 5, 7, 100, 1000} {
		one = append(one, call{"loop_sum", i32s(n)}, call{"nested", i32s(n)}, call{"loop_params", i32s(n)})
	}
	for _, n := range []int32{-5, 0, 3, 5, 6, 11, 20} {
		one = append(one, call{"early", i32s(n)})
	}
	for _, ab := range [][2]int32{{7, 2}, {7, 0}, {100, 7}, {-1, 3}} {
		one = append(one, call{"divmod", i32s(ab[0], ab[1])}, call{"divmod_sum", i32s(ab[0], ab[1])})
	}
	for _, n := range []int32{0, 1, 2, 10, 20} {
		one = append(one, call{"fib", i32s(n)})
	}
	for i := int32(0); i < 7; i++ {
		one = append(one, call{"indirect", i32s(i, 9)})
	}
	one = append(one, call{"accumulate", i32s(10)}, call{"acc", nil}, call{"accumulate", i32s(1000)}, call{"acc", nil})
	for _, a := range []int32{0, 15, 16, 19, 20, 22, 23, 4000, 4003, 4004, 70000} {
		one = append(one, call{"load", i32s(a)})
	}
	seqs = append(seqs, one)
	// memory.grow: within and past the declared maximum (4 pages), then past MaxMemoryPages 3.
	seqs = append(seqs, []call{{"grow", i32s(1)}, {"grow", i32s(1)}, {"grow", i32s(5)}, {"grow", i32s(1)}, {"grow", i32s(0)}})
	return seqs
}

func TestRewriteEquivalence(t *testing.T) {
	r := newRuntime(t, nil)
	orig := fixture(t, "control.wasm")
	for name, opt := range optionSets {
		t.Run(name, func(t *testing.T) {
			rewritten := mustRewrite(t, orig, opt)
			for _, calls := range controlCalls() {
				want := outcome(t, r, orig, calls)
				got := outcome(t, r, rewritten, calls)
				if opt.MaxMemoryPages == 3 && calls[0].fn == "grow" {
					// the clamp makes the third page the last: grow 1 -> ok, grow 1 -> -1
					want = []string{"grow[1] = [1002]", "grow[1] = [2003]", "grow[5] = [4294967295]", "grow[1] = [4294967295]", "grow[0] = [3003]"}
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("rewritten differs:\n got  %q\n want %q", got, want)
				}
			}
		})
	}
}

func TestRewriteTailAndSIMD(t *testing.T) {
	r := newRuntime(t, nil)
	for _, tc := range []struct {
		file  string
		calls []call
	}{
		{"tail.wasm", []call{{"count", i32s(0, 5)}, {"count", i32s(100000, 1)}, {"sum", i32s(50000, 0)}}},
		{"simd.wasm", []call{{"simd", i32s(77)}}}, // once: it drops its passive segment
	} {
		orig := fixture(t, tc.file)
		for name, opt := range optionSets {
			want := outcome(t, r, orig, tc.calls)
			got := outcome(t, r, mustRewrite(t, orig, opt), tc.calls)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: got %q, want %q", tc.file, name, got, want)
			}
			if strings.Contains(strings.Join(want, ""), "error") {
				t.Errorf("%s: the original fails: %q", tc.file, want)
			}
		}
	}
}

// A tail-recursive loop of 100000 steps must not use up the depth budget.
func TestTailCallsKeepDepth(t *testing.T) {
	r := newRuntime(t, nil)
	mod := instantiate(t, r, mustRewrite(t, fixture(t, "tail.wasm"), Options{Instrument: true, InitialDepth: 5}))
	if _, err := mod.ExportedFunction("sum").Call(context.Background(), i32s(100000, 0)...); err != nil {
		t.Fatal(err)
	}
	if d := int32(global(t, mod, GlobalDepth).Get()); d != 5 {
		t.Fatalf("depth after the call: %d, want 5", d)
	}
}

func TestRewriteErrors(t *testing.T) {
	wasm := fixture(t, "control.wasm")
	once := mustRewrite(t, wasm, Options{Instrument: true})
	if _, err := Rewrite(once, Options{Instrument: true}); err == nil || !strings.Contains(err.Error(), GlobalStop) {
		t.Errorf("instrumenting twice: %v", err)
	}
	// The input is left as it was.
	if !bytes.Equal(wasm, fixture(t, "control.wasm")) {
		t.Error("Rewrite modified its input")
	}
	_, err := Rewrite(fixture(t, "goprog.wasm"), Options{MaxMemoryPages: 16})
	var le *LimitError
	if !errors.As(err, &le) || le.MaxPages != 16 || !strings.Contains(err.Error(), "1 MiB") {
		t.Fatalf("min above the limit: %v", err)
	}
	t.Log(err)
}

func TestMaxMemoryPages(t *testing.T) {
	r := newRuntime(t, nil)
	wasm := fixture(t, "stop.wasm") // memory 1, no maximum
	mod := instantiate(t, r, mustRewrite(t, wasm, Options{TrackGrow: true, MaxMemoryPages: 10}))
	res, err := mod.ExportedFunction("grow_all").Call(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res[0] != 10 {
		t.Errorf("grew to %d pages, want 10", res[0])
	}
	if g := global(t, mod, GlobalGrowFailed).Get(); g != 1 {
		t.Errorf("%s = %d, want 1", GlobalGrowFailed, g)
	}
	info, err := Inspect(mustRewrite(t, wasm, Options{MaxMemoryPages: 10}))
	if err != nil || !info.HasMemoryMax || info.MemoryMax != 10 {
		t.Errorf("inspect clamped: %+v %v", info, err)
	}
	// A larger maximum is lowered, a smaller one is kept.
	if info, _ := Inspect(mustRewrite(t, fixture(t, "control.wasm"), Options{MaxMemoryPages: 2})); info.MemoryMax != 2 {
		t.Errorf("control max %d, want 2", info.MemoryMax)
	}
	if info, _ := Inspect(mustRewrite(t, fixture(t, "control.wasm"), Options{MaxMemoryPages: 200})); info.MemoryMax != 4 {
		t.Errorf("control max %d, want 4", info.MemoryMax)
	}
}

func TestMergeDataOverlaps(t *testing.T) {
	wasm := fixture(t, "control.wasm")
	merged := mustRewrite(t, wasm, Options{MergeData: true})
	info, err := Inspect(merged)
	if err != nil {
		t.Fatal(err)
	}
	// "hello" at 16 overwritten by "XYZ" at 20, and a far segment at 4000: two segments.
	if info.DataSegments != 2 {
		t.Errorf("%d segments after merging, want 2", info.DataSegments)
	}
	r := newRuntime(t, nil)
	a, b := instantiate(t, r, wasm), instantiate(t, r, merged)
	ma, _ := a.Memory().Read(0, 65536)
	mb, _ := b.Memory().Read(0, 65536)
	if !bytes.Equal(ma, mb) {
		t.Error("memory images differ")
	}
	// Passive segments: merging is skipped.
	simd := fixture(t, "simd.wasm")
	out := mustRewrite(t, simd, Options{MergeData: true})
	if !bytes.Equal(out, simd) {
		t.Error("module with a passive segment was changed by MergeData")
	}
}

type wasiRun struct {
	stdout, stderr string
	err            error
}

func runWASI(t *testing.T, r wazero.Runtime, wasm []byte) wasiRun {
	t.Helper()
	ctx := context.Background()
	c, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	defer c.Close(ctx)
	var out, errOut bytes.Buffer
	mod, err := r.InstantiateModule(ctx, c, wazero.NewModuleConfig().WithName("").
		WithStdout(&out).WithStderr(&errOut).WithArgs("prog", "a", "b"))
	if mod != nil {
		defer mod.Close(ctx)
	}
	if !exitOK(err) {
		return wasiRun{out.String(), errOut.String(), err}
	}
	return wasiRun{stdout: out.String(), stderr: errOut.String()}
}

func TestWASIPrograms(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles the Go program twice (seconds)")
	}
	r := newRuntime(t, nil)
	wasi_snapshot_preview1.MustInstantiate(context.Background(), r)
	all := Options{Instrument: true, TrackGrow: true, MaxMemoryPages: 4096, MergeData: true, StripDebug: true}
	for _, file := range []string{"cprog.wasm", "goprog.wasm"} {
		t.Run(file, func(t *testing.T) {
			orig := fixture(t, file)
			rewritten := mustRewrite(t, orig, all)
			want, got := runWASI(t, r, orig), runWASI(t, r, rewritten)
			if want.err != nil {
				t.Fatalf("original: %v", want.err)
			}
			if got != want {
				t.Fatalf("rewritten:\n%+v\noriginal:\n%+v", got, want)
			}
			before, _ := Inspect(orig)
			after, err := Inspect(rewritten)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: %d -> %d bytes, %d -> %d data segments; output %q", file, len(orig), len(rewritten),
				before.DataSegments, after.DataSegments, want.stdout)
			if file == "goprog.wasm" && (before.DataSegments < 1000 || after.DataSegments > before.DataSegments/20) {
				t.Errorf("data segments %d -> %d: not merged", before.DataSegments, after.DataSegments)
			}
		})
	}
}
