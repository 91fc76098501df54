package uplink_test

import (
	"bytes"
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/sync/uplink/internal/receiver"
)

// BenchmarkDrainHTTP measures how fast the HTTP uplink drains a real
// outbox into the loopback receiver: b.N records of 100-byte JSON payloads
// are committed first, then the clock runs from Run until the receiver has
// them all (confirms included, since the next batch waits for them).
func BenchmarkDrainHTTP(b *testing.B) {
	for _, batch := range []int{100, 500} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			r := receiver.Start(b)
			st := openOutbox(b, b.TempDir()+"/outbox.db", outbox.DurabilityNormal)
			payload := append([]byte(`{"sensor":"temp-01","c":21.5,"pad":"`), bytes.Repeat([]byte("x"), 100)...)
			payload = append(payload[:98], `"}`...)
			for left := b.N; left > 0; {
				n := min(left, 500)
				effects := make([]edgefn.Effect, n)
				for i := range effects {
					effects[i] = edgefn.Effect{Kind: edgefn.EffectEmit, Payload: payload}
				}
				if _, err := st.Commit(context.Background(), &outbox.Invocation{Function: "temp", Version: 1, EventID: "e",
					Source: edgefn.SourceMQTT, Subject: "sensors/temp", Effects: effects}); err != nil {
					b.Fatal(err)
				}
				left -= n
			}
			u, err := uplink.NewHTTP(uplink.HTTPConfig{URL: r.URL(), Batch: uplink.Batch{MaxRecords: batch}}, st, nil)
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			b.ResetTimer()
			start := time.Now()
			go func() { defer close(done); _ = u.Run(ctx) }()
			r.WaitFor(5*time.Minute, "every record", func() bool { return r.Unique() >= b.N })
			elapsed := time.Since(start)
			b.StopTimer()
			cancel()
			<-done
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")
		})
	}
}
