package wasmbin

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// fixture reads a built test guest from testdata.
func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatalf("test guest %s: %v (run `make wasm` at the repository root to build it)", name, err)
	}
	return b
}

func runtimeConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall)
}

func newRuntime(t testing.TB, cfg wazero.RuntimeConfig) wazero.Runtime {
	t.Helper()
	if cfg == nil {
		cfg = runtimeConfig()
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	t.Cleanup(func() { _ = r.Close(ctx) })
	return r
}

// instantiate compiles and instantiates wasm (no imports) in r under a fresh name.
func instantiate(t testing.TB, r wazero.Runtime, wasm []byte) api.Module {
	t.Helper()
	ctx := context.Background()
	c, err := r.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	mod, err := r.InstantiateModule(ctx, c, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	return mod
}

func mustRewrite(t testing.TB, wasm []byte, opt Options) []byte {
	t.Helper()
	out, err := Rewrite(wasm, opt)
	if err != nil {
		t.Fatalf("Rewrite(%+v): %v", opt, err)
	}
	return out
}

func global(t testing.TB, mod api.Module, name string) api.MutableGlobal {
	t.Helper()
	g, ok := mod.ExportedGlobal(name).(api.MutableGlobal)
	if !ok {
		t.Fatalf("global %q is not exported as mutable", name)
	}
	return g
}

// exitOK reports whether err is nil or a WASI exit with code 0.
func exitOK(err error) bool {
	var ee *sys.ExitError
	return err == nil || errors.As(err, &ee) && ee.ExitCode() == 0
}
