package gateway

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/triggers"
)

// sseEvent is one server-sent event as a client reads it.
type sseEvent = api.Event

// readEvents reads server-sent events from r until it ends, sending each on
// the returned channel (closed at the end of the stream).
func readEvents(resp *http.Response) <-chan sseEvent {
	ch := make(chan sseEvent, 64)
	go func() {
		defer close(ch)
		_ = api.ReadEvents(resp.Body, func(ev api.Event) error { ch <- ev; return nil })
	}()
	return ch
}

func nextEvent(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream ended")
		}
		return ev
	case <-time.After(30 * time.Second):
		t.Fatal("no event within 30s")
	}
	return sseEvent{}
}

// GET /v1/traffic streams the MQTT messages the embedded broker sees on a
// filter: the kept ones first, then new ones, as text or base64, cut at
// 1 KiB; it takes the bearer token only, refuses a bad filter, and its
// stream ends when the agent shuts down.
func TestTrafficAPI(t *testing.T) {
	ta, _ := agentWithFunction(t, "alpha", "triggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "echo.wasm")
	dev := pahoClient(t, ta.ready.BrokerAddr, "traffic-device", true)
	publish := func(topic string, qos byte, payload []byte) {
		t.Helper()
		if tok := dev.Publish(topic, qos, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %s: %v", topic, tok.Error())
		}
	}
	publish("sensors/kitchen/temp", 1, []byte(`{"t":21}`)) // kept before the stream opens
	publish("lights/hall", 1, []byte("on"))

	if code, body := ta.api(t, "GET", "/v1/traffic?filter=sensors/%23/x", nil); code != http.StatusBadRequest || !strings.Contains(string(body), "sensors/#/x") {
		t.Errorf("bad filter: %d %s", code, body)
	}
	if resp := ta.get(t, "/v1/traffic"); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("no token: %d", resp.StatusCode)
	}

	resp := adminDo(t, "GET", ta.ready.AdminURL+"/v1/traffic?filter=sensors/%23&n=5", ta.token, nil, 0)
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || !strings.HasPrefix(ct, "text/event-stream") {
		t.Fatalf("stream: %d %s", resp.StatusCode, ct)
	}
	events := readEvents(resp)
	decode := func(ev sseEvent) TrafficMessage {
		t.Helper()
		var m TrafficMessage
		if ev.Name != "message" {
			t.Fatalf("event %q, want message", ev.Name)
		}
		if err := json.Unmarshal([]byte(ev.Data), &m); err != nil {
			t.Fatal(err)
		}
		if ev.ID != fmt.Sprint(m.Seq) {
			t.Errorf("event id %s, seq %d", ev.ID, m.Seq)
		}
		return m
	}
	if m := decode(nextEvent(t, events)); m.Topic != "sensors/kitchen/temp" || m.Payload != `{"t":21}` || m.QoS != 1 {
		t.Errorf("kept message %+v", m)
	}
	publish("lights/hall", 0, []byte("off"))
	publish("sensors/porch/temp", 0, []byte{0xff, 0xfe})
	publish("sensors/big/temp", 1, []byte(strings.Repeat("é", 1500))) // 3000 bytes, cut inside a rune
	if m := decode(nextEvent(t, events)); m.Topic != "sensors/porch/temp" || m.Payload != "" || m.PayloadB64 != "//4=" || m.QoS != 0 {
		t.Errorf("binary message %+v", m)
	}
	m := decode(nextEvent(t, events))
	if m.Topic != "sensors/big/temp" || !m.Truncated || m.Size != 3000 || m.Payload != strings.Repeat("é", 512) {
		t.Errorf("big message: topic %s truncated %v size %d payload %d bytes", m.Topic, m.Truncated, m.Size, len(m.Payload))
	}

	// Shutting the agent down ends the stream (http.Server.Shutdown would
	// otherwise wait for it through the whole grace period).
	ta.stop(t)
	ended := make(chan struct{})
	go func() {
		for range events {
		}
		close(ended)
	}()
	select {
	case <-ended:
	case <-time.After(30 * time.Second):
		t.Fatal("the traffic stream is still open after the agent stopped")
	}
}

// The tap keeps the last tapSize messages, hands a new stream the last n
// that match its filter, bounds the streams and counts what a slow one
// missed.
func TestTapBounds(t *testing.T) {
	var tp tap
	for i := range tapSize + 10 {
		tp.observe(triggers.Seen{Topic: fmt.Sprintf("t/%d", i%2), Payload: []byte(fmt.Sprint(i))})
	}
	last, w, err := tp.watch("t/1", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(last) != 3 || last[0].Payload != fmt.Sprint(tapSize+5) || last[2].Payload != fmt.Sprint(tapSize+9) {
		t.Errorf("last 3 on t/1 = %+v", last)
	}
	all, w2, _ := tp.watch("#", tapSize*2)
	if len(all) != tapSize || all[0].Seq != 11 {
		t.Errorf("kept %d messages from seq %d, want %d from 11", len(all), all[0].Seq, tapSize)
	}
	tp.unwatch(w2)
	for range tapWatcherBuf + 5 {
		tp.observe(triggers.Seen{Topic: "t/1"})
	}
	if missed := tp.takeMissed(w); missed != 5 {
		t.Errorf("missed %d, want 5", missed)
	}
	var ws []*tapWatcher
	for range tapWatchers - 1 {
		_, x, err := tp.watch("#", 0)
		if err != nil {
			t.Fatal(err)
		}
		ws = append(ws, x)
	}
	if _, _, err := tp.watch("#", 0); err != errTooManyWatchers {
		t.Errorf("watcher %d: %v, want errTooManyWatchers", tapWatchers+1, err)
	}
	tp.unwatch(ws[0])
	if _, _, err := tp.watch("#", 0); err != nil {
		t.Errorf("after one left: %v", err)
	}
	if n, _ := tp.stats(time.Now()); n != tapSize+10+tapWatcherBuf+5 {
		t.Errorf("seen %d", n)
	}
}

// The history counts per second and per minute, forgets what is older
// than its window, and reads p99 from its buckets.
func TestHistory(t *testing.T) {
	var h history
	t0 := time.Unix(1_800_000_000, 0) // a minute boundary
	for i := range 100 {
		h.add(t0.Add(time.Duration(i)*10*time.Millisecond), time.Millisecond, i == 0)
	}
	h.add(t0.Add(2*time.Second), 100*time.Millisecond, false)
	if r := h.rate(t0.Add(5 * time.Second)); r != 10.1 {
		t.Errorf("rate = %v, want 10.1 (101 events in 10 s)", r)
	}
	if r := h.rate(t0.Add(20 * time.Second)); r != 0 {
		t.Errorf("rate after 20 s = %v", r)
	}
	hour := h.lastHour(t0.Add(30 * time.Second))
	cur := hour[len(hour)-1]
	if len(hour) != histMinutes || cur.Events != 101 || cur.Failures != 1 || !cur.Start.Equal(t0) {
		t.Errorf("current minute %+v of %d", cur, len(hour))
	}
	if cur.P99 < time.Millisecond || cur.P99 > 1300*time.Microsecond {
		t.Errorf("p99 of 100×1ms + 1×100ms = %v, want the 1 ms bucket", cur.P99)
	}
	later := h.lastHour(t0.Add(61 * time.Minute))
	for _, m := range later {
		if m.Events != 0 {
			t.Errorf("an hour later, minute %v still has %d events", m.Start, m.Events)
		}
	}
	h.add(t0.Add(90*time.Minute), time.Second, false)
	if got := h.lastHour(t0.Add(90 * time.Minute)); got[len(got)-1].Events != 1 {
		t.Errorf("a reused slot kept old counts: %+v", got[len(got)-1])
	}
}

// The tap's cost per MQTT message (it runs in the broker's OnPublish, on
// the hot path), with no stream open and with one on a filter that
// matches.
func BenchmarkTapObserve(b *testing.B) {
	payload := []byte(`{"id":"kitchen","celsius":21.5,"humidity":40,"battery":3.1,"seq":123456,"ts":1800000000}`)
	seen := triggers.Seen{Topic: "sensors/kitchen/temperature", Payload: payload, QoS: 1}
	for _, watchers := range []int{0, 1} {
		b.Run(fmt.Sprintf("streams=%d", watchers), func(b *testing.B) {
			var tp tap
			if watchers > 0 {
				_, w, _ := tp.watch("sensors/#", 0)
				go func() {
					for range w.ch {
					}
				}()
				defer close(w.ch)
			}
			b.ReportAllocs()
			for b.Loop() {
				tp.observe(seen)
			}
		})
	}
}
