package manifest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/strictyaml"
)

func TestParseGood(t *testing.T) {
	src := `# a full manifest
name: temp-alert
wasm: ./temp_alert.wasm
triggers:
  - mqtt: sensors/+/temperature
    qos: 1
  - gpio: GPIO17
    edge: falling
    debounce: 20ms
  - every: 30s
  - cron: "0 * * * *"
limits: { memory: 8MiB, timeout: 50ms, concurrency: 4, max_output: 64KiB }
allow: { publish: ["actuators/fan/#"], gpio_write: [GPIO18], gpio_read: [GPIO27], kv: true }
env: { THRESHOLD: "30" }
build: wat2wasm -o temp_alert.wasm main.wat
`
	m, err := Parse("function.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if m.Name != "temp-alert" || m.Wasm != "./temp_alert.wasm" || m.Build != "wat2wasm -o temp_alert.wasm main.wat" {
		t.Errorf("name/wasm/build = %q %q %q", m.Name, m.Wasm, m.Build)
	}
	if len(m.Triggers) != 4 {
		t.Fatalf("triggers = %d, want 4", len(m.Triggers))
	}
	if tr := m.Triggers[0]; tr.MQTT != "sensors/+/temperature" || tr.QoS != 1 || tr.Kind() != edgefn.SourceMQTT {
		t.Errorf("mqtt trigger = %+v", tr)
	}
	if tr := m.Triggers[1]; tr.GPIO != "GPIO17" || tr.Edge != edgefn.EdgeFalling || tr.Debounce != 20*time.Millisecond || tr.Pull != edgefn.PullNone {
		t.Errorf("gpio trigger = %+v", tr)
	}
	if m.Triggers[2].Every != 30*time.Second || m.Triggers[3].Cron != "0 * * * *" {
		t.Errorf("timer triggers = %+v", m.Triggers[2:])
	}
	want := edgefn.Limits{Memory: 8 * edgefn.MiB, Timeout: 50 * time.Millisecond, Concurrency: 4, MaxOutput: 64 * edgefn.KiB}
	if m.Limits != want {
		t.Errorf("limits = %+v, want %+v", m.Limits, want)
	}
	if !m.Allow.KV || !m.Allow.MayPublish("actuators/fan/1") || m.Allow.MayPublish("actuators/pump") || !m.Allow.MayWrite("gpio18") || !m.Allow.MayRead("GPIO27") {
		t.Errorf("grants = %+v", m.Allow)
	}
	if m.Env["THRESHOLD"] != "30" || m.Isolation != edgefn.IsolationWarm {
		t.Errorf("env/isolation = %v %q", m.Env, m.Isolation)
	}
}

// Every bad manifest gets an error that names the line and the field.
func TestParseBad(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // substrings, each must appear
	}{
		{"unknown key", "name: a\nwasm: a.wasm\nlimitz: {}\n", []string{`f.yaml:3: limitz: unknown key "limitz", did you mean "limits"?`}},
		{"missing name", "wasm: a.wasm\n", []string{"name: missing"}},
		{"missing wasm", "name: a\n", []string{"wasm: missing"}},
		{"bad name", "name: Temp Alert\nwasm: a.wasm\n", []string{`f.yaml:1: name: "Temp Alert": use a lower-case letter`}},
		{"decimal unit", "name: a\nwasm: a.wasm\nlimits:\n  memory: 64MB\n", []string{`f.yaml:4: limits.memory: "64MB": unknown unit "MB", use B, KiB, MiB or GiB`}},
		{"bad duration", "name: a\nwasm: a.wasm\nlimits:\n  timeout: 50\n", []string{`f.yaml:4: limits.timeout: "50": not a duration`}},
		{"zero concurrency", "name: a\nwasm: a.wasm\nlimits:\n  concurrency: 0\n", []string{"f.yaml:4: limits.concurrency: 0: out of range, use 1 to 1024"}},
		{"tiny memory", "name: a\nwasm: a.wasm\nlimits:\n  memory: 1KiB\n", []string{"f.yaml:4: limits.memory: 1KiB: out of range, use 64KiB to 4GiB"}},
		{"unknown limit", "name: a\nwasm: a.wasm\nlimits:\n  memroy: 8MiB\n", []string{`f.yaml:4: limits.memroy: unknown key "memroy", did you mean "memory"?`}},
		{"qos 2", "name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a/b\n    qos: 2\n", []string{"f.yaml:5: triggers[0].qos: QoS 2 is not supported"}},
		{"bad filter", "name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a/#/b\n", []string{`f.yaml:4: triggers[0].mqtt: "a/#/b": not a valid MQTT topic filter`}},
		{"two kinds", "name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a/b\n    every: 1s\n", []string{"f.yaml:4: triggers[0]: one trigger per list item: found mqtt and every together"}},
		{"no kind", "name: a\nwasm: a.wasm\ntriggers:\n  - qos: 1\n", []string{"triggers[0]: a trigger needs one of mqtt, gpio, every, cron or files"}},
		{"files and mqtt", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    mqtt: a\n", []string{"f.yaml:4: triggers[0]: one trigger per list item: found mqtt and files together"}},
		{"files empty", "name: a\nwasm: a.wasm\ntriggers:\n  - files: \"\"\n", []string{"f.yaml:4: triggers[0].files: must name a directory"}},
		{"files bad pattern", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    pattern: \"[a-\"\n", []string{`f.yaml:5: triggers[0].pattern: "[a-": not a valid glob`}},
		{"files pattern with slash", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    pattern: \"sub/*.jpg\"\n", []string{`f.yaml:5: triggers[0].pattern: "sub/*.jpg": matches a file name, so it may not contain '/'`}},
		{"files too large", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    max_size: 1GiB\n", []string{"f.yaml:5: triggers[0].max_size: 1GiB: out of range, use 1B to 64MiB"}},
		{"files zero size", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    max_size: 0B\n", []string{"f.yaml:5: triggers[0].max_size: 0B: out of range"}},
		{"files decimal size", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    max_size: 8MB\n", []string{`f.yaml:5: triggers[0].max_size: "8MB": unknown unit "MB"`}},
		{"files bad after", "name: a\nwasm: a.wasm\ntriggers:\n  - files: /in\n    after: keep\n", []string{`f.yaml:5: triggers[0].after: "keep": use move (to .done/, the default) or delete`}},
		{"pattern on mqtt", "name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a\n    pattern: \"*\"\n", []string{"f.yaml:4: triggers[0]: pattern, max_size and after apply only to files triggers"}},
		{"bad edge", "name: a\nwasm: a.wasm\ntriggers:\n  - gpio: GPIO17\n    edge: down\n", []string{`f.yaml:5: triggers[0].edge: "down": use rising, falling or both`}},
		{"edge on mqtt", "name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a\n    edge: rising\n", []string{"edge, pull and debounce apply only to gpio triggers"}},
		{"bad cron", "name: a\nwasm: a.wasm\ntriggers:\n  - cron: \"61 * * * *\"\n", []string{`f.yaml:4: triggers[0].cron: "61 * * * *"`}},
		{"every too short", "name: a\nwasm: a.wasm\ntriggers:\n  - every: 1ms\n", []string{"triggers[0].every: 1ms: too short"}},
		{"every zero", "name: a\nwasm: a.wasm\ntriggers:\n  - every: 0s\n", []string{"triggers[0].every: 0s: too short"}},
		{"triggers not list", "name: a\nwasm: a.wasm\ntriggers: a/b\n", []string{`f.yaml:3: triggers: expected a list, got "a/b"`}},
		{"bad publish grant", "name: a\nwasm: a.wasm\nallow:\n  publish: [\"a/#/c\"]\n", []string{`f.yaml:4: allow.publish[0]: "a/#/c": not a valid MQTT topic filter`}},
		{"bad kv", "name: a\nwasm: a.wasm\nallow:\n  kv: maybe\n", []string{`f.yaml:4: allow.kv: "maybe": expected true or false`}},
		{"reserved env", "name: a\nwasm: a.wasm\nenv:\n  EDGEFN_SOURCE: x\n", []string{"env.EDGEFN_SOURCE: names starting with EDGEFN_ are set by the agent"}},
		{"bad isolation", "name: a\nwasm: a.wasm\nisolation: cold\n", []string{`f.yaml:3: isolation: "cold": use warm or fresh`}},
		{"bad uplink order", "name: a\nwasm: a.wasm\nuplink: { order: fifo }\n", []string{`f.yaml:3: uplink.order: "fifo": use live or strict`}},
		{"duplicate key", "name: a\nname: b\nwasm: a.wasm\n", []string{`f.yaml:2: name: duplicate key "name"`}},
		{"not yaml", "name: [a\n", []string{"f.yaml:", "invalid YAML"}},
		{"not a mapping", "- a\n- b\n", []string{"expected a mapping of fields at the top level"}},
		{"empty", "", []string{"f.yaml: empty document"}},
		{"every problem at once", "name: A\nwasm: a.wasm\nlimits:\n  memory: 8MB\n  timeout: soon\n", []string{"f.yaml:1: name", "f.yaml:4: limits.memory", "f.yaml:5: limits.timeout"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("f.yaml", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			var ye *strictyaml.Error
			if !errors.As(err, &ye) {
				t.Errorf("error is not a *strictyaml.Error: %T", err)
			}
		})
	}
}

func TestParseFiles(t *testing.T) {
	src := "name: cam\nwasm: cam.wasm\ntriggers:\n  - files: /var/lib/edgefn/inbox/camera\n    pattern: \"*.jpg\"\n    max_size: 2MiB\n    after: delete\n  - files: inbox\n"
	m, err := Parse("f.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	want := []edgefn.Trigger{
		{Files: "/var/lib/edgefn/inbox/camera", Pattern: "*.jpg", MaxSize: 2 * edgefn.MiB, After: edgefn.FileAfterDelete},
		{Files: "inbox", MaxSize: edgefn.DefaultFileMaxSize, After: edgefn.FileAfterMove},
	}
	if len(m.Triggers) != 2 || m.Triggers[0] != want[0] || m.Triggers[1] != want[1] || m.Triggers[0].Kind() != edgefn.SourceFile {
		t.Errorf("triggers = %+v, want %+v", m.Triggers, want)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("name: a\nwasm: a.wasm\ntriggers:\n  - mqtt: a/+\n    qos: 1\nlimits: {memory: 8MiB}\n"))
	f.Add([]byte("name: [a\n"))
	f.Add([]byte("triggers:\n  - gpio: GPIO1\n    edge: both\n    debounce: 1ms\n"))
	f.Add([]byte("name: a\nwasm: a.wasm\ntriggers:\n  - files: in\n    pattern: \"*.jpg\"\n    max_size: 1MiB\n    after: delete\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Parse("f.yaml", data)
		if err == nil && (m == nil || m.Name == "" || m.Wasm == "") {
			t.Fatalf("accepted an incomplete manifest: %+v", m)
		}
	})
}

// The operator's ceilings: limits above limits.max, publish grants outside
// grants.max.publish, and grants reaching another function's trigger
// topics are refused, all at once, each with its line.
func TestRulesCheck(t *testing.T) {
	other := &edgefn.Manifest{Name: "temp-alert", Triggers: []edgefn.Trigger{{MQTT: "sensors/+/temperature"}}}
	spy := &edgefn.Manifest{Name: "spy", Allow: edgefn.Grants{Publish: []string{"pipeline/#"}}}
	rules := &Rules{MaxLimits: edgefn.DefaultMaxLimits, Publish: []string{"+/#"}, Others: []*edgefn.Manifest{other, spy}}
	src := `name: f
wasm: f.wasm
triggers:
  - mqtt: pipeline/in
limits:
  max_output: 4GiB
  max_log: 4GiB
  memory: 8MiB
allow:
  publish: ["#", "$SYS/#", "sensors/kitchen/temperature", "actuators/fan"]
`
	m, d, err := Decode("function.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	err = rules.Check(d, m)
	for _, w := range []string{
		`function.yaml:6: limits.max_output: 4GiB: over the agent's maximum 4MiB (limits.max.max_output in the agent config)`,
		`function.yaml:7: limits.max_log: 4GiB: over the agent's maximum 64KiB`,
		`function.yaml:10: allow.publish[0]: "#": not within what the agent allows functions to publish to (grants.max.publish: ["+/#"]`,
		`function.yaml:10: allow.publish[1]: "$SYS/#": not within`,
		`function.yaml:10: allow.publish[2]: "sensors/kitchen/temperature": reaches topic "sensors/+/temperature" that function "temp-alert" is triggered by`,
		`function.yaml:4: triggers[0].mqtt: "pipeline/in": function "spy" may publish there (allow.publish "pipeline/#")`,
	} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v\ndoes not contain %q", err, w)
		}
	}
	if err != nil && (strings.Contains(err.Error(), "memory") || strings.Contains(err.Error(), "actuators/fan")) {
		t.Errorf("refused what is within the ceilings: %v", err)
	}

	// The operator's explicit allowance.
	rules.Publish = []string{"#", "$SYS/#"}
	rules.PublishToTriggers = []string{"sensors/+/temperature", "pipeline/#"}
	m.Limits = edgefn.Limits{}
	if err := rules.Check(d, m); err != nil {
		t.Errorf("allowed by the operator, still refused: %v", err)
	}
	// The function's own trigger is not another function's.
	self := &edgefn.Manifest{Name: "f", Triggers: []edgefn.Trigger{{MQTT: "#"}}}
	if err := (&Rules{Others: []*edgefn.Manifest{self}}).Check(d, m); err != nil {
		t.Errorf("own trigger refused: %v", err)
	}
}
