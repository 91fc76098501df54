package examples

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/triggers"
)

// memKV is the committed kv state: the sandbox reads it, and the test
// applies an invocation's kv effects after it succeeds, as the gateway does
// after its commit.
type memKV struct {
	mu sync.Mutex
	m  map[string][]byte
}

func (kv *memKV) Get(_ context.Context, function, key string) ([]byte, bool, error) {
	kv.mu.Lock()
	defer kv.mu.Unlock()
	v, ok := kv.m[function+"/"+key]
	return v, ok, nil
}

// pins is a two-pin board: GPIO17 (a button) and GPIO18 (an LED).
type pins struct {
	mu    sync.Mutex
	level map[string]bool
}

func (p *pins) Read(_ context.Context, pin string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.level[pin], nil
}

func (p *pins) Has(pin string) bool { return pin == "GPIO17" || pin == "GPIO18" }

// device is an agent in miniature: a sandbox runtime with kv and GPIO, and
// the commit step that applies effects.
type device struct {
	rt   *sandbox.Runtime
	kv   *memKV
	gpio *pins
}

func newDevice(t testing.TB) *device {
	t.Helper()
	d := &device{kv: &memKV{m: map[string][]byte{}}, gpio: &pins{level: map[string]bool{}}}
	rt, err := sandbox.New(context.Background(), sandbox.Config{KV: d.kv, GPIO: d.gpio})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = rt.Close(context.Background()) })
	d.rt = rt
	return d
}

// load deploys an example as the agent would: its function.yaml, its limits
// over the agent defaults, its grants and env.
// Options, if given, change the spec before it is loaded.
func (d *device) load(t testing.TB, e example, options ...func(*sandbox.Spec)) *sandbox.Function {
	t.Helper()
	wasm := e.load(t)
	m, _ := e.manifest(t)
	spec := sandbox.Spec{Name: m.Name, Version: 1, Limits: m.Limits.WithDefaults(edgefn.DefaultLimits),
		Grants: m.Allow, Env: m.Env, Isolation: m.Isolation}
	// The shared machine is slow; the example's own deadline is for a device
	// that is not compiling six other projects.
	spec.Limits.Timeout = max(spec.Limits.Timeout, 2*time.Second)
	for _, o := range options {
		o(&spec)
	}
	f, err := d.rt.Load(context.Background(), spec, wasm)
	if err != nil {
		t.Fatalf("load %s: %v", e.dir, err)
	}
	t.Cleanup(func() { _ = f.Close(context.Background()) })
	return f
}

// invoke runs one event, fails the test if the invocation failed, commits
// its kv and GPIO effects and returns them all.
func (d *device) invoke(t testing.TB, f *sandbox.Function, ev edgefn.Event) *sandbox.Result {
	t.Helper()
	res := d.run(f, ev)
	if res.Err != nil {
		t.Fatalf("invoke %s with %q: %v (logs %v)", f.Spec().Name, ev.Payload, res.Err, res.Logs)
	}
	d.kv.mu.Lock()
	d.gpio.mu.Lock()
	for _, e := range res.Effects {
		switch e.Kind {
		case edgefn.EffectKVSet:
			d.kv.m[f.Spec().Name+"/"+e.Key] = e.Payload
		case edgefn.EffectKVDelete:
			delete(d.kv.m, f.Spec().Name+"/"+e.Key)
		case edgefn.EffectGPIOWrite:
			d.gpio.level[e.Pin] = e.High
		}
	}
	d.gpio.mu.Unlock()
	d.kv.mu.Unlock()
	return res
}

func (d *device) run(f *sandbox.Function, ev edgefn.Event) *sandbox.Result {
	if ev.ID == "" {
		ev.ID = "ev-1"
	}
	if ev.Time.IsZero() {
		ev.Time = time.UnixMilli(1700000000000)
	}
	return f.Invoke(context.Background(), ev)
}

// effects returns res's effects of one kind.
func effects(res *sandbox.Result, kind edgefn.EffectKind) []edgefn.Effect {
	var out []edgefn.Effect
	for _, e := range res.Effects {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// record decodes the one record res emitted.
func record(t *testing.T, res *sandbox.Result) map[string]any {
	t.Helper()
	emits := effects(res, edgefn.EffectEmit)
	if len(emits) != 1 {
		t.Fatalf("%d records emitted, want 1 (effects %+v)", len(emits), res.Effects)
	}
	var m map[string]any
	if err := json.Unmarshal(emits[0].Payload, &m); err != nil {
		t.Fatalf("emitted record %q is not JSON: %v", emits[0].Payload, err)
	}
	return m
}

func wantFields(t *testing.T, got map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("record field %s = %v (%T), want %v (%T); record %v", k, got[k], got[k], v, v, got)
		}
	}
}

func wantFailure(t *testing.T, res *sandbox.Result, reason edgefn.Reason) {
	t.Helper()
	var fl *edgefn.Failure
	if !errors.As(res.Err, &fl) || fl.Reason != reason {
		t.Fatalf("result %v, want a %s failure", res.Err, reason)
	}
	if len(res.Effects) != 0 {
		t.Errorf("a failed invocation kept effects %+v", res.Effects)
	}
}

func logged(res *sandbox.Result, level edgefn.LogLevel, substr string) bool {
	for _, l := range res.Logs {
		if l.Level == level && strings.Contains(l.Message, substr) {
			return true
		}
	}
	return false
}

func find(dir string) example {
	for _, e := range examples {
		if e.dir == dir {
			return e
		}
	}
	panic("no example " + dir)
}

func TestGoTempAlertInSandbox(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a 3 MB Go module (seconds)")
	}
	d := newDevice(t)
	f := d.load(t, find("go-temp-alert"))
	ev := func(payload string) edgefn.Event {
		return edgefn.Event{ID: "e-" + payload, Source: edgefn.SourceMQTT, Subject: "sensors/kitchen/temperature", Payload: []byte(payload)}
	}

	res := d.invoke(t, f, ev(`{"celsius": 25}`))
	wantFields(t, record(t, res), map[string]any{"sensor": "kitchen", "celsius": 25.0, "max": 25.0,
		"threshold": 30.0, "alert": false, "event_id": `e-{"celsius": 25}`})
	if p := effects(res, edgefn.EffectPublish); len(p) != 0 {
		t.Errorf("published %+v below the threshold", p)
	}

	res = d.invoke(t, f, ev(`{"celsius": 31.5}`))
	wantFields(t, record(t, res), map[string]any{"celsius": 31.5, "max": 31.5, "alert": true})
	p := effects(res, edgefn.EffectPublish)
	if len(p) != 1 || p[0].Topic != "actuators/fan/kitchen" || string(p[0].Payload) != "on" || p[0].QoS != 1 {
		t.Errorf("publishes %+v, want one \"on\" to actuators/fan/kitchen at QoS 1", p)
	}
	if !logged(res, edgefn.LogWarn, "kitchen at 31.5") {
		t.Errorf("no warning logged: %+v", res.Logs)
	}

	// The running max comes from kv, committed by the previous invocation;
	// the sensor named in the payload wins over the topic.
	res = d.invoke(t, f, ev(`{"celsius": 28}`))
	wantFields(t, record(t, res), map[string]any{"celsius": 28.0, "max": 31.5, "alert": false})
	if s := effects(res, edgefn.EffectKVSet); len(s) != 0 {
		t.Errorf("kv written %+v although the max did not change", s)
	}
	res = d.invoke(t, f, ev(`{"sensor": "attic", "celsius": 12}`))
	wantFields(t, record(t, res), map[string]any{"sensor": "attic", "max": 12.0})

	res = d.run(f, ev(`not json`))
	wantFailure(t, res, edgefn.ReasonExit)
	if !logged(res, edgefn.LogError, "reading") {
		t.Errorf("the handler's error was not logged: %+v", res.Logs)
	}

	// Without the publish grant the SDK's typed error fails the invocation
	// and names the import, the topic and the code. (Same bytes: wazero
	// reuses the compiled code.)
	denied := d.load(t, find("go-temp-alert"), func(s *sandbox.Spec) { s.Version = 2; s.Grants.Publish = nil })
	res = d.run(denied, ev(`{"celsius": 40}`))
	wantFailure(t, res, edgefn.ReasonExit)
	if !logged(res, edgefn.LogError, `edgefn.publish "actuators/fan/kitchen": denied by grants`) {
		t.Errorf("the denied publish was not logged as such: %+v", res.Logs)
	}
}

func TestCCommandInSandbox(t *testing.T) {
	d := newDevice(t)
	f := d.load(t, find("c-command"))
	res := d.invoke(t, f, edgefn.Event{ID: "e7", Source: edgefn.SourceMQTT, Subject: "sensors/kitchen/celsius", Payload: []byte("21.5\n")})
	wantFields(t, record(t, res), map[string]any{"subject": "sensors/kitchen/celsius", "event_id": "e7", "celsius": 21.5, "F": 70.7})
	if !logged(res, edgefn.LogInfo, "21.50 C = 70.70 F") {
		t.Errorf("stderr line not logged: %+v", res.Logs)
	}
	res = d.run(f, edgefn.Event{Source: edgefn.SourceMQTT, Subject: "x", Payload: []byte("warm")})
	wantFailure(t, res, edgefn.ReasonExit)
}

// c-file-stats counts a dropped file's bytes and lines (the payload grows
// the guest's memory past its first pages) and escapes a hostile name.
func TestCFileStatsInSandbox(t *testing.T) {
	d := newDevice(t)
	f := d.load(t, find("c-file-stats"))
	big := strings.Repeat("0123456789abcde\n", 192<<10) + "no newline at the end"
	for _, tc := range []struct {
		name, payload string
		lines         float64
	}{
		{"empty.txt", "", 0},
		{"one.csv", "a,b\n", 1},
		{"big.log", big, 192<<10 + 1},
		{"q\"uote\\\x01.txt", "x", 1},
	} {
		ev := triggers.FileEvent("/inbox", tc.name, int64(len(tc.payload)))
		ev.Payload = []byte(tc.payload)
		wantFields(t, record(t, d.invoke(t, f, ev)), map[string]any{"file": tc.name, "bytes": float64(len(tc.payload)), "lines": tc.lines})
	}
	// Past limits.memory (8MiB): the function fails, nothing is emitted.
	res := d.run(f, edgefn.Event{Source: edgefn.SourceFile, Payload: make([]byte, 9<<20)})
	if res.Err == nil || len(effects(res, edgefn.EffectEmit)) != 0 {
		t.Errorf("9MiB payload: %v, effects %v", res.Err, res.Effects)
	}
}

func TestRustReactorInSandbox(t *testing.T) {
	d := newDevice(t)
	f := d.load(t, find("rust-reactor"))
	press := edgefn.Event{Source: edgefn.SourceMQTT, Subject: "buttons/hall/press", Payload: []byte("press")}
	for i, light := range []bool{true, false, true} {
		res := d.invoke(t, f, press)
		wantFields(t, record(t, res), map[string]any{"button": "buttons/hall/press", "edge": "", "presses": float64(i + 1), "light": light})
		if w := effects(res, edgefn.EffectGPIOWrite); len(w) != 0 {
			t.Errorf("press %d: GPIO writes %+v without env LED", i+1, w)
		}
	}
	// A topic is any text: the record stays JSON.
	odd := press
	odd.Subject = "buttons/\"hall\"\\\n/press"
	wantFields(t, record(t, d.invoke(t, f, odd)), map[string]any{"button": odd.Subject})

	// Wired to a button and an LED (the README's manifest): the light is
	// the pin named by env LED too.
	d = newDevice(t)
	f = d.load(t, find("rust-reactor"), func(s *sandbox.Spec) {
		s.Env = map[string]string{"LED": "GPIO18"}
		s.Grants.GPIOWrite = []string{"GPIO18"}
	})
	edge := edgefn.Event{Source: edgefn.SourceGPIO, Subject: "GPIO17", Meta: map[string]string{"edge": "falling"}}
	for i, led := range []bool{true, false} {
		res := d.invoke(t, f, edge)
		wantFields(t, record(t, res), map[string]any{"button": "GPIO17", "edge": "falling", "presses": float64(i + 1), "light": led})
		w := effects(res, edgefn.EffectGPIOWrite)
		if len(w) != 1 || w[0].Pin != "GPIO18" || w[0].High != led {
			t.Errorf("press %d: GPIO writes %+v, want GPIO18 %v", i+1, w, led)
		}
	}
}

func TestAssemblyScriptReactorInSandbox(t *testing.T) {
	d := newDevice(t)
	f := d.load(t, find("as-reactor"))
	ev := func(v string) edgefn.Event {
		return edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/tank/level", Payload: []byte(v)}
	}
	res := d.invoke(t, f, ev("10"))
	wantFields(t, record(t, res), map[string]any{"subject": "sensors/tank/level", "value": 10.0, "ema": 10.0})
	if p := effects(res, edgefn.EffectPublish); len(p) != 0 {
		t.Errorf("published %+v without a spike", p)
	}
	res = d.invoke(t, f, ev("20"))
	wantFields(t, record(t, res), map[string]any{"value": 20.0, "ema": 12.0})
	p := effects(res, edgefn.EffectPublish)
	if len(p) != 1 || p[0].Topic != "alerts/spike" || p[0].QoS != 1 {
		t.Errorf("publishes %+v, want one to alerts/spike", p)
	}
	// A topic may hold characters JSON must escape.
	odd := ev("12")
	odd.Subject = "sensors/\"tank\"\\2/level"
	res = d.invoke(t, f, odd)
	wantFields(t, record(t, res), map[string]any{"subject": odd.Subject})

	res = d.run(f, ev("high"))
	wantFailure(t, res, edgefn.ReasonExit)
	if !logged(res, edgefn.LogError, "not a number") {
		t.Errorf("no error logged: %+v", res.Logs)
	}
}

func TestWATMinimalInSandbox(t *testing.T) {
	d := newDevice(t)
	f := d.load(t, find("wat-minimal"))
	res := d.invoke(t, f, edgefn.Event{Source: edgefn.SourceTimer, Subject: "every 30s", Payload: []byte("tick")})
	if e := effects(res, edgefn.EffectEmit); len(e) != 1 || string(e[0].Payload) != "tick" {
		t.Errorf("emitted %+v, want the payload echoed", e)
	}
}
