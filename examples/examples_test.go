package examples

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/manifest"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// example is one directory of examples/ and what its module must be.
type example struct {
	dir     string
	command bool // a WASI command (_start) rather than a reactor
	// imports lists the edgefn imports the module must use (a check that
	// the build really wired the SDK or the bindings in).
	imports []string
	// toolchain says whether this machine can build the module; when it
	// cannot, the example is skipped rather than failed.
	toolchain func() bool
}

func always() bool { return true }

func haveRust() bool {
	_, err1 := os.Stat("/usr/bin/rustc")
	_, err2 := os.Stat("/usr/lib/rustlib/wasm32-unknown-unknown/lib")
	return err1 == nil && err2 == nil
}

func haveNPM() bool {
	_, err := exec.LookPath("npm")
	return err == nil
}

var examples = []example{
	{dir: "go-temp-alert", imports: []string{"input", "meta", "emit", "publish", "log", "kv_get", "kv_set"}, toolchain: always},
	{dir: "c-command", command: true, toolchain: always},
	{dir: "c-file-stats", imports: []string{"input", "meta", "emit"}, toolchain: always},
	{dir: "rust-reactor", imports: []string{"input", "meta", "emit", "log", "gpio_write", "kv_get", "kv_set"}, toolchain: haveRust},
	{dir: "as-reactor", imports: []string{"input", "meta", "emit", "publish", "log", "kv_get", "kv_set"}, toolchain: haveNPM},
	{dir: "wat-minimal", imports: []string{"input", "emit"}, toolchain: always},
}

// abi is the signature of every edgefn import in ABI v1: parameter count
// (all i32) and whether it returns an i32.
var abi = map[string]struct {
	params int
	result bool
}{
	"input": {2, true}, "meta": {4, true}, "emit": {2, true}, "publish": {5, true},
	"log": {3, false}, "gpio_write": {3, true}, "gpio_read": {2, true},
	"kv_get": {4, true}, "kv_set": {4, true}, "kv_delete": {2, true},
}

func (e example) wasmPath() string { return filepath.Join(e.dir, e.dir+".wasm") }

// manifest parses the example's function.yaml with the agent's strict
// parser; file is its path.
func (e example) manifest(t testing.TB) (m *edgefn.Manifest, file string) {
	t.Helper()
	file = filepath.Join(e.dir, "function.yaml")
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	m, err = manifest.Parse(file, b)
	if err != nil {
		t.Fatal(err)
	}
	return m, file
}

// load returns the example's built module, skipping the test when this
// machine lacks the toolchain and failing it when the module was not built.
func (e example) load(t testing.TB) []byte {
	t.Helper()
	b, err := os.ReadFile(e.wasmPath())
	if err == nil {
		return b
	}
	if !e.toolchain() {
		t.Skipf("%s: toolchain not installed on this machine (see docs/languages.md)", e.dir)
	}
	t.Fatalf("%s: %v: run `make wasm` first", e.dir, err)
	return nil
}

func i32s(n int) []api.ValueType {
	ts := make([]api.ValueType, n)
	for i := range ts {
		ts[i] = api.ValueTypeI32
	}
	return ts
}

// TestABIShape compiles each built example with wazero and checks its
// imports and exports against Function ABI v1.
func TestABIShape(t *testing.T) {
	ctx := context.Background()
	// The interpreter compiles in milliseconds what the compiler takes
	// seconds on; only the module's shape matters here.
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	t.Cleanup(func() { _ = rt.Close(ctx) })
	for _, e := range examples {
		t.Run(e.dir, func(t *testing.T) {
			cm, err := rt.CompileModule(ctx, e.load(t))
			if err != nil {
				t.Fatalf("compile %s: %v", e.wasmPath(), err)
			}
			defer cm.Close(ctx)

			var used []string
			for _, f := range cm.ImportedFunctions() {
				mod, name, _ := f.Import()
				switch mod {
				case "edgefn":
					want, ok := abi[name]
					if !ok {
						t.Errorf("import edgefn.%s is not in ABI v1", name)
						continue
					}
					var res []api.ValueType
					if want.result {
						res = i32s(1)
					}
					if !slices.Equal(f.ParamTypes(), i32s(want.params)) || !slices.Equal(f.ResultTypes(), res) {
						t.Errorf("import edgefn.%s has params %v results %v, want %d i32 params and %d i32 results",
							name, f.ParamTypes(), f.ResultTypes(), want.params, len(res))
					}
					used = append(used, name)
				case "wasi_snapshot_preview1":
				case "env":
					if name != "abort" {
						t.Errorf("import env.%s: only env.abort is allowed", name)
					}
				default:
					t.Errorf("import %s.%s: only edgefn, wasi_snapshot_preview1 and env.abort are allowed", mod, name)
				}
			}
			for _, name := range e.imports {
				if !slices.Contains(used, name) {
					t.Errorf("module does not import edgefn.%s (imports %v)", name, used)
				}
			}

			exports := cm.ExportedFunctions()
			sig := func(name string, params, results int) {
				t.Helper()
				f, ok := exports[name]
				if !ok {
					t.Errorf("missing export %s", name)
					return
				}
				if !slices.Equal(f.ParamTypes(), i32s(params)) || !slices.Equal(f.ResultTypes(), i32s(results)) {
					t.Errorf("export %s has params %v results %v, want %d i32 -> %d i32",
						name, f.ParamTypes(), f.ResultTypes(), params, results)
				}
			}
			if e.command {
				sig("_start", 0, 0)
				if _, ok := exports["edgefn_handle"]; ok {
					t.Error("a command also exports edgefn_handle: the agent would treat it as a reactor")
				}
				return
			}
			sig("edgefn_handle", 1, 1)
			if _, ok := exports["_initialize"]; ok {
				sig("_initialize", 0, 0)
			}
			if _, ok := cm.ExportedMemories()["memory"]; !ok {
				t.Error(`a reactor must export its memory as "memory"`)
			}
		})
	}
}

// TestManifests parses each example's function.yaml with the agent's strict
// parser and checks it names the module the build produces.
func TestManifests(t *testing.T) {
	for _, e := range examples {
		t.Run(e.dir, func(t *testing.T) {
			m, file := e.manifest(t)
			if m.Name != e.dir {
				t.Errorf("%s: name %q, want the directory name %q", file, m.Name, e.dir)
			}
			if got := filepath.Clean(filepath.Join(e.dir, m.Wasm)); got != e.wasmPath() {
				t.Errorf("%s: wasm %q resolves to %s, want %s (what `make wasm` builds)", file, m.Wasm, got, e.wasmPath())
			}
			if len(m.Triggers) == 0 {
				t.Errorf("%s: no triggers", file)
			}
		})
	}
}
