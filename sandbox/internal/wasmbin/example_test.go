package wasmbin_test

import (
	"context"
	"fmt"
	"os"

	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// A guest recursing without bound traps when its call-depth budget runs out; the exported
// globals tell the host why it trapped.
func ExampleRewrite() {
	wasm, err := os.ReadFile("testdata/stop.wasm") // built by `make wasm`
	if err != nil {
		fmt.Println(err)
		return
	}
	out, err := wasmbin.Rewrite(wasm, wasmbin.Options{Instrument: true, TrackGrow: true, MaxMemoryPages: 16})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx := context.Background()
	r := wazero.NewRuntime(ctx)
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, out)
	if err != nil {
		fmt.Println(err)
		return
	}
	depth := mod.ExportedGlobal(wasmbin.GlobalDepth).(api.MutableGlobal)
	depth.Set(1000) // before each call
	_, err = mod.ExportedFunction("recurse").Call(ctx, 0)
	stop := mod.ExportedGlobal(wasmbin.GlobalStop).Get()
	fmt.Println("trapped:", err != nil, "stop:", stop, "depth left:", depth.Get())
	// Output: trapped: true stop: 0 depth left: 0
}
