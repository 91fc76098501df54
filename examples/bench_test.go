package examples

import (
	"testing"

	"github.com/edgefn/edgefn"
)

// BenchmarkInvoke runs one event through each example as the agent would
// (warm pooled instances for reactors, a fresh instance per event for the
// command) and reports µs/invocation and the instance's memory.
func BenchmarkInvoke(b *testing.B) {
	cases := []struct {
		dir string
		ev  edgefn.Event
	}{
		{"go-temp-alert", edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/kitchen/temperature", Payload: []byte(`{"celsius": 25}`)}},
		{"c-command", edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/kitchen/celsius", Payload: []byte("21.5")}},
		{"rust-reactor", edgefn.Event{Source: edgefn.SourceMQTT, Subject: "buttons/hall/press", Payload: []byte("press")}},
		{"as-reactor", edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/tank/level", Payload: []byte("10")}},
		{"wat-minimal", edgefn.Event{Source: edgefn.SourceTimer, Subject: "every 30s", Payload: []byte("tick")}},
	}
	for _, c := range cases {
		b.Run(c.dir, func(b *testing.B) {
			d := newDevice(b)
			f := d.load(b, find(c.dir))
			var mem uint64
			b.ResetTimer()
			for b.Loop() {
				res := d.invoke(b, f, c.ev)
				mem = res.MemoryBytes
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "µs/invocation")
			b.ReportMetric(float64(mem)/(1<<20), "MiB-memory")
		})
	}
}
