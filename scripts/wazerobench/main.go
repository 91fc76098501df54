package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/edgefn/edgefn/scripts/internal/tool"
	"github.com/tetratelabs/wazero"
)

func main() {
	wasmPath := flag.String("wasm", "sandbox/testdata/count.wasm", "module to run")
	export := flag.String("func", "edgefn_handle", "exported function, called with -arg")
	arg := flag.Uint64("arg", 1000, "its one i32 argument (count.wasm loops 1000*arg times)")
	engines := flag.String("engines", "compiler,interpreter", "comma-separated: compiler, interpreter")
	count := flag.Int("count", 5, "timed calls per engine (median reported), after one warm-up call")
	flag.Parse()
	tool.Exit("wazerobench", run(*wasmPath, *export, *arg, strings.Split(*engines, ","), *count))
}

func run(path, export string, arg uint64, engines []string, count int) error {
	wasm, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%w (run make wasm)", err)
	}
	ctx := context.Background()
	fmt.Printf("%s %s(%d) on %s/%s, %d calls each\n", path, export, arg, runtime.GOOS, runtime.GOARCH, count)
	var medians []time.Duration
	for _, e := range engines {
		var rc wazero.RuntimeConfig
		switch e {
		case "compiler":
			rc = wazero.NewRuntimeConfigCompiler()
		case "interpreter":
			rc = wazero.NewRuntimeConfigInterpreter()
		default:
			return fmt.Errorf("engine %q: want compiler or interpreter", e)
		}
		d, err := timeEngine(ctx, rc, wasm, export, arg, count)
		if err != nil {
			return fmt.Errorf("%s: %w", e, err)
		}
		medians = append(medians, d)
		fmt.Printf("%-12s median %v\n", e, d)
	}
	if len(medians) == 2 && medians[0] > 0 {
		fmt.Printf("ratio %s/%s: %.1fx\n", engines[1], engines[0], float64(medians[1])/float64(medians[0]))
	}
	return nil
}

func timeEngine(ctx context.Context, rc wazero.RuntimeConfig, wasm []byte, export string, arg uint64, count int) (time.Duration, error) {
	rt := wazero.NewRuntimeWithConfig(ctx, rc)
	defer rt.Close(ctx)
	mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		return 0, err
	}
	fn := mod.ExportedFunction(export)
	if fn == nil {
		return 0, fmt.Errorf("module exports no function %q", export)
	}
	var ds []time.Duration
	for i := 0; i <= count; i++ {
		t0 := time.Now()
		if _, err := fn.Call(ctx, arg); err != nil {
			return 0, err
		}
		if i > 0 { // the first call warms up
			ds = append(ds, time.Since(t0))
		}
	}
	slices.Sort(ds)
	return ds[len(ds)/2], nil
}
