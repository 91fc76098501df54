package triggers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

func TestChainMarks(t *testing.T) {
	c := newChainMarks()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }

	if d := c.take("a", []byte("x")); d != 0 {
		t.Fatalf("no mark: depth %d, want 0 (a device's message)", d)
	}
	// Two identical publishes at different depths come back oldest first;
	// a third copy is a device's.
	c.add("a", []byte("x"), 3)
	c.add("a", []byte("x"), 5)
	c.add("a", []byte("y"), 7)
	for _, want := range []int{3, 5, 0} {
		if d := c.take("a", []byte("x")); d != want {
			t.Fatalf("take a/x: depth %d, want %d", d, want)
		}
	}
	if d := c.take("b", []byte("y")); d != 0 {
		t.Fatalf("other topic, same payload: depth %d, want 0", d)
	}
	if d := c.take("a", []byte("y")); d != 7 {
		t.Fatalf("take a/y: depth %d, want 7", d)
	}

	// A mark whose message never comes back expires.
	c.add("lost", nil, 2)
	now = now.Add(chainMarkTTL + time.Second)
	if d := c.take("lost", nil); d != 0 {
		t.Fatalf("expired mark taken: depth %d", d)
	}
	if live, evicted := c.stats(); live != 0 || evicted != 0 {
		t.Fatalf("after expiry: live %d evicted %d, want 0 0", live, evicted)
	}

	// At most chainMarkMax are kept, the oldest evicted and counted.
	for i := 0; i < chainMarkMax+10; i++ {
		c.add("t", []byte(fmt.Sprint(i)), 1)
	}
	if live, evicted := c.stats(); live != chainMarkMax || evicted != 10 {
		t.Fatalf("over the bound: live %d evicted %d, want %d 10", live, evicted, chainMarkMax)
	}
	if d := c.take("t", []byte("0")); d != 0 {
		t.Fatal("the oldest mark was not the one evicted")
	}
	if d := c.take("t", []byte(fmt.Sprint(chainMarkMax+9))); d != 1 {
		t.Fatal("the newest mark was evicted")
	}
	if len(c.fifo)-c.head > chainMarkMax {
		t.Fatalf("fifo holds %d refs, bound %d", len(c.fifo)-c.head, chainMarkMax)
	}
}

// The embedded broker carries the chain depth of the agent's own publishes
// in-process: the sink gets it, MQTT v5 subscribers do not see the carrier
// property, and a device cannot set it.
func TestBrokerCarriesChainDepth(t *testing.T) {
	sink := newRecSink(nil)
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"out/#", 1}})
	lines := mosqSub(t, b.Addr(), []string{"-V", "5", "-F", "%t %p|%P"}, "out/#")
	waitSubReady(t, lines, "out/probe", func() {
		if err := b.Publish(context.Background(), "out/probe", []byte("p"), 0, false, 0); err != nil {
			t.Errorf("publish probe: %v", err)
		}
	})
	agentPublish(t, b, "out/fan", "on", 1, 4)
	for _, ev := range sink.until(t, "out/fan") {
		if ev.Subject == "out/fan" && ev.Depth != 4 {
			t.Errorf("agent publish at depth 4 reached the sink at depth %d", ev.Depth)
		}
	}
	for l := range lines {
		if strings.HasPrefix(l, "out/fan ") {
			if l != "out/fan on|" {
				t.Errorf("v5 subscriber got %q, want the message without the depth property", l)
			}
			break
		}
	}
	mosqPub(t, b.Addr(), "out/dev", "x", 1, "-V", "5", "-D", "publish", "user-property", depthProperty, "99")
	for _, ev := range sink.until(t, "out/dev") {
		if ev.Subject == "out/dev" && ev.Depth != 0 {
			t.Errorf("a device set its own chain depth: %d", ev.Depth)
		}
	}
}

// Through mosquitto (MQTT 3.1.1, no user properties) the agent's own
// publish comes back with its depth from the trigger's marks; the same
// topic and payload from a device is depth 0, and publishes to topics the
// trigger does not subscribe to leave no mark.
func TestMQTTCarriesChainDepth(t *testing.T) {
	broker := mosquittotest.Start(t)
	sink := newRecSink(nil)
	m := newTestMQTT(t, broker.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"loop/#", 1}})
	agentPublish(t, m, "elsewhere/x", "x", 1, 2)
	if st := m.Status(); st.ChainMarks != 0 {
		t.Errorf("a publish to an unsubscribed topic left %d marks", st.ChainMarks)
	}
	agentPublish(t, m, "loop/a", "x", 1, 3)
	if ev := sink.next(t); ev.Subject != "loop/a" || ev.Depth != 3 {
		t.Fatalf("own publish came back as %s at depth %d, want loop/a at 3", ev.Subject, ev.Depth)
	}
	mosqPub(t, broker.Addr(), "loop/a", "x", 1)
	if ev := sink.next(t); ev.Subject != "loop/a" || ev.Depth != 0 {
		t.Fatalf("device message: %s at depth %d, want loop/a at 0", ev.Subject, ev.Depth)
	}
	waitFor(t, "no marks left", func() bool { return m.Status().ChainMarks == 0 })
}

// A QoS 1 message the sink refused keeps its depth for the redelivery.
func TestMQTTChainDepthSurvivesRedelivery(t *testing.T) {
	broker := mosquittotest.Start(t)
	var refused atomic.Bool
	sink := newRecSink(func(edgefn.Event) error {
		if refused.CompareAndSwap(false, true) {
			return errors.New("not now")
		}
		return nil
	})
	m := newTestMQTT(t, broker.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"loop/#", 1}})
	agentPublish(t, m, "loop/b", "y", 1, 5)
	if ev := sink.next(t); ev.Depth != 5 || !refused.Load() {
		t.Fatalf("redelivered own publish at depth %d (refused once: %v), want 5", ev.Depth, refused.Load())
	}
}
