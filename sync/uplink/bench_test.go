package uplink_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strconv"
	"sync"
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

// BenchmarkLiveLane measures fresh data during a drain: a backlog of
// EDGEFN_BENCH_BACKLOG records (default 200,000) piles up in a real outbox,
// then the HTTP uplink drains it into the loopback receiver while records
// of function "live" are committed at 100/s. It reports the new records'
// p50/p99 delivery latency (commit to arrival) and the drain rate, with the
// live lane (lane=live) and without it (lane=strict: "live" listed in
// StrictOrder, today's strict order). Run with -benchtime=1x.
func BenchmarkLiveLane(b *testing.B) {
	backlog := 200000
	if v := os.Getenv("EDGEFN_BENCH_BACKLOG"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatal(err)
		}
		backlog = n
	}
	for _, mode := range []string{"strict", "live"} {
		b.Run("lane="+mode, func(b *testing.B) {
			for range b.N {
				benchLiveLane(b, backlog, mode == "strict")
			}
		})
	}
}

func benchLiveLane(b *testing.B, backlog int, strict bool) {
	b.StopTimer()
	var mu sync.Mutex
	var lat []time.Duration
	seen := map[string]bool{}
	backlogLeft := backlog
	var drained time.Time
	r := receiver.Start(b, receiver.OnRecord(func(lines []receiver.Line) {
		now := time.Now()
		mu.Lock()
		defer mu.Unlock()
		for _, l := range lines {
			if seen[l.ID] {
				continue
			}
			seen[l.ID] = true
			if l.Function != "live" {
				if backlogLeft--; backlogLeft == 0 {
					drained = now
				}
				continue
			}
			var p struct{ T int64 }
			if err := json.Unmarshal(l.Payload, &p); err == nil {
				lat = append(lat, now.Sub(time.Unix(0, p.T)))
			}
		}
	}))
	st := openOutbox(b, b.TempDir()+"/outbox.db", outbox.DurabilityNormal)
	payload := append([]byte(`{"sensor":"temp-01","c":21.5,"pad":"`), bytes.Repeat([]byte("x"), 100)...)
	payload = append(payload[:98], `"}`...)
	for left := backlog; left > 0; {
		effects := make([]edgefn.Effect, min(left, 500))
		for i := range effects {
			effects[i] = edgefn.Effect{Kind: edgefn.EffectEmit, Payload: payload}
		}
		if _, err := st.Commit(context.Background(), &outbox.Invocation{Function: "temp", Version: 1, EventID: "e",
			Source: edgefn.SourceMQTT, Subject: "sensors/temp", Effects: effects}); err != nil {
			b.Fatal(err)
		}
		left -= len(effects)
	}
	cfg := uplink.HTTPConfig{URL: r.URL()}
	if strict {
		cfg.StrictOrder = func() []string { return []string{"live"} }
	}
	u, err := uplink.NewHTTP(cfg, st, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	b.StartTimer()
	start := time.Now()
	go func() { defer close(done); _ = u.Run(ctx) }()
	// New records at a steady 100/s until the backlog has arrived.
	published := 0
	tick := time.NewTicker(10 * time.Millisecond)
	for {
		<-tick.C
		mu.Lock()
		end := drained
		mu.Unlock()
		if !end.IsZero() {
			break
		}
		if time.Since(start) > 10*time.Minute {
			b.Fatal("backlog not drained in 10 minutes")
		}
		if _, err := st.Commit(ctx, &outbox.Invocation{Function: "live", Version: 1, EventID: "e", Source: edgefn.SourceMQTT,
			Subject: "sensors/live", Effects: []edgefn.Effect{{Kind: edgefn.EffectEmit, Payload: fmt.Appendf(nil, `{"t":%d}`, time.Now().UnixNano())}}}); err != nil {
			b.Fatal(err)
		}
		published++
	}
	tick.Stop()
	r.WaitFor(time.Minute, "every live record", func() bool { return r.Unique() >= backlog+published })
	b.StopTimer()
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	slices.Sort(lat)
	pct := func(p int) float64 { return float64(lat[(len(lat)-1)*p/100]) / float64(time.Millisecond) }
	elapsed := drained.Sub(start)
	b.ReportMetric(float64(backlog)/elapsed.Seconds(), "drain-records/s")
	b.ReportMetric(pct(50), "new-p50-ms")
	b.ReportMetric(pct(99), "new-p99-ms")
	b.ReportMetric(float64(len(lat)), "new-records")
	b.Logf("backlog %d drained in %v; %d new records, p50 %.1f ms, p99 %.1f ms, max %v",
		backlog, elapsed.Round(time.Millisecond), len(lat), pct(50), pct(99), lat[len(lat)-1].Round(time.Millisecond))
}
