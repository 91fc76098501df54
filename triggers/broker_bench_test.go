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
