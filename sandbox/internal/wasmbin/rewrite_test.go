package wasmbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

var optionSets = map[string]Options{
	"instrument": {Instrument: true},
	"interval1":  {Instrument: true, CheckInterval: 1},
	"all":        {Instrument: true, TrackGrow: true, MaxMemoryPages: 3, MergeData: true, StripDebug: true},
	"grow only":  {TrackGrow: true},
	"none":       {},
	"yield":      {Yield: true},
	"yield1":     {Yield: true, CheckInterval: 1},
	"yield all":  {Yield: true, TrackGrow: true, MaxMemoryPages: 3, MergeData: true, StripDebug: true},
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
		one = append(one, call{"loop_sum", i32s(n)}, call{"nested", i32s(n)}, call{"loop_params", i32s(n)},
			call{"loop_table", i32s(n)})
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
	orig := testutil.Testdata(t, "control.wasm")
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
		{"refs.wasm", refsCalls},
	} {
		orig := testutil.Testdata(t, tc.file)
		for name, opt := range optionSets {
			want := outcome(t, r, orig, tc.calls)
			got := outcome(t, r, mustRewrite(t, orig, opt), tc.calls)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s %s: got %q, want %q", tc.file, name, got, want)
			}
			if tc.file != "refs.wasm" && strings.Contains(strings.Join(want, ""), "error") {
				t.Errorf("%s: the original fails: %q", tc.file, want)
			}
		}
	}
}

// A tail-recursive loop of 100000 steps must not use up the depth budget.
func TestTailCallsKeepDepth(t *testing.T) {
	r := newRuntime(t, nil)
	mod := instantiate(t, r, mustRewrite(t, testutil.Testdata(t, "tail.wasm"), Options{Instrument: true, InitialDepth: 5}))
	if _, err := mod.ExportedFunction("sum").Call(context.Background(), i32s(100000, 0)...); err != nil {
		t.Fatal(err)
	}
	if d := int32(global(t, mod, GlobalDepth).Get()); d != 5 {
		t.Fatalf("depth after the call: %d, want 5", d)
	}
}

func TestRewriteErrors(t *testing.T) {
	wasm := testutil.Testdata(t, "control.wasm")
	once := mustRewrite(t, wasm, Options{Instrument: true})
	if _, err := Rewrite(once, Options{Instrument: true}); err == nil || !strings.Contains(err.Error(), GlobalStop) {
		t.Errorf("instrumenting twice: %v", err)
	}
	// The input is left as it was.
	if !bytes.Equal(wasm, testutil.Testdata(t, "control.wasm")) {
		t.Error("Rewrite modified its input")
	}
	_, err := Rewrite(testutil.Testdata(t, "goprog.wasm"), Options{MaxMemoryPages: 16})
	var le *LimitError
	if !errors.As(err, &le) || le.MaxPages != 16 || !strings.Contains(err.Error(), "1 MiB") {
		t.Fatalf("min above the limit: %v", err)
	}
	t.Log(err)
}

func TestMaxMemoryPages(t *testing.T) {
	r := newRuntime(t, nil)
	wasm := testutil.Testdata(t, "stop.wasm") // memory 1, no maximum
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
	if info, _ := Inspect(mustRewrite(t, testutil.Testdata(t, "control.wasm"), Options{MaxMemoryPages: 2})); info.MemoryMax != 2 {
		t.Errorf("control max %d, want 2", info.MemoryMax)
	}
	if info, _ := Inspect(mustRewrite(t, testutil.Testdata(t, "control.wasm"), Options{MaxMemoryPages: 200})); info.MemoryMax != 4 {
		t.Errorf("control max %d, want 4", info.MemoryMax)
	}
}

func TestMergeDataOverlaps(t *testing.T) {
	wasm := testutil.Testdata(t, "control.wasm")
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
	simd := testutil.Testdata(t, "simd.wasm")
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
		t.Skip("compiles the Go program three times (seconds)")
	}
	r := newRuntime(t, nil)
	wasi_snapshot_preview1.MustInstantiate(context.Background(), r)
	all := Options{Instrument: true, TrackGrow: true, MaxMemoryPages: 4096, MergeData: true, StripDebug: true}
	allYield := all
	allYield.Yield = true
	for _, tc := range []struct {
		file string
		opt  Options
	}{{"cprog.wasm", all}, {"cprog.wasm", allYield}, {"goprog.wasm", all}, {"goprog.wasm", allYield}} {
		file := tc.file
		t.Run(fmt.Sprintf("%s yield=%v", file, tc.opt.Yield), func(t *testing.T) {
			orig := testutil.Testdata(t, file)
			rewritten := mustRewrite(t, orig, tc.opt)
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

// refsCalls exercise every function reference of refs.wasm.
var refsCalls = []call{
	{"started", nil}, {"twice", i32s(21)}, {"three", nil},
	{"call", i32s(0)}, {"call", i32s(1)}, {"call", i32s(4)}, {"call", i32s(5)},
	{"call_u", i32s(0)}, {"call_u", i32s(1)}, {"call_u", i32s(2)}, {"call_u", i32s(3)},
	{"from_global", nil}, {"init", i32s(0)}, {"init", i32s(1)}, {"init", i32s(2)}, {"init_q", nil},
	{"call_u", i32s(1)}, {"reffunc", nil}, {"call", i32s(1)}, {"is_null", i32s(5)}, {"is_null", i32s(0)},
}

// The expected results of refsCalls, written out so a renumbering bug that the original
// shares (none should) cannot hide.
func TestRefsFixture(t *testing.T) {
	r := newRuntime(t, nil)
	orig := testutil.Testdata(t, "refs.wasm")
	want := []string{"started[] = [100]", "twice[21] = [42]", "three[] = [3]",
		"call[0] = [1]", "call[1] = [2]", "call[4] = [4]", "call[5]: error",
		"call_u[0] = [4]", "call_u[1] = [2]", "call_u[2] = [3]", "call_u[3]: error",
		"from_global[] = [3]", "init[0] = [3]", "init[1] = [1]", "init[2]: error", "init_q[] = [4]",
		"call_u[1] = [4]", "reffunc[] = [10]", "call[1] = [10]", "is_null[5] = [1]", "is_null[0] = [0]"}
	for _, wasm := range [][]byte{orig, mustRewrite(t, orig, Options{Yield: true, CheckInterval: 1})} {
		got := outcome(t, r, wasm, refsCalls)
		for i := range got {
			if i >= len(want) || !strings.HasPrefix(got[i], want[i]) {
				t.Fatalf("call %d: got %q, want %q", i, got, want)
			}
		}
	}
}

// funcNames decodes the function names subsection of the "name" section.
func funcNames(t *testing.T, wasm []byte) map[uint32]string {
	t.Helper()
	m, err := parse(wasm)
	if err != nil {
		t.Fatal(err)
	}
	names := map[uint32]string{}
	for _, s := range m.sections {
		if s.id != secCustom || s.name != "name" {
			continue
		}
		r := reader{buf: s.payload}
		_, _ = r.name()
		for !r.done() {
			id, _ := r.byte()
			size, _ := r.u32()
			sub, err := r.bytes(int(size))
			if err != nil {
				t.Fatalf("name section: %v", err)
			}
			if id != nameFunctions {
				continue
			}
			sr := reader{buf: sub}
			n, _ := sr.u32()
			for i := uint32(0); i < n; i++ {
				f, _ := sr.u32()
				name, err := sr.name()
				if err != nil {
					t.Fatalf("function names: %v", err)
				}
				names[f] = name
			}
		}
	}
	return names
}

// With Yield every defined function moves up by one index; the name section must follow, as
// wazero sees it (names and parameter names of exports and imports) and as decoded here.
func TestYieldNames(t *testing.T) {
	r := newRuntime(t, nil)
	ctx := context.Background()
	for _, file := range []string{"refs.wasm", "control.wasm", "stop.wasm", "cprog.wasm", "goprog.wasm"} {
		t.Run(file, func(t *testing.T) {
			orig := testutil.Testdata(t, file)
			out := mustRewrite(t, orig, Options{Yield: true, MergeData: true})
			before, after := funcNames(t, orig), funcNames(t, out)
			if len(before) == 0 {
				t.Fatalf("%s has no function names", file)
			}
			m, _ := parse(orig)
			for f, name := range before {
				nf := f
				if int(f) >= m.numImportedFuncs {
					nf++
				}
				if after[nf] != name {
					t.Fatalf("function %d %q is named %q at %d", f, name, after[nf], nf)
				}
			}
			if len(after) != len(before) {
				t.Errorf("%d names, want %d", len(after), len(before))
			}
			if file == "goprog.wasm" {
				return // compiling it twice takes seconds
			}
			co, err := r.CompileModule(ctx, orig)
			if err != nil {
				t.Fatal(err)
			}
			cr, err := r.CompileModule(ctx, out)
			if err != nil {
				t.Fatal(err)
			}
			describe := func(c wazero.CompiledModule) map[string]string {
				d := map[string]string{}
				for name, def := range c.ExportedFunctions() {
					d["export "+name] = fmt.Sprint(def.Name(), def.ParamNames())
				}
				for _, def := range c.ImportedFunctions() {
					mod, name, _ := def.Import()
					if mod != YieldModule {
						d["import "+mod+"."+name] = fmt.Sprint(def.Name(), def.ParamNames())
					}
				}
				return d
			}
			want, got := describe(co), describe(cr)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("wazero's view of the rewritten module:\n got  %v\n want %v", got, want)
			}
			if file == "refs.wasm" && want["export three"] != "three[]" {
				t.Errorf("export three: %q", want["export three"])
			}
		})
	}
}

func TestYieldErrors(t *testing.T) {
	// A module importing from YieldModule itself.
	m := append([]byte(nil), wasmMagic...)
	m = append(m, secType, 5, 1, 0x60, 0, 1, byte(I32))
	var imp []byte
	imp = appendName(appendU32(imp, 1), YieldModule)
	imp = append(appendName(imp, "other"), byte(ExternFunc), 0)
	m = append(append(m, secImport, byte(len(imp))), imp...)
	if _, err := Inspect(m); err != nil {
		t.Fatalf("the module is well formed: %v", err)
	}
	_, err := Rewrite(m, Options{Yield: true})
	var fe *FormatError
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), YieldModule) {
		t.Fatalf("import from %s: %v", YieldModule, err)
	}
	t.Log(err)
	if _, err := Rewrite(m, Options{Instrument: true}); err != nil {
		t.Fatalf("without Yield: %v", err)
	}
	once := mustRewrite(t, testutil.Testdata(t, "control.wasm"), Options{Yield: true})
	if _, err := Rewrite(once, Options{Yield: true}); err == nil {
		t.Error("instrumenting twice with Yield: no error")
	}
	// Yield implies Instrument.
	info, err := Inspect(once)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range info.Exports {
		found = found || e.Name == GlobalStop
	}
	if !found || len(info.Imports) != 1 || info.Imports[0] != (Import{YieldModule, YieldName, ExternFunc}) {
		t.Errorf("exports %v imports %v", info.Exports, info.Imports)
	}
}
