package sandbox

import (
	"context"
	"fmt"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"golang.org/x/sys/unix"
)

func TestRunawayRecursionHostMemory(t *testing.T) {
	f := loadAlone(t, "deep", func(s *Spec) { s.Limits.Timeout = 10 * time.Second })
	wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTrap) // warm up wazero's pools
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTrap)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("runaway recursion (max_depth %d) allocated %d KiB of host memory", f.spec.Limits.MaxDepth, alloc>>10)
	if alloc > 8<<20 {
		t.Errorf("runaway recursion allocated %d bytes, more than 8 MiB", alloc)
	}
}

func benchFunction(b *testing.B, name string, edit func(*Spec)) *Function {
	b.Helper()
	r := newRuntime(b, Config{})
	return load(b, r, name, edit)
}

// BenchmarkWarmInvoke: a warm invocation of a trivial reactor, and the raw
// wazero call of the same instrumented module, to read the host overhead.
func BenchmarkWarmInvoke(b *testing.B) {
	f := benchFunction(b, "trivial", nil)
	ev := event("")
	ctx := context.Background()
	b.Run("sandbox", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			if res := f.Invoke(ctx, ev); res.Err != nil {
				b.Fatal(res.Err)
			}
		}
		reportCPU(b, cpu)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/invocation")
	})
	b.Run("raw", func(b *testing.B) {
		mod, err := f.r.rt.InstantiateModule(ctx, f.compiled, f.r.base)
		if err != nil {
			b.Fatal(err)
		}
		defer mod.Close(ctx)
		fn := mod.ExportedFunction(exportHandle)
		stack := []uint64{0}
		cpu := cpuTime()
		for b.Loop() {
			if err := fn.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
		}
		reportCPU(b, cpu)
	})
}

// cpuTime is the process's user and system CPU time so far. On the shared
// development machine wall time per operation swings with the other jobs;
// CPU time per operation much less.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time per operation since start (all threads:
// the garbage collector's work included).
func reportCPU(b *testing.B, start time.Duration) {
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N)/1000, "cpu-µs/op")
}

// BenchmarkFreshInvoke: a new instance per event (isolation fresh) of a
// tiny module, and of the Go wasip1 reactor.
func BenchmarkFreshInvoke(b *testing.B) {
	for _, name := range []string{"echo", "trivial", "goreactor"} {
		b.Run(name, func(b *testing.B) {
			f := benchFunction(b, name, func(s *Spec) {
				s.Isolation = edgefn.IsolationFresh
				s.Limits.Memory = 64 * edgefn.MiB
				s.Limits.Timeout = time.Second
			})
			ev := event("x")
			b.ReportAllocs()
			cpu := cpuTime()
			var mem uint64
			for b.Loop() {
				res := f.Invoke(context.Background(), ev)
				if res.Err != nil {
					b.Fatal(res.Err)
				}
				mem = res.MemoryBytes
			}
			reportCPU(b, cpu)
			b.ReportMetric(float64(mem>>10), "guest-KiB")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "µs/invocation")
		})
	}
	// raw: wazero alone with the instance config the sandbox starts from
	// (crypto/rand, clocks) and a plain pooled allocator, instantiating the
	// same rewritten trivial module, calling it and closing it: the floor the
	// sandbox's fresh path is compared with.
	b.Run("trivial/raw", func(b *testing.B) {
		f := benchFunction(b, "trivial", nil)
		ctx := context.Background()
		pool := &rawAllocator{p: newMemPool(1<<20, 1<<20)}
		actx := experimental.WithMemoryAllocator(ctx, pool)
		stack := []uint64{1}
		b.ReportAllocs()
		cpu := cpuTime()
		for b.Loop() {
			mod, err := f.r.rt.InstantiateModule(actx, f.compiled, f.r.base)
			if err != nil {
				b.Fatal(err)
			}
			if err := mod.ExportedFunction(exportHandle).CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
			_ = mod.Close(ctx)
		}
		reportCPU(b, cpu)
	})
}

// BenchmarkFreshEventPath: events to a fresh reactor, back to back or
// paced 200 µs apart. The metrics are the time Invoke takes, the event's own
// path (wall and the calling thread's CPU, medians), and the process CPU per
// event, which includes what is done in the background between events.
// warm/trivial is the reference: the same events to a pooled instance.
func BenchmarkFreshEventPath(b *testing.B) {
	for _, pace := range []time.Duration{0, 200 * time.Microsecond} {
		for _, name := range []string{"trivial", "echo", "warm/trivial"} {
			b.Run(fmt.Sprintf("%s/paced=%s", name, pace), func(b *testing.B) {
				iso := edgefn.IsolationFresh
				if n, ok := strings.CutPrefix(name, "warm/"); ok {
					name, iso = n, edgefn.IsolationWarm
				}
				f := benchFunction(b, name, func(s *Spec) { s.Isolation = iso })
				ev := event("x")
				ctx := context.Background()
				// The thread's CPU time does not count the time the shared
				// machine runs something else.
				runtime.LockOSThread()
				defer runtime.UnlockOSThread()
				var lat, onCPU []time.Duration
				cpu := cpuTime()
				for b.Loop() {
					c0 := threadCPU()
					t0 := time.Now()
					res := f.Invoke(ctx, ev)
					lat = append(lat, time.Since(t0))
					onCPU = append(onCPU, threadCPU()-c0)
					if res.Err != nil {
						b.Fatal(res.Err)
					}
					if pace > 0 {
						time.Sleep(pace)
					}
				}
				reportCPU(b, cpu)
				b.ReportMetric(medianMicros(lat), "event-µs-p50")
				b.ReportMetric(medianMicros(onCPU), "event-cpu-µs-p50")
			})
		}
	}
}

// threadCPU is the calling thread's CPU time.
func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func medianMicros(d []time.Duration) float64 {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return float64(d[len(d)/2].Nanoseconds()) / 1000
}

// rawAllocator hands out pooled linear memories without a cap.
type rawAllocator struct{ p *memPool }

func (a *rawAllocator) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	return &linearMemory{pool: a.p, limit: maxBytes, buf: a.p.get(0, capBytes)}
}

// BenchmarkCompileWarmCache: Load of the Go reactor by a new runtime whose
// disk cache already holds it (an agent restart).
func BenchmarkCompileWarmCache(b *testing.B) {
	dir := b.TempDir()
	ctx := context.Background()
	wasm := fixture(b, "goreactor")
	spec := testSpec("goreactor")
	spec.Limits.Memory = 64 * edgefn.MiB
	loadOnce := func() time.Duration {
		r, err := New(ctx, Config{CacheDir: dir})
		if err != nil {
			b.Fatal(err)
		}
		defer r.Close(ctx)
		start := time.Now()
		if _, err := r.Load(ctx, spec, wasm); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	cold := loadOnce()
	b.Logf("cold compile of goreactor: %s", cold)
	var total time.Duration
	for b.Loop() {
		total += loadOnce()
	}
	b.ReportMetric(float64(total.Milliseconds())/float64(b.N), "ms/load")
}

// BenchmarkTimeoutMechanism runs a loop-heavy guest (10M iterations) four
// ways on plain wazero: instrumented by wasmbin (without and with the yield
// calls Load adds), WithCloseOnContextDone with a context deadline, and with
// no time limit at all.
func BenchmarkTimeoutMechanism(b *testing.B) {
	ctx := context.Background()
	plain := fixture(b, "count")
	inst, err := wasmbin.Rewrite(plain, wasmbin.Options{Instrument: true, CheckInterval: checkInterval, TrackGrow: true})
	if err != nil {
		b.Fatal(err)
	}
	yielding, err := wasmbin.Rewrite(plain, wasmbin.Options{Instrument: true, Yield: true, CheckInterval: checkInterval, TrackGrow: true})
	if err != nil {
		b.Fatal(err)
	}
	const iters = 10000 // x1000 in the guest
	run := func(b *testing.B, wasm []byte, closeOnDone bool) {
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfig().WithCloseOnContextDone(closeOnDone))
		defer rt.Close(ctx)
		_, err := rt.NewHostModuleBuilder(wasmbin.YieldModule).NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) { stack[0] = 0 }),
				nil, []api.ValueType{api.ValueTypeI32}).
			Export(wasmbin.YieldName).Instantiate(ctx)
		if err != nil {
			b.Fatal(err)
		}
		mod, err := rt.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
		if err != nil {
			b.Fatal(err)
		}
		fn := mod.ExportedFunction(exportHandle)
		callCtx := ctx
		if closeOnDone {
			c, cancel := context.WithTimeout(ctx, time.Hour)
			defer cancel()
			callCtx = c
		}
		for b.Loop() {
			if _, err := fn.Call(callCtx, iters); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1e6, "ms/run")
	}
	b.Run("none", func(b *testing.B) { run(b, plain, false) })
	b.Run("instrumented", func(b *testing.B) { run(b, inst, false) })
	b.Run("instrumented+yield", func(b *testing.B) { run(b, yielding, false) })
	b.Run("close-on-context-done", func(b *testing.B) { run(b, plain, true) })
}

// BenchmarkDeadlineOvershoot measures how long after a 20 ms deadline each
// kind of runaway guest is stopped, reporting the median overshoot.
func BenchmarkDeadlineOvershoot(b *testing.B) {
	const deadline = 20 * time.Millisecond
	for _, name := range []string{"loop", "fib", "deep"} {
		b.Run(name, func(b *testing.B) {
			f := benchFunction(b, name, func(s *Spec) {
				s.Limits.Timeout = deadline
				s.Limits.MaxDepth = 1 << 30
			})
			var over []time.Duration
			for b.Loop() {
				res := f.Invoke(context.Background(), event(""))
				if fl := res.Failure(); fl == nil || (fl.Reason != edgefn.ReasonTimeout && !strings.Contains(fl.Message, "stack")) {
					b.Fatalf("%v", res.Err)
				}
				over = append(over, res.Duration-deadline)
			}
			sort.Slice(over, func(i, j int) bool { return over[i] < over[j] })
			b.ReportMetric(float64(over[len(over)/2].Microseconds())/1000, "ms-over-median")
			b.ReportMetric(float64(over[len(over)-1].Microseconds())/1000, "ms-over-max")
		})
	}
}
