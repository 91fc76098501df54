package wasmbin
import ("context";"testing";"time";"fmt";"github.com/tetratelabs/wazero/api")
func BenchmarkTmpRatio(b *testing.B) {
	orig := fixture(b, "bench.wasm")
	type v struct{name string; wasm []byte}
	vs := []v{{"none", orig}, {"instr", mustRewrite(b, orig, Options{Instrument: true})}}
	for _, iv := range []uint32{1024, 16384} {
		vs = append(vs, v{fmt.Sprint("yield", iv), mustRewrite(b, orig, Options{Yield: true, CheckInterval: iv})})
	}
	for _, fn := range []string{"checksum", "nested"} {
	b.Run(fn, func(b *testing.B) {
		var fns []api.Function
		for _, x := range vs {
			fns = append(fns, instantiate(b, newRuntime(b, nil), x.wasm).ExportedFunction(fn))
		}
		ts := make([]time.Duration, len(fns))
		for b.Loop() {
			for i, f := range fns { st := time.Now(); f.Call(context.Background(), 100_000); ts[i] += time.Since(st) }
		}
		for i := 1; i < len(vs); i++ { b.ReportMetric(float64(ts[i])/float64(ts[0]), vs[i].name) }
	})}
}
