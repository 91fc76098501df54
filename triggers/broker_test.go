package triggers

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

func startBroker(t testing.TB, cfg BrokerConfig, sink Sink) *Broker {
	t.Helper()
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	b, err := NewBroker(cfg, sink, nil)
	if err != nil {
		t.Fatalf("NewBroker: %v", err)
	}
	if err := b.Start(); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := b.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func TestBrokerConfigValidate(t *testing.T) {
	err := BrokerConfig{
		Listen: "nope",
		Users: []BrokerUser{
			{Username: "", Password: "x"},
			{Username: "a", Password: ""},
			{Username: "b", Password: "$7$abc$x$y"},
			{Username: "c", Password: "p"}, {Username: "c", Password: "q"},
		},
		ReadBuffer: 16,
	}.Validate()
	for _, w := range []string{"listen", "users[0].username", "users[1].password", "users[2].password", "iteration", "users[4].username: \"c\": listed twice",
		"read_buffer: 16B: use 256B to 64KiB"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %q", err, w)
		}
	}
}

func TestBrokerConfigValidateLimits(t *testing.T) {
	err := BrokerConfig{
		Users:          []BrokerUser{{Username: "a", Password: "p", Publish: []string{"x/#/y"}}},
		Anonymous:      BrokerACL{Subscribe: []string{"a+"}},
		MaxPacketSize:  -1,
		MaxConnectSize: 10,
		MaxClients:     -1,
		TLS:            BrokerTLS{CertFile: "c", ClientCerts: "always"},
	}.Validate()
	for _, w := range []string{"users[0].publish[0]", "anonymous.subscribe[0]", "max_packet_size", "max_connect_size", "max_clients", "set cert_file and key_file", "client_certs: \"always\"", "no tls.listen"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("Validate() = %v, want it to mention %q", err, w)
		}
	}
	if err := (BrokerConfig{Users: []BrokerUser{{Username: "c"}}, TLS: BrokerTLS{Listen: ":0", ClientCAFile: "ca.pem"}}).Validate(); err != nil {
		t.Errorf("certificate-only user: %v", err)
	}
}

func TestBrokerRoutingQoS(t *testing.T) {
	sink := newRecSink(nil)
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"sensors/+/temp", 1}, {"alarms/#", 0}, {"end", 0}})
	mosqPub(t, b.Addr(), "sensors/a/temp", "21.5", 1)
	mosqPub(t, b.Addr(), "sensors/a/b/temp", "no", 1)
	mosqPub(t, b.Addr(), "alarms/x/y", "fire", 0)
	mosqPub(t, b.Addr(), "other", "no", 1)
	mosqPub(t, b.Addr(), "alarms/r", "kept", 1, "-r")
	mosqPub(t, b.Addr(), "end", "", 1)
	got := map[string]edgefn.Event{}
	for _, ev := range sink.until(t, "end") {
		got[ev.Subject] = ev
	}
	if len(got) != 4 {
		t.Errorf("delivered %v, want sensors/a/temp alarms/x/y alarms/r end", keys(got))
	}
	for topic, want := range map[string][3]string{
		"sensors/a/temp": {"21.5", "1", "false"}, "alarms/x/y": {"fire", "0", "false"}, "alarms/r": {"kept", "1", "true"},
	} {
		ev := got[topic]
		if string(ev.Payload) != want[0] || ev.Meta["qos"] != want[1] || ev.Meta["retain"] != want[2] || ev.Meta[MetaOrigin] != "" {
			t.Errorf("%s: %+v, want payload/qos/retain %v", topic, ev, want)
		}
	}
}

// TestBrokerPubackAfterCommit: a device's QoS 1 publish token completes
// only after Sink.Deliver returned.
func TestBrokerPubackAfterCommit(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var returned atomic.Bool
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		close(entered)
		<-release
		returned.Store(true)
		return nil
	})
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 1}})
	dev := device(t, "tcp://"+b.Addr(), "dev-puback", true)
	tok := dev.Publish("in/x", 1, false, "v")
	select {
	case <-entered:
	case <-time.After(testTimeout):
		t.Fatal("sink not called")
	}
	select {
	case <-tok.Done():
		t.Fatal("PUBACK arrived while the sink was still committing")
	default:
	}
	close(release)
	if !tok.WaitTimeout(testTimeout) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if !returned.Load() {
		t.Fatal("PUBACK before the sink returned")
	}
}

// TestBrokerFailedDeliverNotAcked: the sink refuses a QoS 1 message; the
// device gets no PUBACK, is disconnected, resends on reconnect, and
// subscribers see the message once, after it was committed.
func TestBrokerFailedDeliverNotAcked(t *testing.T) {
	var attempts atomic.Int32
	sink := newRecSink(func(ev edgefn.Event) error {
		if ev.Subject == "in/x" && attempts.Add(1) == 1 {
			return errors.New("commit failed")
		}
		return nil
	})
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 1}})
	lines := mosqSubReady(t, b.Addr(), "in/probe", "in/#")

	dev := device(t, "tcp://"+b.Addr(), "dev-retry", false) // persistent session: resends on reconnect
	devicePublish(t, dev, "in/x", "v", 1)
	var ev edgefn.Event
	for ev = sink.next(t); ev.Subject != "in/x"; ev = sink.next(t) {
	}
	if ev.Meta["duplicate"] != "true" {
		t.Errorf("redelivered event %+v, want duplicate=true", ev)
	}
	if n := attempts.Load(); n != 2 {
		t.Errorf("sink saw in/x %d times, want 2", n)
	}
	if st := b.Status(); st.Rejected != 1 || st.Failed != 1 {
		t.Errorf("status %+v, want 1 rejected, 1 failed", st)
	}
	mosqPub(t, b.Addr(), "in/end", "e", 1)
	var seen []string
	for l := range lines {
		if l == "in/end e" {
			break
		}
		if !strings.HasPrefix(l, "in/probe") {
			seen = append(seen, l)
		}
	}
	if len(seen) != 1 || seen[0] != "in/x v" {
		t.Errorf("subscriber saw %q, want in/x once", seen)
	}
}

func TestBrokerQoS0FailureStillForwarded(t *testing.T) {
	sink := newRecSink(func(ev edgefn.Event) error {
		if ev.Subject == "in/x" {
			return errors.New("queue full")
		}
		return nil
	})
	b := startBroker(t, BrokerConfig{}, sink)
	subscribe(t, b, []Subscription{{"in/#", 0}})
	lines := mosqSubReady(t, b.Addr(), "in/probe", "in/#")
	mosqPub(t, b.Addr(), "in/x", "v", 0)
	for l := range lines {
		if l == "in/x v" {
			break
		}
	}
	if st := b.Status(); st.Failed != 1 || st.Rejected != 0 {
		t.Errorf("status %+v, want 1 failed, 0 rejected", st)
	}
}

func TestBrokerAuth(t *testing.T) {
	pwfile := filepath.Join(t.TempDir(), "pw")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", pwfile, "bob", "hunter2").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	line, err := os.ReadFile(pwfile)
	if err != nil {
		t.Fatal(err)
	}
	_, hash, _ := strings.Cut(strings.TrimSpace(string(line)), ":")
	if out, err := exec.Command("mosquitto_passwd", "-H", "sha512", "-c", "-b", pwfile, "carol", "old").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd -H sha512: %v: %s", err, out)
	}
	line, err = os.ReadFile(pwfile)
	if err != nil {
		t.Fatal(err)
	}
	_, hash6, _ := strings.Cut(strings.TrimSpace(string(line)), ":")
	if !strings.HasPrefix(hash6, "$6$") || !strings.HasPrefix(hash, "$7$") {
		t.Fatalf("mosquitto_passwd wrote %q and %q, want $7$ and $6$ hashes", hash, hash6)
	}
	b := startBroker(t, BrokerConfig{Users: []BrokerUser{
		{Username: "alice", Password: "plain-secret"},
		{Username: "bob", Password: hash},
		{Username: "carol", Password: hash6},
	}}, newRecSink(nil))
	connect := func(user, pass string) error {
		o := mqtt.NewClientOptions().AddBroker("tcp://" + b.Addr()).SetClientID("auth-" + user + pass).
			SetUsername(user).SetPassword(pass).SetConnectTimeout(5 * time.Second)
		c := mqtt.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(testTimeout) {
			return errors.New("connect timed out")
		}
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	for _, tc := range []struct {
		user, pass string
		ok         bool
	}{
		{"alice", "plain-secret", true},
		{"alice", "wrong", false},
		{"bob", "hunter2", true},
		{"bob", "hunter3", false},
		{"carol", "old", true},
		{"carol", "new", false},
		{"mallory", "x", false},
		{"", "", true}, // anonymous from loopback
	} {
		err := connect(tc.user, tc.pass)
		if (err == nil) != tc.ok {
			t.Errorf("connect as %q/%q: %v, want ok=%v", tc.user, tc.pass, err, tc.ok)
		}
	}
	// paho retries a refused MQTT 3.1.1 connect as MQTT 3.1: two per client.
	if st := b.Status(); st.AuthRefused < 4 {
		t.Errorf("status %+v, want at least 4 refused", st)
	}
}

// TestBrokerAnonymousOnlyFromLoopback exercises the auth hook directly: a
// test cannot connect from a non-loopback address portably.
func TestBrokerAnonymousOnlyFromLoopback(t *testing.T) {
	h := &authHook{stats: &brokerStats{}}
	h.Log = slog.New(slog.DiscardHandler)
	anon := packets.Packet{}
	for remote, want := range map[string]bool{
		"127.0.0.1:5000": true, "[::1]:5000": true, "192.168.1.20:5000": false, "[::ffff:127.0.0.1]:1": true,
	} {
		cl := &mqttsrv.Client{Net: mqttsrv.ClientConnection{Remote: remote}}
		if got := h.OnConnectAuthenticate(cl, anon); got != want {
			t.Errorf("anonymous from %s: %v, want %v", remote, got, want)
		}
	}
	h.allowAnonymous = true
	cl := &mqttsrv.Client{Net: mqttsrv.ClientConnection{Remote: "192.168.1.20:5000"}}
	if !h.OnConnectAuthenticate(cl, anon) {
		t.Error("allow_anonymous: remote anonymous refused")
	}
}

// TestBrokerPublishChaining: the agent's publish reaches a mosquitto_sub
// device and, marked as the agent's own, the sink; publishing from inside
// Sink.Deliver (same goroutine) and from another goroutine while a Deliver
// is in progress does not deadlock.
func TestBrokerPublishChaining(t *testing.T) {
	var b *Broker
	var bReady sync.WaitGroup
	bReady.Add(1)
	agentEvents := make(chan edgefn.Event, 10)
	inDeliver := make(chan struct{})
	otherDone := make(chan error, 1)
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		bReady.Wait()
		if ev.Meta[MetaOrigin] == OriginAgent {
			agentEvents <- ev // never blocks on the agent's own events
			return nil
		}
		if ev.Subject == "in/x" {
			// Nested: publish from inside Deliver, in this goroutine.
			if err := b.Publish(ctx, "out/fan", []byte("on"), 1, false, 0); err != nil {
				return err
			}
			// Concurrent: another goroutine publishes while this Deliver waits.
			close(inDeliver)
			go func() { otherDone <- b.Publish(ctx, "out/light", []byte("on"), 0, false, 0) }()
			select {
			case err := <-otherDone:
				return err
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		return nil
	})
	b = startBroker(t, BrokerConfig{}, sink)
	bReady.Done()
	subscribe(t, b, []Subscription{{"in/#", 1}, {"out/#", 1}})
	lines := mosqSub(t, b.Addr(), nil, "out/#")
	waitSubReady(t, lines, "out/probe", func() {
		if err := b.Publish(context.Background(), "out/probe", []byte("p"), 0, false, 0); err != nil {
			t.Errorf("publish probe: %v", err)
		}
	})
	dev := device(t, "tcp://"+b.Addr(), "dev-chain", true)
	devicePublish(t, dev, "in/x", "go", 1)
	want := map[string]bool{"out/fan on": true, "out/light on": true}
	for len(want) > 0 {
		select {
		case l := <-lines:
			delete(want, l)
		case <-time.After(testTimeout):
			t.Fatalf("subscriber still waiting for %v", want)
		}
	}
	seen := map[string]bool{}
	for len(seen) < 2 {
		select {
		case ev := <-agentEvents:
			if ev.Subject != "out/probe" {
				seen[ev.Subject] = true
			}
		case <-time.After(testTimeout):
			t.Fatalf("sink got agent events %v, want out/fan and out/light", seen)
		}
	}
}

func TestBrokerPublishErrors(t *testing.T) {
	b, err := NewBroker(BrokerConfig{Listen: "127.0.0.1:0"}, newRecSink(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := b.Publish(ctx, "a", nil, 0, false, 0); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Publish before Start = %v, want ErrNotRunning", err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "a/+", nil, 0, false, 0); err == nil {
		t.Error("Publish to a wildcard succeeded")
	}
	if err := b.Publish(ctx, "a", nil, 2, false, 0); err == nil {
		t.Error("Publish with qos 2 succeeded")
	}
	if err := b.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "a", nil, 0, false, 0); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Publish after Close = %v, want ErrNotRunning", err)
	}
	if err := b.Close(ctx); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestBrokerCloseCancelsDeliver: Close ends a Deliver in progress and the
// unacknowledged device publish never completes successfully.
func TestBrokerCloseCancelsDeliver(t *testing.T) {
	entered := make(chan struct{})
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		close(entered)
		<-ctx.Done()
		return ctx.Err()
	})
	b, err := NewBroker(BrokerConfig{Listen: "127.0.0.1:0"}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Start(); err != nil {
		t.Fatal(err)
	}
	subscribe(t, b, []Subscription{{"#", 1}})
	dev := testutil.MQTTClient(t, "tcp://"+b.Addr(), "dev-close", func(o *mqtt.ClientOptions) { o.SetAutoReconnect(false) })
	tok := dev.Publish("x", 1, false, "v")
	<-entered
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if tok.WaitTimeout(time.Second) && tok.Error() == nil {
		t.Fatal("device got a PUBACK for a message whose delivery was cancelled")
	}
}
