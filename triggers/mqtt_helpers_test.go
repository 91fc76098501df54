package triggers

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
)

// testTimeout bounds every wait in these tests.
const testTimeout = 20 * time.Second

// recSink records delivered events; fail, if set, may refuse one.
type recSink struct {
	ch   chan edgefn.Event
	fail func(edgefn.Event) error
}

func newRecSink(fail func(edgefn.Event) error) *recSink {
	return &recSink{ch: make(chan edgefn.Event, 100000), fail: fail}
}

func (s *recSink) Deliver(ctx context.Context, ev edgefn.Event) error {
	if s.fail != nil {
		if err := s.fail(ev); err != nil {
			return err
		}
	}
	s.ch <- ev
	return nil
}

// next waits for the next delivered event.
func (s *recSink) next(t *testing.T) edgefn.Event {
	t.Helper()
	select {
	case ev := <-s.ch:
		return ev
	case <-time.After(testTimeout):
		t.Fatal("no event delivered within", testTimeout)
		return edgefn.Event{}
	}
}

// until collects events up to and including the first on topic.
func (s *recSink) until(t *testing.T, topic string) []edgefn.Event {
	t.Helper()
	var evs []edgefn.Event
	for {
		ev := s.next(t)
		evs = append(evs, ev)
		if ev.Subject == topic {
			return evs
		}
	}
}

// waitFor polls cond until it holds, failing the test after testTimeout.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, testTimeout, what, cond)
}

// runMQTT runs m until the returned stop is called (or the test ends).
func runMQTT(t *testing.T, m *MQTT) (stop func()) {
	t.Helper()
	return testutil.Run(t, m.Run)
}

// waitSubscribed waits until m is connected with n filters subscribed.
func waitSubscribed(t *testing.T, m *MQTT, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d subscriptions", n), func() bool {
		st := m.Status()
		return st.Connected && st.Subscribed == n
	})
}

// subscribe sets the filters of m (an MQTT trigger or the embedded broker),
// failing the test if they are refused.
func subscribe(t *testing.T, m interface{ SetSubscriptions([]Subscription) error }, subs []Subscription) {
	t.Helper()
	if err := m.SetSubscriptions(subs); err != nil {
		t.Fatal(err)
	}
}

// runSubscribed sets m's filters, runs m and waits until all of them are
// subscribed; stop is runMQTT's.
func runSubscribed(t *testing.T, m *MQTT, subs []Subscription) (stop func()) {
	t.Helper()
	subscribe(t, m, subs)
	stop = runMQTT(t, m)
	waitSubscribed(t, m, len(subs))
	return stop
}

// publisher is what the MQTT trigger and the embedded broker share for the
// agent's own publishes.
type publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, depth int) error
}

// agentPublish publishes through p as a function's effect does (not
// retained) at chain depth depth, failing the test on an error.
func agentPublish(t *testing.T, p publisher, topic, payload string, qos byte, depth int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	defer cancel()
	if err := p.Publish(ctx, topic, []byte(payload), qos, false, depth); err != nil {
		t.Fatal(err)
	}
}

// mosqPub publishes one message with mosquitto_pub.
func mosqPub(t *testing.T, addr, topic, payload string, qos int, extra ...string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := append([]string{"-h", host, "-p", port, "-t", topic, "-m", payload, "-q", strconv.Itoa(qos)}, extra...)
	out, err := exec.Command("mosquitto_pub", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("mosquitto_pub %v: %v: %s", args, err, out)
	}
}

// mosqSub runs mosquitto_sub -v on topics and returns its output lines
// ("topic payload").
func mosqSub(t *testing.T, addr string, extra []string, topics ...string) <-chan string {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-v", "-q", "1"}
	for _, tp := range topics {
		args = append(args, "-t", tp)
	}
	args = append(args, extra...)
	cmd := exec.Command("mosquitto_sub", args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto_sub: %v", err)
	}
	lines := make(chan string, 1000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill(); <-done; _ = cmd.Wait() })
	return lines
}

// mosqSubReady is mosqSub that returns once the subscription is in place:
// a QoS 0 message to probe, sent with mosquitto_pub, came through.
func mosqSubReady(t *testing.T, addr, probe string, topics ...string) <-chan string {
	t.Helper()
	lines := mosqSub(t, addr, nil, topics...)
	waitSubReady(t, lines, probe, func() { mosqPub(t, addr, probe, "p", 0) })
	return lines
}

// waitSubReady publishes to probe until the subscriber prints it, so the
// subscription is known to be in place.
func waitSubReady(t *testing.T, lines <-chan string, probe string, publish func()) {
	t.Helper()
	deadline := time.After(testTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	publish()
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, probe+" ") {
				return
			}
		case <-tick.C:
			publish()
		case <-deadline:
			t.Fatal("mosquitto_sub never saw the probe on", probe)
		}
	}
}

// device is a paho client acting as a sensor.
func device(t *testing.T, url, id string, clean bool) mqtt.Client {
	t.Helper()
	return testutil.MQTTClient(t, url, id, func(o *mqtt.ClientOptions) {
		o.SetCleanSession(clean).SetAutoReconnect(true).SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond).
			SetMaxReconnectInterval(time.Second).SetOrderMatters(false)
	})
}

func devicePublish(t *testing.T, c mqtt.Client, topic, payload string, qos byte) {
	t.Helper()
	tok := c.Publish(topic, qos, false, payload)
	if !tok.WaitTimeout(testTimeout) {
		t.Fatalf("publish %q: no PUBACK within %v", topic, testTimeout)
	}
	if err := tok.Error(); err != nil {
		t.Fatalf("publish %q: %v", topic, err)
	}
}

// deviceUsers are two devices, each confined to its own topics.
var deviceUsers = []BrokerUser{
	{Username: "sensor1", Password: "change-me", Publish: []string{"sensors/%u/#"}, Subscribe: []string{"actuators/%u/#"}},
	{Username: "sensor2", Password: "pw2", Publish: []string{"sensors/%u/#"}, Subscribe: []string{"actuators/%u/#"}},
}

// userClient connects a paho client as user (MQTT 3.1.1, no retry) and
// returns it with the connection error.
func userClient(t *testing.T, url, id, user, pass string, opts ...func(*mqtt.ClientOptions)) (mqtt.Client, error) {
	t.Helper()
	return testutil.MQTTDial(t, url, id, append([]func(*mqtt.ClientOptions){func(o *mqtt.ClientOptions) {
		o.SetUsername(user).SetPassword(pass).SetProtocolVersion(4).SetAutoReconnect(false).SetConnectTimeout(5 * time.Second)
	}}, opts...)...)
}

// toChan is a client option sending every message received, as "topic
// payload", to got (once, however many subscriptions match).
func toChan(got chan<- string) func(*mqtt.ClientOptions) {
	return func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- m.Topic() + " " + string(m.Payload()) })
	}
}

// subscribeResult subscribes and returns the granted QoS (0x80: refused).
// Messages go to the client's default handler (see toChan).
func subscribeResult(t *testing.T, c mqtt.Client, filter string) byte {
	t.Helper()
	tok := c.Subscribe(filter, 1, nil)
	if !tok.WaitTimeout(testTimeout) {
		t.Fatalf("subscribe %q: no SUBACK", filter)
	}
	return tok.(*mqtt.SubscribeToken).Result()[filter]
}

// waitLine waits for a line starting with prefix.
func waitLine(t *testing.T, lines <-chan string, prefix string) {
	t.Helper()
	deadline := time.After(testTimeout)
	for {
		select {
		case l := <-lines:
			if strings.HasPrefix(l, prefix) {
				return
			}
		case <-deadline:
			t.Fatalf("no line %q within %v", prefix, testTimeout)
		}
	}
}

// drain returns the events delivered so far.
func drain(s *recSink) []edgefn.Event {
	var evs []edgefn.Event
	for {
		select {
		case ev := <-s.ch:
			evs = append(evs, ev)
		default:
			return evs
		}
	}
}
