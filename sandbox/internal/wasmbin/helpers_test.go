package wasmbin

import (
	"context"
	"errors"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

func runtimeConfig() wazero.RuntimeConfig {
	return wazero.NewRuntimeConfig().WithCoreFeatures(api.CoreFeaturesV2 | experimental.CoreFeaturesTailCall)
}

// newRuntime returns a runtime with the host modules the fixtures import: YieldModule (its
// YieldName always returns 0) and env.twice (refs.wasm).
func newRuntime(t testing.TB, cfg wazero.RuntimeConfig) wazero.Runtime {
	t.Helper()
	return newRuntimeYield(t, cfg, func(context.Context, api.Module) uint32 { return 0 })
}

// newRuntimeYield is newRuntime with yield as the host side of Options.Yield.
func newRuntimeYield(t testing.TB, cfg wazero.RuntimeConfig, yield func(context.Context, api.Module) uint32) wazero.Runtime {
	t.Helper()
	if cfg == nil {
		cfg = runtimeConfig()
	}
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, cfg)
	t.Cleanup(func() { _ = r.Close(ctx) })
	_, err := r.NewHostModuleBuilder(YieldModule).NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, m api.Module, stack []uint64) {
			stack[0] = uint64(yield(ctx, m))
		}), nil, []api.ValueType{api.ValueTypeI32}).Export(YieldName).
		Instantiate(ctx)
	if err != nil {
		t.Fatalf("host module %s: %v", YieldModule, err)
	}
	_, err = r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithFunc(func(x uint32) uint32 { return 2 * x }).Export("twice").
		Instantiate(ctx)
	if err != nil {
		t.Fatalf("host module env: %v", err)
	}
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
