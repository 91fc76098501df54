package wasmbin

import (
	"context"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/tetratelabs/wazero/api"
)

// benchGuests are the exports of bench.wasm the benchmarks run, with their
// argument.
var benchGuests = []struct {
	name, fn string
	arg      uint64
}{
	{"checksum10M", "checksum", 10_000_000},
	{"nested10M", "nested", 100_000},
	{"fib30", "fib", 30},
}

// BenchmarkGuest compares a guest with no limit ("none"), instrumented with the flag never set
// ("instrumented"), and uninstrumented under wazero's WithCloseOnContextDone with a deadline
// ("closeOnDone"). Compare ratios within one run: the machine is shared.
func BenchmarkGuest(b *testing.B) {
	orig := testutil.Testdata(b, "bench.wasm")
	inst := mustRewrite(b, orig, Options{Instrument: true})
	for _, g := range benchGuests {
		for _, mode := range []string{"none", "instrumented", "closeOnDone"} {
			b.Run(g.name+"/"+mode, func(b *testing.B) {
				cfg, wasm := runtimeConfig(), orig
				ctx := context.Background()
				switch mode {
				case "instrumented":
					wasm = inst
				case "closeOnDone":
					cfg = cfg.WithCloseOnContextDone(true)
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, time.Hour)
					defer cancel()
				}
				fn := instantiate(b, newRuntime(b, cfg), wasm).ExportedFunction(g.fn)
				var want uint64
				for b.Loop() {
					res, err := fn.Call(ctx, g.arg)
					if err != nil {
						b.Fatal(err)
					}
					if want == 0 {
						want = res[0]
					} else if res[0] != want {
						b.Fatalf("result %d then %d", want, res[0])
					}
				}
				b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/call")
			})
		}
	}
}

// BenchmarkRewrite measures deploy-time cost on the Go wasip1 program.
func BenchmarkRewrite(b *testing.B) {
	wasm := testutil.Testdata(b, "goprog.wasm")
	opt := Options{Instrument: true, TrackGrow: true, MaxMemoryPages: 4096, MergeData: true, StripDebug: true}
	b.SetBytes(int64(len(wasm)))
	for b.Loop() {
		if _, err := Rewrite(wasm, opt); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGuestRatio runs the variants alternately in every iteration and reports their time
// ratios, which hold up on a shared, noisy machine better than separate ns/op figures: no limit
// ("none"), instrumented without Yield, instrumented with Yield (the host's yield compares the
// time with a deadline, as the sandbox's does), and closeOnDone.
func BenchmarkGuestRatio(b *testing.B) {
	orig := testutil.Testdata(b, "bench.wasm")
	inst := mustRewrite(b, orig, Options{Instrument: true})
	yield := mustRewrite(b, orig, Options{Yield: true})
	deadline, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	far := time.Now().Add(time.Hour)
	for _, g := range benchGuests {
		b.Run(g.name, func(b *testing.B) {
			none := instantiate(b, newRuntime(b, nil), orig).ExportedFunction(g.fn)
			instr := instantiate(b, newRuntime(b, nil), inst).ExportedFunction(g.fn)
			yr := newRuntimeYield(b, nil, func(context.Context, api.Module) uint32 {
				if time.Now().After(far) {
					return 1
				}
				return 0
			})
			yielding := instantiate(b, yr, yield).ExportedFunction(g.fn)
			closing := instantiate(b, newRuntime(b, runtimeConfig().WithCloseOnContextDone(true)), orig).ExportedFunction(g.fn)
			var tNone, tInst, tYield, tClose time.Duration
			timed := func(ctx context.Context, fn api.Function) time.Duration {
				start := time.Now()
				if _, err := fn.Call(ctx, g.arg); err != nil {
					b.Fatal(err)
				}
				return time.Since(start)
			}
			for b.Loop() {
				tNone += timed(context.Background(), none)
				tInst += timed(context.Background(), instr)
				tYield += timed(context.Background(), yielding)
				tClose += timed(deadline, closing)
			}
			b.ReportMetric(float64(tInst)/float64(tNone), "instrumented/none")
			b.ReportMetric(float64(tYield)/float64(tNone), "yield/none")
			b.ReportMetric(float64(tClose)/float64(tNone), "closeOnDone/none")
			b.ReportMetric(float64(tNone.Milliseconds())/float64(b.N), "none-ms/call")
		})
	}
}
