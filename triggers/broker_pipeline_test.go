package triggers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/rawmqtt"
	"github.com/mochi-mqtt/server/v2/packets"
)

// asyncSink is an AsyncSink that holds the durable callback of every QoS 1
// message until the test answers it; QoS 0 messages are taken at once.
type asyncSink struct {
	mu   sync.Mutex
	held []held
	more chan struct{}
}

type held struct {
	ev      edgefn.Event
	durable func(error)
}

func newAsyncSink() *asyncSink { return &asyncSink{more: make(chan struct{}, 1)} }

func (s *asyncSink) Deliver(context.Context, edgefn.Event) error { return nil }

func (s *asyncSink) DeliverAsync(_ context.Context, ev edgefn.Event, durable func(error)) {
	s.mu.Lock()
	s.held = append(s.held, held{ev, durable})
	s.mu.Unlock()
	select {
	case s.more <- struct{}{}:
	default:
	}
}

// wait returns the first n held messages once the sink holds n.
func (s *asyncSink) wait(t *testing.T, n int) []held {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		s.mu.Lock()
		if len(s.held) >= n {
			h := append([]held(nil), s.held[:n]...)
			s.mu.Unlock()
			return h
		}
		got := len(s.held)
		s.mu.Unlock()
		select {
		case <-s.more:
		case <-deadline:
			t.Fatalf("the sink holds %d messages, want %d", got, n)
		}
	}
}

// subscriberSaw collects what a mosquitto_sub printed up to the line end,
// leaving out the probes.
func subscriberSaw(t *testing.T, lines <-chan string, end string) []string {
	t.Helper()
	var seen []string
	deadline := time.After(testTimeout)
	for {
		select {
		case l := <-lines:
			if l == end {
				return seen
			}
			if !strings.Contains(l, "probe") {
				seen = append(seen, l)
			}
		case <-deadline:
			t.Fatalf("subscriber saw %q, never %q", seen, end)
		}
	}
}

// TestBrokerPipelinesQoS1: a device's QoS 1 messages all reach an
// AsyncSink before any is durable (the broker reads on while they commit);
// none is acknowledged before its commit; committed in reverse order, they
// are acknowledged and forwarded in the order the device published them,
// with an unmatched message published after them still behind them.
func TestBrokerPipelinesQoS1(t *testing.T) {
	sink := newAsyncSink()
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 1}})
	lines := mosqSubReady(t, b.Addr(), "in/probe", "in/#", "other/#")
	dev := device(t, "tcp://"+b.Addr(), "dev-pipeline", true)

	const n = 8
	var toks []mqtt.Token
	for i := range n {
		toks = append(toks, dev.Publish("in/a", 1, false, fmt.Sprint(i)))
	}
	toks = append(toks, dev.Publish("other/x", 1, false, "after"))
	h := sink.wait(t, n)
	for i, m := range h {
		if string(m.ev.Payload) != fmt.Sprint(i) {
			t.Fatalf("sink got %q as message %d", m.ev.Payload, i)
		}
	}
	for i := n - 1; i >= 1; i-- {
		h[i].durable(nil)
	}
	for i, tok := range toks {
		select {
		case <-tok.Done():
			t.Fatalf("message %d acknowledged while message 0 was not durable", i)
		default:
		}
	}
	h[0].durable(nil)
	for i, tok := range toks {
		if !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
	}
	mosqPub(t, b.Addr(), "other/end", "e", 1)
	seen := subscriberSaw(t, lines, "other/end e")
	want := []string{"in/a 0", "in/a 1", "in/a 2", "in/a 3", "in/a 4", "in/a 5", "in/a 6", "in/a 7", "other/x after"}
	if strings.Join(seen, ",") != strings.Join(want, ",") {
		t.Fatalf("subscriber saw %q, want %q", seen, want)
	}
	if st := b.Status(); st.Delivered < n {
		t.Errorf("status %+v, want at least %d delivered", st, n)
	}
}

// TestBrokerPipelineFailure: of three pipelined messages the second fails
// to commit: the first is acknowledged and forwarded, the device is
// disconnected without a PUBACK for the second and third, resends both
// when it reconnects, and the subscriber sees each message once.
func TestBrokerPipelineFailure(t *testing.T) {
	sink := newAsyncSink()
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 1}})
	lines := mosqSubReady(t, b.Addr(), "in/probe", "in/#")
	dev := device(t, "tcp://"+b.Addr(), "dev-pipeline-fail", false) // persistent session: resends

	for i := range 3 {
		dev.Publish("in/a", 1, false, fmt.Sprint(i))
	}
	h := sink.wait(t, 3)
	h[2].durable(nil)
	h[1].durable(errors.New("disk full"))
	h[0].durable(nil)
	// The resent two arrive again, marked duplicate (paho resends in no
	// particular order).
	var resent []string
	for _, m := range sink.wait(t, 5)[3:] {
		if m.ev.Meta["duplicate"] != "true" {
			t.Errorf("resent message %q not marked duplicate", m.ev.Payload)
		}
		resent = append(resent, string(m.ev.Payload))
		m.durable(nil)
	}
	if slices.Sort(resent); strings.Join(resent, ",") != "1,2" {
		t.Errorf("resent %q, want 1 and 2", resent)
	}
	mosqPub(t, b.Addr(), "in/end", "e", 0) // QoS 0: the sink takes it at once
	seen := subscriberSaw(t, lines, "in/end e")
	if slices.Sort(seen); strings.Join(seen, ",") != "in/a 0,in/a 1,in/a 2" {
		t.Errorf("subscriber saw %q, want in/a 0, 1, 2 once each", seen)
	}
	if st := b.Status(); st.Rejected != 1 || st.Failed != 1 {
		t.Errorf("status %+v, want 1 rejected, 1 failed", st)
	}
}

// TestBrokerPipelineWindow: a connection has at most maxPipelined messages
// waiting for their commit; the device's next message is read once the
// first is durable.
func TestBrokerPipelineWindow(t *testing.T) {
	sink := newAsyncSink()
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 1}})
	dev := device(t, "tcp://"+b.Addr(), "dev-window", true)
	for i := range maxPipelined + 8 {
		dev.Publish("in/a", 1, false, fmt.Sprint(i))
	}
	h := sink.wait(t, maxPipelined)
	time.Sleep(100 * time.Millisecond) // room for a wrong broker to read on
	sink.mu.Lock()
	got := len(sink.held)
	sink.mu.Unlock()
	if got != maxPipelined {
		t.Fatalf("%d messages waiting for their commit, want the window of %d", got, maxPipelined)
	}
	h[0].durable(nil)
	next := sink.wait(t, maxPipelined+1)[maxPipelined]
	if string(next.ev.Payload) != fmt.Sprint(maxPipelined) {
		t.Fatalf("after the first commit the sink got %q", next.ev.Payload)
	}
}

// TestPipelineBytes: past maxPipelinedBytes of payload a connection's next
// message waits (a larger one passes when alone), and add gives up when
// ctx ends.
func TestPipelineBytes(t *testing.T) {
	p := newPipeline(nil, &eventHook{}, maxPipelined)
	pk := func(id uint16, size int) packets.Packet {
		return packets.Packet{PacketID: id, TopicName: "in/a", Payload: make([]byte, size)}
	}
	if p.add(context.Background(), pk(1, maxPipelinedBytes+1)) == nil {
		t.Fatal("a message larger than the byte budget refused while alone")
	}
	ctx, cancel := context.WithCancel(context.Background())
	added := make(chan *pendingPublish, 1)
	go func() { added <- p.add(ctx, pk(2, 1)) }()
	select {
	case <-added:
		t.Fatal("a message taken past the byte budget")
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	if got := <-added; got != nil {
		t.Fatal("add returned a message after its context ended")
	}
}

// TestPipelineInjected: only the very packet being injected passes: a
// device's packet with the same id and the same bytes does not.
func TestPipelineInjected(t *testing.T) {
	p := newPipeline(nil, &eventHook{}, 4)
	for _, payload := range []string{"reading", ""} {
		pp := p.add(context.Background(), packets.Packet{PacketID: 7, TopicName: "in/a", Payload: []byte(payload)})
		p.injecting.Store(pp)
		own := pp.pk
		if !p.injected(&own) {
			t.Errorf("payload %q: the injected packet was not recognised", payload)
		}
		forged := packets.Packet{PacketID: 7, TopicName: "in/a", Payload: []byte(payload)}
		if p.injected(&forged) {
			t.Errorf("payload %q: a device's packet with the same id and bytes passed as injected", payload)
		}
		if own.Properties.TopicAliasFlag || own.Properties.TopicAlias != 0 {
			t.Error("the withheld packet keeps its topic alias")
		}
		p.injecting.Store(nil)
		if p.injected(&own) {
			t.Error("recognised while nothing is injected")
		}
	}
}

// serialSink answers every QoS 1 message, in order, from one goroutine of
// its own, as the outbox's completion goroutine does.
type serialSink struct{ answers chan func(error) }

func newSerialSink(t *testing.T) *serialSink {
	s := &serialSink{answers: make(chan func(error), 1024)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for durable := range s.answers {
			durable(nil)
		}
	}()
	t.Cleanup(func() { close(s.answers); <-done })
	return s
}

func (s *serialSink) Deliver(context.Context, edgefn.Event) error { return nil }

func (s *serialSink) DeliverAsync(_ context.Context, _ edgefn.Event, durable func(error)) {
	s.answers <- durable
}

// TestBrokerPipelineDeviceNotReading: a device that publishes and never
// reads its socket (each PUBACK echoes its 60 KB of MQTT 5 user
// properties, so its socket fills at once) holds up its own connection
// only: the goroutine that answers commits does not write PUBACKs, so
// another device's messages are acknowledged.
func TestBrokerPipelineDeviceNotReading(t *testing.T) {
	b := startBroker(t, BrokerConfig{}, newSerialSink(t))
	subscribe(t, b, []Subscription{{"in/#", 1}})

	c, err := net.Dial("tcp", b.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	_ = c.SetWriteDeadline(time.Now().Add(testTimeout))
	if _, err := c.Write(rawmqtt.Connect5("deaf")); err != nil {
		t.Fatal(err)
	}
	sent := make(chan error, 1)
	go func() { sent <- deafPublish(c, "in/deaf", 400) }()
	waitFor(t, "the deaf device's connection full", func() bool {
		cl, ok := b.srv.Clients.Get("deaf")
		if !ok {
			return false
		}
		p := b.events.pipes.get(cl)
		if p == nil {
			return false
		}
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.pending) == p.window
	})

	dev := device(t, "tcp://"+b.Addr(), "dev-reads", true)
	for i := range 5 {
		devicePublish(t, dev, "in/ok", fmt.Sprint(i), 1)
	}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	default:
	}
}

// deafPublish publishes n QoS 1 messages on c whose PUBACKs each echo
// 60 KB of MQTT 5 user properties: more acknowledgement bytes than the
// socket buffers hold, for a client that never reads. The broker stops
// reading it once its window is full, so the writes end blocked: run it
// aside. An error writing (the broker closed the connection at the end of
// the test) ends it quietly.
func deafPublish(c net.Conn, topic string, n int) error {
	for i := range n {
		if _, err := c.Write(rawmqtt.PublishPadded5(topic, uint16(i+1), []byte("x"), 60<<10)); err != nil {
			return nil
		}
	}
	return nil
}

// TestMQTTPipelinesQoS1: with an AsyncSink the external trigger hands a
// topic's next QoS 1 message to the sink while the previous ones commit;
// committed in reverse order they are all acknowledged (a new run of the
// same session gets none of them again).
func TestMQTTPipelinesQoS1(t *testing.T) {
	b := mosquittotest.Start(t)
	sink := newAsyncSink()
	m := newTestMQTT(t, b.URL(), sink, nil)
	stop := runSubscribed(t, m, []Subscription{{"in/#", 1}})
	dev := device(t, b.URL(), "pipeline-ext-dev", true)
	const n = 8
	for i := range n {
		devicePublish(t, dev, "in/a", fmt.Sprint(i), 1)
	}
	h := sink.wait(t, n)
	for i, m := range h {
		if string(m.ev.Payload) != fmt.Sprint(i) {
			t.Fatalf("sink got %q as message %d", m.ev.Payload, i)
		}
	}
	for i := n - 1; i >= 0; i-- {
		h[i].durable(nil)
	}
	waitFor(t, "all acknowledged", func() bool { return m.Status().Delivered == n })
	stop()

	rec := newRecSink(nil)
	m2 := newTestMQTT(t, b.URL(), rec, nil)
	runSubscribed(t, m2, []Subscription{{"in/#", 1}})
	mosqPub(t, b.Addr(), "in/end", "", 1)
	for _, ev := range rec.until(t, "in/end") {
		if ev.Subject != "in/end" {
			t.Errorf("after the commits and a restart got %s %q again", ev.Subject, ev.Payload)
		}
	}
}

// TestMQTTPipelineFailure: of three pipelined messages of a topic the
// second fails to commit: the first is acknowledged; the second and the
// third (committed, but behind it) are not, and the broker resends both,
// in order, after the forced reconnect.
func TestMQTTPipelineFailure(t *testing.T) {
	b := mosquittotest.Start(t)
	sink := newAsyncSink()
	m := newTestMQTT(t, b.URL(), sink, nil)
	runSubscribed(t, m, []Subscription{{"in/#", 1}})
	dev := device(t, b.URL(), "pipeline-ext-fail", true)
	for i := range 3 {
		devicePublish(t, dev, "in/a", fmt.Sprint(i), 1)
	}
	h := sink.wait(t, 3)
	h[2].durable(nil)
	h[1].durable(errors.New("disk full"))
	h[0].durable(nil)
	again := sink.wait(t, 5)[3:]
	for i, a := range again {
		if string(a.ev.Payload) != fmt.Sprint(i+1) || a.ev.Meta["duplicate"] != "true" {
			t.Errorf("redelivered message %d: %q duplicate=%s, want %d again", i, a.ev.Payload, a.ev.Meta["duplicate"], i+1)
		}
		a.durable(nil)
	}
	// Delivered: 0, 2 (committed, not acknowledged), then 1 and 2 again.
	waitFor(t, "the redelivered ones committed", func() bool { return m.Status().Delivered == 4 })
	if st := m.Status(); st.ForcedReconnects < 1 || st.Failed != 1 {
		t.Errorf("status %+v: want a forced reconnect, 1 failed", st)
	}
}
