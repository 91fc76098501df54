package gateway

import (
	"fmt"
	"path/filepath"
	rtmetrics "runtime/metrics"
	"sort"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// voluntaryCtxSwitches counts the times the process's threads blocked
// (each is a futex sleep or a blocking syscall, and a wake-up after it).
func voluntaryCtxSwitches() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Nvcsw
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchAgent(b *testing.B, durability string) *testAgent {
	dir := b.TempDir()
	writeFunction(b, filepath.Join(dir, "fns"), "echo", "limits: {concurrency: 4}\ntriggers:\n  - mqtt: bench/#\n    qos: 1\n", "echo.wasm")
	return startAgent(b, dir, func(c *Config) { c.Outbox.Durability = durability; c.QueueSize = 1024 })
}

// BenchmarkEmbeddedQoS1Throughput: devices publish QoS 1 to the embedded
// broker as fast as PUBACKs come back (8 connections); each message runs a
// trivial reactor and is committed before its PUBACK. Reports events/s
// and CPU per event for the whole process (agent and the paho clients).
func BenchmarkEmbeddedQoS1Throughput(b *testing.B) {
	for _, dur := range []string{"full", "normal"} {
		b.Run(dur, func(b *testing.B) {
			ta := benchAgent(b, dur)
			const conns = 8
			clients := make([]mqtt.Client, conns)
			for i := range clients {
				clients[i] = pahoClient(b, ta.ready.BrokerAddr, fmt.Sprint("bench-", i), true)
			}
			payload := []byte(`{"sensor":"kitchen","celsius":21.5,"humidity":40,"ts":1732662000000,"seq":123456}`)
			b.ResetTimer()
			cpu0, t0 := cpuTime(), time.Now()
			var wg sync.WaitGroup
			per := (b.N + conns - 1) / conns
			for i := range clients {
				wg.Add(1)
				go func(c mqtt.Client) {
					defer wg.Done()
					for j := 0; j < per; j++ {
						// Keep 16 publishes in flight per connection.
						toks := make([]mqtt.Token, 0, 16)
						for k := 0; k < 16 && j < per; k, j = k+1, j+1 {
							toks = append(toks, c.Publish("bench/a", 1, false, payload))
						}
						j--
						for _, tok := range toks {
							tok.Wait()
						}
					}
				}(clients[i])
			}
			wg.Wait()
			elapsed, cpu := time.Since(t0), cpuTime()-cpu0
			n := per * conns
			b.ReportMetric(float64(n)/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
		})
	}
}

// BenchmarkEmbeddedQoS1Latency: 1,000 events/s paced over 4 device
// connections, QoS 1, durability full and normal; reports p50 and p99 from
// publish to PUBACK (PUBACK is sent after the commit) and CPU per event.
func BenchmarkEmbeddedQoS1Latency(b *testing.B) {
	for _, dur := range []string{"full", "normal"} {
		b.Run(dur, func(b *testing.B) { benchLatency(b, dur) })
	}
}

func benchLatency(b *testing.B, durability string) {
	ta := benchAgent(b, durability)
	const conns, rate = 4, 1000
	clients := make([]mqtt.Client, conns)
	for i := range clients {
		clients[i] = pahoClient(b, ta.ready.BrokerAddr, fmt.Sprint("lat-", i), true)
	}
	payload := []byte(`{"sensor":"kitchen","celsius":21.5,"humidity":40,"ts":1732662000000,"seq":123456}`)
	n := max(b.N, 2000)
	lat := make([]time.Duration, n)
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	tick := time.NewTicker(time.Second / rate)
	defer tick.Stop()
	for i := 0; i < n; i++ {
		<-tick.C
		c := clients[i%conns]
		start := time.Now()
		tok := c.Publish("bench/lat", 1, false, payload)
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			tok.Wait()
			lat[i] = time.Since(start)
		}(i)
	}
	wg.Wait()
	cpu := cpuTime() - cpu0
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	b.ReportMetric(float64(lat[n/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[n*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	st := ta.functions()[0].Stats
	b.ReportMetric(float64(st.LatencyP99.Microseconds())/1000, "queue-to-commit-p99-ms")
}

// BenchmarkHostileNeighbour: the p50 latency (QoS 1 publish to PUBACK,
// i.e. to commit) of a healthy function alone, then while a hostile
// function (an infinite loop, stopped at its 50 ms deadline, fed
// continuously) runs beside it. Reports both and their ratio (target <= 2).
func BenchmarkHostileNeighbour(b *testing.B) {
	dir := b.TempDir()
	fns := filepath.Join(dir, "fns")
	writeFunction(b, fns, "ok", "triggers:\n  - mqtt: ok\n    qos: 1\n", "echo.wasm")
	writeFunction(b, fns, "spin", "limits: {timeout: 50ms, concurrency: 1}\ntriggers:\n  - mqtt: spin\n", "loop.wasm")
	ta := startAgent(b, dir, func(c *Config) { c.Outbox.Durability = "normal" })
	dev := pahoClient(b, ta.ready.BrokerAddr, "healthy", true)
	attacker := pahoClient(b, ta.ready.BrokerAddr, "attacker", true)
	payload := []byte(`{"celsius":21.5}`)
	n := max(b.N, 300)
	measure := func() time.Duration {
		lat := make([]time.Duration, n)
		for i := range lat {
			start := time.Now()
			dev.Publish("ok", 1, false, payload).Wait()
			lat[i] = time.Since(start)
			time.Sleep(time.Millisecond)
		}
		sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
		return lat[n/2]
	}
	b.ResetTimer()
	alone := measure()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			attacker.Publish("spin", 0, false, "x").Wait()
			time.Sleep(5 * time.Millisecond)
		}
	}()
	withSpin := measure()
	close(stop)
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(alone.Microseconds())/1000, "alone-p50-ms")
	b.ReportMetric(float64(withSpin.Microseconds())/1000, "beside-hostile-p50-ms")
	b.ReportMetric(float64(withSpin)/float64(alone), "ratio")
}

// BenchmarkEmbeddedQoS1Handoffs counts what one event costs between the
// socket read and the PUBACK: one device publishes QoS 1 messages one at a
// time (the next after the PUBACK) to the embedded broker; each runs
// relay.wasm (emit a record, publish the reading on relay/out) and is
// committed before its PUBACK. Reports, per event, the goroutine wake-ups
// (the count of runtime/metrics /sched/latencies, which the runtime samples
// one scheduling in 8: scaled by 8, so approximate), the thread sleeps
// (voluntary context switches from getrusage: the wake-ups that cost a
// futex), the heap allocations and the CPU, all of the whole process, the
// paho device included, so compare them between builds, not with zero.
func BenchmarkEmbeddedQoS1Handoffs(b *testing.B) {
	for _, dur := range []string{"normal", "full"} {
		b.Run(dur, func(b *testing.B) {
			dir := b.TempDir()
			writeFunction(b, filepath.Join(dir, "fns"), "relay", "triggers:\n  - mqtt: bench/#\n    qos: 1\nallow: {publish: [relay/out]}\n", "relay.wasm")
			ta := startAgent(b, dir, func(c *Config) { c.Outbox.Durability = dur })
			dev := pahoClient(b, ta.ready.BrokerAddr, "handoffs", true)
			payload := []byte(`{"sensor":"kitchen","celsius":21.5,"humidity":40,"ts":1732662000000,"seq":123456}`)
			for range 200 { // warm: the instance pool, the statements, the broker's buffers
				dev.Publish("bench/a", 1, false, payload).Wait()
			}
			samples := []rtmetrics.Sample{{Name: "/sched/latencies:seconds"}, {Name: "/gc/heap/allocs:objects"}}
			read := func() (wakeups, allocs uint64) {
				rtmetrics.Read(samples)
				for _, c := range samples[0].Value.Float64Histogram().Counts {
					wakeups += c
				}
				return wakeups, samples[1].Value.Uint64()
			}
			b.ResetTimer()
			w0, a0 := read()
			cpu0, cs0 := cpuTime(), voluntaryCtxSwitches()
			for range b.N {
				if tok := dev.Publish("bench/a", 1, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Fatalf("publish: %v", tok.Error())
				}
			}
			cpu, cs := cpuTime()-cpu0, voluntaryCtxSwitches()-cs0
			w1, a1 := read()
			b.StopTimer()
			b.ReportMetric(8*float64(w1-w0)/float64(b.N), "wakeups/event")
			b.ReportMetric(float64(cs)/float64(b.N), "thread-sleeps/event")
			b.ReportMetric(float64(a1-a0)/float64(b.N), "allocs/event")
			b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/event")
		})
	}
}
