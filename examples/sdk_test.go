package examples

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox"
)

// loadProbe loads testdata/sdkprobe.wasm, the Go SDK's fixture, with grants
// for the calls it expects to succeed.
func loadProbe(t *testing.T, d *device) *sandbox.Function {
	t.Helper()
	const file = "testdata/sdkprobe.wasm"
	wasm, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v: run `make wasm` first", err)
	}
	limits := edgefn.DefaultLimits
	limits.Timeout = 2e9 // a contended test machine, not a device
	limits.MaxOutput = 1 << 20
	f, err := d.rt.Load(context.Background(), sandbox.Spec{Name: "sdkprobe", Version: 1, Limits: limits,
		Grants: edgefn.Grants{Publish: []string{"probe/#"}, GPIOWrite: []string{"GPIO18"},
			GPIORead: []string{"GPIO17", "GPIO5"}, KV: true}}, wasm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

// TestGoSDK checks every call of sandbox/guest against the real host: the
// values, the typed errors and their messages, buffer growth and reuse,
// handler errors and panics.
func TestGoSDK(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a Go module (seconds)")
	}
	d := newDevice(t)
	f := loadProbe(t, d)

	res := d.invoke(t, f, edgefn.Event{ID: "ev-9", Source: edgefn.SourceMQTT, Subject: "probe/in",
		Payload: []byte("all"), Meta: map[string]string{"long": strings.Repeat("m", 1000)}})
	var got []string
	for _, e := range effects(res, edgefn.EffectEmit) {
		got = append(got, string(e.Payload))
	}
	want := []string{
		"subject=probe/in source=mqtt id=ev-9: ok",
		"meta long len=1000: ok",
		"meta nope: edgefn.meta \"nope\": not found [not found]",
		"kv set: ok",
		"kv get len=300: ok",
		"kv appendget len=304: ok",
		"kv delete: ok",
		"kv get after delete: edgefn.kv_get \"k\": not found [not found]",
		"kv set empty key: edgefn.kv_set \"\": invalid argument [invalid]",
		"publish wildcard: edgefn.publish \"probe/+/x\": invalid argument [invalid]",
		"publish denied: edgefn.publish \"elsewhere/x\": denied by grants [denied]",
		"publish: ok",
		"gpio write: ok",
		"gpio read GPIO17 high=false: ok",
		"gpio read GPIO5: edgefn.gpio_read \"GPIO5\": not available on this device [unavailable]",
		"gpio write denied: edgefn.gpio_write \"GPIO17\": denied by grants [denied]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("SDK results:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if p := effects(res, edgefn.EffectPublish); len(p) != 1 || p[0].Topic != "probe/out" || p[0].QoS != 1 {
		t.Errorf("publishes %+v, want one to probe/out", p)
	}
	if !logged(res, edgefn.LogWarn, "logf 42 done") || !logged(res, edgefn.LogDebug, "log plain") {
		t.Errorf("logs %+v, want the Logf and Log lines", res.Logs)
	}

	// A payload over the reuse threshold, then a small one in the same
	// (warm) instance: both arrive whole.
	for _, n := range []int{300 << 10, 10, 70 << 10} {
		p := "echo" + strings.Repeat("x", n)
		res = d.invoke(t, f, edgefn.Event{Source: edgefn.SourceHTTP, Subject: "sdkprobe", Payload: []byte(p)})
		if e := effects(res, edgefn.EffectEmit); len(e) != 1 || string(e[0].Payload) != p {
			t.Errorf("echo of %d bytes came back wrong", len(p))
		}
	}

	res = d.run(f, edgefn.Event{Source: edgefn.SourceHTTP, Subject: "sdkprobe", Payload: []byte("error")})
	wantFailure(t, res, edgefn.ReasonExit)
	if res.ExitCode != 1 || !logged(res, edgefn.LogError, "handler failed on purpose") {
		t.Errorf("handler error: exit code %d, logs %+v; want 1 and the error logged", res.ExitCode, res.Logs)
	}

	res = d.run(f, edgefn.Event{Source: edgefn.SourceHTTP, Subject: "sdkprobe", Payload: []byte("panic")})
	wantFailure(t, res, edgefn.ReasonExit)
	if res.ExitCode != 2 || !logged(res, edgefn.LogError, "panic: assignment to entry in nil map") {
		t.Errorf("handler panic: exit code %d, logs %+v; want 2 and the panic logged", res.ExitCode, res.Logs)
	}
	if !logged(res, edgefn.LogError, "main.handle") {
		t.Errorf("the panic's log has no stack naming the handler: %+v", res.Logs)
	}
}
