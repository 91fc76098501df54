package triggers

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
)

// BenchmarkBrokerPubackAfterCommit measures what waiting for the commit
// before PUBACK costs a device: paho clients each publish QoS 1 messages in
// sequence (waiting for each PUBACK) to the embedded broker, whose sink
// returns at once or after a simulated 1 ms commit.
//
//	go test -run '^$' -bench BrokerPubackAfterCommit -count 5 ./triggers/
func BenchmarkBrokerPubackAfterCommit(b *testing.B) {
	for _, commit := range []time.Duration{0, time.Millisecond} {
		for _, conns := range []int{1, 4} {
			b.Run(fmt.Sprintf("commit=%v/conns=%d", commit, conns), func(b *testing.B) {
				benchPuback(b, commit, conns)
			})
		}
	}
}

func benchPuback(b *testing.B, commit time.Duration, conns int) {
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		if commit > 0 {
			time.Sleep(commit) // stands for the outbox commit
		}
		return nil
	})
	br := startBroker(b, BrokerConfig{}, sink)
	if err := br.SetSubscriptions([]Subscription{{"bench/#", 1}}); err != nil {
		b.Fatal(err)
	}
	clients := make([]mqtt.Client, conns)
	for i := range clients {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + br.Addr()).SetClientID(fmt.Sprintf("bench-%d", i))
		c := mqtt.NewClient(o)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			b.Fatalf("connect: %v", tok.Error())
		}
		defer c.Disconnect(0)
		clients[i] = c
	}
	payload := []byte(`{"sensor":"t1","temp":21.5,"unit":"C","ts":1700000000000,"seq":123456}`)
	lat := make([][]time.Duration, conns)
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for i, c := range clients {
		n := b.N / conns
		if i == 0 {
			n += b.N % conns
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := make([]time.Duration, 0, n)
			for range n {
				t0 := time.Now()
				tok := c.Publish("bench/t", 1, false, payload)
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Errorf("publish: %v", tok.Error())
					return
				}
				l = append(l, time.Since(t0))
			}
			lat[i] = l
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	all := slices.Concat(lat...)
	slices.Sort(all)
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
	}
	b.ReportMetric(float64(b.N)/elapsed.Seconds()/float64(conns), "msgs/s/conn")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
}

// BenchmarkBrokerPipelined measures one device that keeps 16 QoS 1
// publishes in flight (paho, waiting for the oldest PUBACK when 16 are
// out) against a sink whose commits are grouped every 1 ms (one simulated
// group commit answers everything that arrived before it): a blocking sink
// (Deliver waits for the next commit, so mochi reads the device's next
// message only then) against an AsyncSink (the broker pipelines).
//
//	go test -run '^$' -bench BrokerPipelined -benchtime 4000x -count 5 ./triggers/
func BenchmarkBrokerPipelined(b *testing.B) {
	for _, async := range []bool{false, true} {
		b.Run(fmt.Sprintf("pipelined=%v", async), func(b *testing.B) {
			gc := newGroupCommit(b, time.Millisecond)
			var sink Sink = SinkFunc(func(ctx context.Context, _ edgefn.Event) error {
				done := make(chan struct{})
				gc.add(func(error) { close(done) })
				<-done
				return nil
			})
			if async {
				sink = groupSink{gc}
			}
			br := startBroker(b, BrokerConfig{}, sink)
			if err := br.SetSubscriptions([]Subscription{{"bench/#", 1}}); err != nil {
				b.Fatal(err)
			}
			c := mqtt.NewClient(mqtt.NewClientOptions().AddBroker("tcp://" + br.Addr()).SetClientID("bench-pipelined"))
			if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				b.Fatalf("connect: %v", tok.Error())
			}
			defer c.Disconnect(0)
			payload := []byte(`{"sensor":"t1","temp":21.5,"unit":"C","ts":1700000000000,"seq":123456}`)
			var inflight []mqtt.Token
			wait := func(tok mqtt.Token) {
				if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
					b.Fatalf("publish: %v", tok.Error())
				}
			}
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				if len(inflight) == 16 {
					wait(inflight[0])
					inflight = inflight[1:]
				}
				inflight = append(inflight, c.Publish("bench/t", 1, false, payload))
			}
			for _, tok := range inflight {
				wait(tok)
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(gc.commits()), "msgs/commit")
		})
	}
}

// groupCommit answers, every interval, all that was added before: a
// stand-in for the outbox's group commit.
type groupCommit struct {
	mu      sync.Mutex
	pending []func(error)
	n       int
}

func newGroupCommit(b *testing.B, every time.Duration) *groupCommit {
	gc := &groupCommit{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
			case <-stop:
				return
			}
			gc.mu.Lock()
			batch := gc.pending
			gc.pending = nil
			if len(batch) > 0 {
				gc.n++
			}
			gc.mu.Unlock()
			for _, f := range batch {
				f(nil)
			}
		}
	}()
	b.Cleanup(func() { close(stop); <-done })
	return gc
}

func (gc *groupCommit) add(f func(error)) {
	gc.mu.Lock()
	gc.pending = append(gc.pending, f)
	gc.mu.Unlock()
}

func (gc *groupCommit) commits() int {
	gc.mu.Lock()
	defer gc.mu.Unlock()
	return max(gc.n, 1)
}

// groupSink is the AsyncSink over a groupCommit.
type groupSink struct{ gc *groupCommit }

func (s groupSink) Deliver(context.Context, edgefn.Event) error { return nil }

func (s groupSink) DeliverAsync(_ context.Context, _ edgefn.Event, durable func(error)) {
	s.gc.add(durable)
}
