package sandbox

import (
	"context"
	"fmt"
	"time"

	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero/api"
)

// instantiateYield instantiates the host module the instrumentation's
// wasmbin.Options.Yield import binds to. Guests call it every few thousand
// loop iterations and function entries: wazero's compiled code cannot be
// preempted by Go, so without these calls a spinning guest would block every
// stop-the-world (garbage collection), and with it the timer that sets its
// stop flag, hanging the whole agent. User modules cannot import it: load
// validation rejects every module other than edgefn, WASI and env.abort.
func (r *Runtime) instantiateYield(ctx context.Context) error {
	_, err := r.rt.NewHostModuleBuilder(wasmbin.YieldModule).
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(yield), nil, []api.ValueType{api.ValueTypeI32}).
		Export(wasmbin.YieldName).
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("sandbox: instantiate host module %q: %w", wasmbin.YieldModule, err)
	}
	return nil
}

// yield returns 1 (stop) when the calling instance's call has been
// interrupted, its deadline has passed or its context is done, raising the
// stop flag so the trap is classified as a timeout; else 0.
func yield(ctx context.Context, _ api.Module, stack []uint64) {
	stack[0] = 0
	inst, ok := ctx.Value(instKey{}).(*instance)
	if !ok {
		return
	}
	switch inst.state.Load() {
	case stRunning:
	case stInterrupting, stInterrupted:
		stack[0] = 1
		return
	default: // not inside instance.call
		return
	}
	// inst.cur is set by instance.call on this goroutine before the guest
	// runs, and does not change until it returns.
	inv := inst.cur
	if inv == nil {
		return
	}
	switch {
	case !time.Now().Before(inv.deadline):
		inst.interrupt(inst.f.timeoutMsg)
	case inv.parent.Err() != nil:
		inst.interrupt("cancelled: " + context.Cause(inv.parent).Error())
	default:
		return
	}
	stack[0] = 1
}
