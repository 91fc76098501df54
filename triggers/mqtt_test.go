package triggers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

func newTestMQTT(t *testing.T, url string, sink Sink, mod func(*MQTTConfig)) *MQTT {
	t.Helper()
	cfg := MQTTConfig{
		Brokers:              []string{url},
		ClientID:             "edgefn-test-" + strings.ReplaceAll(t.Name(), "/", "-"),
		ConnectTimeout:       5 * time.Second,
		MaxReconnectInterval: time.Second,
		RedeliveryDelay:      50 * time.Millisecond,
	}
	if mod != nil {
		mod(&cfg)
	}
	m, err := NewMQTT(cfg, sink, nil)
	if err != nil {
		t.Fatalf("NewMQTT: %v", err)
	}
	return m
}

func TestMQTTConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  MQTTConfig
		want []string
	}{
		{"empty", MQTTConfig{}, []string{"brokers: at least one", "client_id: required"}},
		{"bad scheme", MQTTConfig{Brokers: []string{"ws://x"}, ClientID: "a"}, []string{"brokers[0]: ", "ws"}},
		{"no host", MQTTConfig{Brokers: []string{"tcp://:1883"}, ClientID: "a"}, []string{"brokers[0]: ", "no host"}},
		{"bad port", MQTTConfig{Brokers: []string{"tcp://h:99999"}, ClientID: "a"}, []string{"bad port"}},
		{"password alone", MQTTConfig{Brokers: []string{"tcp://h"}, ClientID: "a", Password: "p"}, []string{"password: set without username"}},
		{"half cert", MQTTConfig{Brokers: []string{"ssl://h"}, ClientID: "a", TLS: TLSConfig{CertFile: "c"}}, []string{"tls.cert_file: cert_file and key_file"}},
		{"negative", MQTTConfig{Brokers: []string{"tcp://h"}, ClientID: "a", KeepAlive: -1}, []string{"keep_alive: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %q, want it to mention %q", err, w)
				}
			}
		})
	}
	ok := MQTTConfig{Brokers: []string{"tcp://127.0.0.1:1883", "mqtts://b.example:8883"}, ClientID: "edgefn-gw1"}
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(good) = %v", err)
	}
	if _, err := NewMQTT(MQTTConfig{Brokers: []string{"ssl://h"}, ClientID: "a", TLS: TLSConfig{CAFile: "/nonexistent"}}, newRecSink(nil), nil); err == nil || !strings.Contains(err.Error(), "tls.ca_file") {
		t.Errorf("NewMQTT with a missing CA file = %v, want an error naming tls.ca_file", err)
	}
}

func TestMQTTSetSubscriptionsValidates(t *testing.T) {
	m := newTestMQTT(t, "tcp://127.0.0.1:1", newRecSink(nil), nil)
	err := m.SetSubscriptions([]Subscription{{"a/#/b", 0}, {"ok/+", 2}, {"fine", 1}})
	if err == nil || !strings.Contains(err.Error(), `"a/#/b"`) || !strings.Contains(err.Error(), "qos 2") {
		t.Fatalf("SetSubscriptions(bad) = %v, want errors naming the filter and the qos", err)
	}
}

func TestMQTTWildcardRoutingQoS(t *testing.T) {
	b := mosquittotest.Start(t)
	sink := newRecSink(nil)
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"sensors/+/temp", 1}, {"alarms/#", 1}, {"end", 1}})

	mosqPub(t, b.Addr(), "sensors/a/temp", "21.5", 1)
	mosqPub(t, b.Addr(), "sensors/a/b/temp", "no", 1) // + is one level
	mosqPub(t, b.Addr(), "alarms/x/y", "fire", 0)
	mosqPub(t, b.Addr(), "other/x", "no", 1)
	mosqPub(t, b.Addr(), "alarms", "parent", 1) // # matches the parent level
	mosqPub(t, b.Addr(), "end", "", 1)
	got := map[string]edgefn.Event{}
	for _, ev := range sink.until(t, "end") {
		if _, dup := got[ev.Subject]; dup {
			t.Errorf("topic %q delivered twice", ev.Subject)
		}
		got[ev.Subject] = ev
	}
	want := map[string]struct{ payload, qos string }{
		"sensors/a/temp": {"21.5", "1"}, "alarms/x/y": {"fire", "0"}, "alarms": {"parent", "1"}, "end": {"", "1"},
	}
	if len(got) != len(want) {
		t.Errorf("delivered topics %v, want %v", keys(got), want)
	}
	for topic, w := range want {
		ev, ok := got[topic]
		if !ok {
			t.Errorf("%q not delivered", topic)
			continue
		}
		if string(ev.Payload) != w.payload || ev.Meta["qos"] != w.qos || ev.Source != edgefn.SourceMQTT ||
			ev.Meta["retain"] != "false" || ev.Meta["duplicate"] != "false" || ev.ID == "" {
			t.Errorf("%q: event %+v, want payload %q qos %s", topic, ev, w.payload, w.qos)
		}
	}

	// Removing a filter while running unsubscribes it.
	subscribe(t, m, []Subscription{{"alarms/#", 1}, {"end", 1}})
	waitSubscribed(t, m, 2)
	mosqPub(t, b.Addr(), "sensors/a/temp", "gone", 1)
	mosqPub(t, b.Addr(), "end", "", 1)
	for _, ev := range sink.until(t, "end") {
		if ev.Subject != "end" {
			t.Errorf("after unsubscribe got %q", ev.Subject)
		}
	}
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestMQTTOverlappingSubscriptions documents mosquitto 2.0's behaviour:
// an MQTT 3.1.1 client with overlapping subscriptions receives one PUBLISH
// per message (an MQTT 5 client gets one per matching subscription); the
// trigger hands each received PUBLISH to the sink once.
func TestMQTTOverlappingSubscriptions(t *testing.T) {
	// One message in flight at a time: when "end" arrives, every earlier
	// PUBLISH (including any duplicate) has been handled and acked.
	b := mosquittotest.Start(t, mosquittotest.WithMaxInflightMessages(1))
	sink := newRecSink(nil)
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"a/#", 1}, {"a/+", 1}, {"+/b", 0}, {"end", 1}})
	mosqPub(t, b.Addr(), "a/b", "x", 1)
	mosqPub(t, b.Addr(), "end", "", 1)
	evs := sink.until(t, "end")
	if len(evs) != 2 || evs[0].Subject != "a/b" {
		t.Fatalf("got %d events %v, want a/b once then end", len(evs), evs)
	}
	if evs[0].Meta["qos"] != "1" {
		t.Errorf("overlapping subs: qos %s, want the maximum (1)", evs[0].Meta["qos"])
	}
}

// TestMQTTAckOnlyAfterDeliver: a message the sink refuses is not acked and
// comes back (the trigger drops the connection after RedeliveryDelay); once
// the sink accepts it, it is acked and never comes back.
func TestMQTTAckOnlyAfterDeliver(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithMaxInflightMessages(1))
	var attempts atomic.Int32
	sink := newRecSink(func(ev edgefn.Event) error {
		if ev.Subject == "in/x" && attempts.Add(1) <= 2 {
			return errors.New("commit failed")
		}
		return nil
	})
	m := newTestMQTT(t, b.URL(), sink, nil)
	stop := runSubscribed(t, m, []Subscription{{"in/#", 1}})
	mosqPub(t, b.Addr(), "in/x", "payload", 1)
	ev := sink.next(t)
	if ev.Subject != "in/x" || ev.Meta["duplicate"] != "true" {
		t.Fatalf("got %+v, want the redelivered in/x with duplicate=true", ev)
	}
	if n := attempts.Load(); n != 3 {
		t.Errorf("sink saw in/x %d times, want 3 (two refusals, one commit)", n)
	}
	st := m.Status()
	if st.ForcedReconnects < 2 || st.Failed != 2 || st.Delivered != 1 {
		t.Errorf("status %+v, want >=2 forced reconnects, 2 failed, 1 delivered", st)
	}
	stop()

	// A new run of the same client id: the acked message is not redelivered.
	m2 := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m2, []Subscription{{"in/#", 1}})
	mosqPub(t, b.Addr(), "in/end", "", 1)
	for _, ev := range sink.until(t, "in/end") {
		if ev.Subject != "in/end" {
			t.Errorf("after a committed delivery and a restart got %q again", ev.Subject)
		}
	}
}

// TestMQTTUnackedRedeliveredAfterRestart: the sink fails, the agent stops
// before the forced reconnect; the next run gets the message.
func TestMQTTUnackedRedeliveredAfterRestart(t *testing.T) {
	b := mosquittotest.Start(t)
	failed := make(chan struct{})
	var once sync.Once
	sink := newRecSink(func(edgefn.Event) error {
		once.Do(func() { close(failed) })
		return errors.New("disk full")
	})
	m := newTestMQTT(t, b.URL(), sink, func(c *MQTTConfig) { c.RedeliveryDelay = time.Hour })
	stop := runSubscribed(t, m, []Subscription{{"in/#", 1}})
	mosqPub(t, b.Addr(), "in/x", "keep me", 1)
	select {
	case <-failed:
	case <-time.After(testTimeout):
		t.Fatal("sink never called")
	}
	stop()

	sink2 := newRecSink(nil)
	m2 := newTestMQTT(t, b.URL(), sink2, nil)
	subscribe(t, m2, []Subscription{{"in/#", 1}})
	runMQTT(t, m2)
	ev := sink2.next(t)
	if ev.Subject != "in/x" || string(ev.Payload) != "keep me" {
		t.Fatalf("after restart got %+v, want the unacked in/x", ev)
	}
}

// TestMQTTPersistentSessionCatchUp: messages published while the trigger
// is stopped are delivered when it runs again.
func TestMQTTPersistentSessionCatchUp(t *testing.T) {
	b := mosquittotest.Start(t)
	sink := newRecSink(nil)
	m := newTestMQTT(t, b.URL(), sink, nil)
	stop := runSubscribed(t, m, []Subscription{{"s/+", 1}})
	stop()

	dev := device(t, b.URL(), "sensor-1", true)
	const n = 50
	for i := range n {
		devicePublish(t, dev, "s/t", fmt.Sprint(i), 1)
	}
	m2 := newTestMQTT(t, b.URL(), sink, nil)
	subscribe(t, m2, []Subscription{{"s/+", 1}})
	runMQTT(t, m2)
	seen := map[string]bool{}
	for len(seen) < n {
		seen[string(sink.next(t).Payload)] = true
	}
}

// TestMQTTBrokerRestartNoLoss restarts mosquitto in the middle of a QoS 1
// stream; every message reaches the sink.
func TestMQTTBrokerRestartNoLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the broker (a few seconds)")
	}
	b := mosquittotest.Start(t)
	sink := newRecSink(nil)
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"s/#", 1}})

	dev := device(t, b.URL(), "sensor-restart", false)
	const n = 300
	pubErr := make(chan error, 1)
	go func() {
		for i := range n {
			tok := dev.Publish("s/t", 1, false, fmt.Sprint(i))
			if !tok.WaitTimeout(testTimeout) {
				pubErr <- fmt.Errorf("message %d: no PUBACK", i)
				return
			}
			if err := tok.Error(); err != nil {
				pubErr <- fmt.Errorf("message %d: %w", i, err)
				return
			}
		}
		pubErr <- nil
	}()
	seen := map[string]bool{}
	for len(seen) < n/3 {
		seen[string(sink.next(t).Payload)] = true
	}
	b.Restart()
	for len(seen) < n {
		seen[string(sink.next(t).Payload)] = true
	}
	if err := <-pubErr; err != nil {
		t.Fatalf("device: %v", err)
	}
	if m.Status().Reconnects < 1 {
		t.Errorf("status %+v: want at least one reconnect", m.Status())
	}
}

func TestMQTTPublishReachesSubscriber(t *testing.T) {
	b := mosquittotest.Start(t)
	m := newTestMQTT(t, b.URL(), newRecSink(nil), nil)
	if err := m.Publish(context.Background(), "x", nil, 0, false, 0); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Publish before Run = %v, want ErrNotRunning", err)
	}
	runMQTT(t, m)
	waitFor(t, "connected", func() bool { return m.Status().Connected })
	ctx := context.Background()
	lines := mosqSub(t, b.Addr(), nil, "out/#")
	waitSubReady(t, lines, "out/probe", func() {
		if err := m.Publish(ctx, "out/probe", []byte("p"), 0, false, 0); err != nil {
			t.Errorf("Publish probe: %v", err)
		}
	})
	if err := m.Publish(ctx, "out/fan", []byte("on"), 1, false, 0); err != nil {
		t.Fatalf("Publish: %v", err)
	}
	for l := range lines {
		if l == "out/fan on" {
			break
		}
	}
	if err := m.Publish(ctx, "out/#", nil, 1, false, 0); err == nil {
		t.Error("Publish to a wildcard topic succeeded")
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := m.Publish(cctx, "out/x", nil, 1, false, 0); err == nil {
		// The token may already be complete; only a hang would be a bug.
		t.Log("Publish with a cancelled context completed before noticing")
	}
}

func TestMQTTTLS(t *testing.T) {
	b := mosquittotest.Start(t, mosquittotest.WithTLS())
	sink := newRecSink(nil)
	m := newTestMQTT(t, b.TLSURL(), sink, func(c *MQTTConfig) {
		c.TLS = TLSConfig{CAFile: b.CAFile(), ServerName: "localhost"}
	})
	runSubscribed(t, m, []Subscription{{"tls/#", 1}})
	mosqPub(t, b.Addr(), "tls/x", "secure", 1)
	if ev := sink.next(t); string(ev.Payload) != "secure" {
		t.Fatalf("got %+v", ev)
	}
}

// TestMQTTUnreachableBroker: Run keeps retrying, reports the error in
// Status and returns promptly when cancelled.
func TestMQTTUnreachableBroker(t *testing.T) {
	b := mosquittotest.Start(t)
	url := b.URL()
	b.Stop() // a port nothing listens on
	m := newTestMQTT(t, url, newRecSink(nil), nil)
	stop := runMQTT(t, m)
	waitFor(t, "a connection error in Status", func() bool { return m.Status().LastError != "" })
	if m.Status().Connected {
		t.Error("connected to a stopped broker")
	}
	start := time.Now()
	stop()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Run took %v to return after cancel", d)
	}
}

// TestMQTTPerTopicOrder: one topic's messages reach the sink one at a time
// in the order published, while another topic's go through beside them.
func TestMQTTPerTopicOrder(t *testing.T) {
	b := mosquittotest.Start(t)
	bDone := make(chan struct{})
	var mu sync.Mutex
	inside := map[string]bool{}
	var got []string
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		mu.Lock()
		if inside[ev.Subject] {
			t.Errorf("%s %s delivered while an earlier message of its topic is in the sink", ev.Subject, ev.Payload)
		}
		inside[ev.Subject] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			inside[ev.Subject] = false
			got = append(got, ev.Subject+"="+string(ev.Payload))
			mu.Unlock()
		}()
		switch {
		case ev.Subject == "in/a" && string(ev.Payload) == "1":
			// Held until in/b went through: topics do not wait for each other.
			select {
			case <-bDone:
			case <-time.After(testTimeout):
				t.Error("in/b was not delivered while in/a=1 was in the sink")
			}
		case ev.Subject == "in/b":
			close(bDone)
		}
		return nil
	})
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"in/#", 1}})
	dev := device(t, b.URL(), "order-dev", true)
	var toks []mqtt.Token
	for _, p := range []struct{ topic, payload string }{{"in/a", "1"}, {"in/a", "2"}, {"in/a", "3"}, {"in/b", "1"}, {"in/a", "4"}} {
		toks = append(toks, dev.Publish(p.topic, 1, false, p.payload))
	}
	for _, tok := range toks {
		if !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
			t.Fatalf("publish: %v", tok.Error())
		}
	}
	waitFor(t, "5 deliveries", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == 5 })
	var a []string
	for _, g := range got {
		if strings.HasPrefix(g, "in/a=") {
			a = append(a, g)
		}
	}
	if strings.Join(a, " ") != "in/a=1 in/a=2 in/a=3 in/a=4" {
		t.Errorf("in/a delivered in the order %v, want 1 2 3 4", a)
	}
}

// TestMQTTOrderKeptAcrossRedelivery: a refused QoS 1 message holds back the
// later messages of its topic, so after the redelivery they are committed
// in the order published.
func TestMQTTOrderKeptAcrossRedelivery(t *testing.T) {
	b := mosquittotest.Start(t)
	var refused atomic.Bool
	var mu sync.Mutex
	var committed []string
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		if string(ev.Payload) == "1" && refused.CompareAndSwap(false, true) {
			return errors.New("commit failed")
		}
		mu.Lock()
		committed = append(committed, string(ev.Payload))
		mu.Unlock()
		return nil
	})
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"in/#", 1}})
	dev := device(t, b.URL(), "redeliver-dev", true)
	for _, p := range []string{"1", "2", "3"} {
		devicePublish(t, dev, "in/a", p, 1)
	}
	waitFor(t, "3 commits", func() bool { mu.Lock(); defer mu.Unlock(); return len(committed) >= 3 })
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(committed, " ") != "1 2 3" {
		t.Errorf("committed %v, want 1 2 3 (once each, in order)", committed)
	}
	if st := m.Status(); st.ForcedReconnects < 1 {
		t.Errorf("status %+v: want a forced reconnect for the redelivery", st)
	}
}
