package triggers

import (
	"context"
	"errors"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	mqttsrv "github.com/mochi-mqtt/server/v2"
)

func TestFilterCovers(t *testing.T) {
	for _, tc := range []struct {
		p, f string
		want bool
	}{
		{"actuators/sensor1/#", "actuators/sensor1/#", true},
		{"actuators/sensor1/#", "actuators/sensor1", true},
		{"actuators/sensor1/#", "actuators/sensor1/led/+", true},
		{"actuators/sensor1/#", "actuators/#", false},
		{"actuators/sensor1/#", "actuators/+/led", false},
		{"actuators/sensor1/#", "#", false},
		{"actuators/+/led", "actuators/sensor1/led", true},
		{"actuators/+/led", "actuators/+/led", true},
		{"actuators/+/led", "actuators/#", false},
		{"actuators/+/led", "actuators/a/led/x", false},
		{"a/+", "a", false},
		{"a", "a/#", false},
		{"#", "#", true},
		{"#", "a/b", true},
		{"#", "$SYS/broker/version", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/broker/version", true},
	} {
		if got := filterCovers(tc.p, tc.f); got != tc.want {
			t.Errorf("filterCovers(%q, %q) = %v, want %v", tc.p, tc.f, got, tc.want)
		}
	}
}

func TestClientACL(t *testing.T) {
	a := BrokerACL{Publish: []string{"sensors/%u/#", "dev/%c/status"}, Subscribe: []string{"actuators/%u/#", "$SYS/#"}}
	remote := newClientACL(a, "sensor1", "c1", false)
	for _, tc := range []struct {
		topic      string
		write, ok  bool
		aclAllowed *clientACL
	}{
		{"sensors/sensor1/temp", true, true, remote},
		{"sensors/sensor2/temp", true, false, remote},
		{"actuators/fan/kitchen", true, false, remote},
		{"dev/c1/status", true, true, remote},
		{"$SYS/x", true, false, remote},
		{"actuators/sensor1/led", false, true, remote},
		{"$share/g/actuators/sensor1/#", false, true, remote},
		{"$share/g/#", false, false, remote},
		{"#", false, false, remote},
		{"$SYS/broker/version", false, false, remote}, // granted, but not local
		{"$SYS/broker/version", false, true, newClientACL(a, "sensor1", "c1", true)},
		{"$SYS/broker/version", false, true, &clientACL{full: true, local: true}},
		{"$SYS/broker/version", true, false, &clientACL{full: true, local: true}},
	} {
		var got bool
		if tc.write {
			got = tc.aclAllowed.canPublish(tc.topic)
		} else {
			got = tc.aclAllowed.canRead(tc.topic)
		}
		if got != tc.ok {
			t.Errorf("%+v: write=%v %q = %v, want %v", tc.aclAllowed, tc.write, tc.topic, got, tc.ok)
		}
	}
	// A username or client id that would change a pattern's structure
	// grants nothing through that pattern.
	for _, bad := range []string{"", "a/b", "+", "#"} {
		acl := newClientACL(a, bad, bad, false)
		if len(acl.pub) != 0 || len(acl.sub) != 1 || acl.sub[0] != "$SYS/#" {
			t.Errorf("user %q: pub %q sub %q, want only $SYS/#", bad, acl.pub, acl.sub)
		}
	}
}

// TestBrokerACLIsolation: a device subscribing to "#" (or $SYS, or a
// neighbour's topics) is refused and sees nothing of other devices, of the
// agent's publishes to other topics, or of $SYS; it receives what its ACL
// grants; a local tool without a username still sees everything.
func TestBrokerACLIsolation(t *testing.T) {
	b := startBroker(t, BrokerConfig{Users: deviceUsers}, newRecSink(nil))
	url := "tcp://" + b.Addr()
	got := make(chan string, 100)
	s1, err := userClient(t, url, "s1", "sensor1", "change-me", toChan(got))
	if err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[string]byte{
		"#": 0x80, "$SYS/#": 0x80, "actuators/+/led": 0x80, "sensors/sensor1/#": 0x80, "actuators/sensor1/#": 1,
	} {
		if q := subscribeResult(t, s1, filter); q != want {
			t.Errorf("sensor1 subscribe %q: granted %#x, want %#x", filter, q, want)
		}
	}
	local := mosqSubReady(t, b.Addr(), "probe", "#", "$SYS/broker/version")
	s2, err := userClient(t, url, "s2", "sensor2", "pw2")
	if err != nil {
		t.Fatal(err)
	}
	devicePublish(t, s2, "sensors/sensor2/temp", "19", 1)
	mosqPub(t, b.Addr(), "actuators/fan/kitchen", "on", 1)
	mosqPub(t, b.Addr(), "actuators/sensor2/led", "on", 1)
	mosqPub(t, b.Addr(), "actuators/sensor1/led", "blink", 1)
	// Functions publish under their grants, not the users' ACLs.
	agentPublish(t, b, "actuators/sensor1/agent", "a", 1, 0)
	agentPublish(t, b, "out/x", "secret", 1, 0)
	want := map[string]bool{"sensors/sensor2/temp 19": true, "actuators/fan/kitchen on": true, "actuators/sensor2/led on": true,
		"actuators/sensor1/led blink": true, "actuators/sensor1/agent a": true, "out/x secret": true}
	sawSys := false
	for len(want) > 0 || !sawSys {
		select {
		case l := <-local:
			delete(want, l)
			sawSys = sawSys || strings.HasPrefix(l, "$SYS/broker/version ")
		case <-time.After(testTimeout):
			t.Fatalf("local subscriber still waiting for %v (saw $SYS: %v)", want, sawSys)
		}
	}
	mosqPub(t, b.Addr(), "actuators/sensor1/end", "e", 1)
	var seen []string
	for l := range got {
		if l == "actuators/sensor1/end e" {
			break
		}
		seen = append(seen, l)
	}
	sort.Strings(seen) // two publishers: no order between them
	if strings.Join(seen, ",") != "actuators/sensor1/agent a,actuators/sensor1/led blink" {
		t.Errorf("sensor1 received %q, want only actuators/sensor1/led and actuators/sensor1/agent", seen)
	}
	if st := b.Status(); st.ACLDenied < 4 {
		t.Errorf("status %+v: want at least the 4 refused subscriptions counted", st)
	}
}

// TestBrokerACLPublishRefused: sensor1's publish to another device's
// actuator is refused at QoS 0 and 1, as a retained message and as a will;
// no subscriber, function or retained store sees it. Its own topics work,
// will included.
func TestBrokerACLPublishRefused(t *testing.T) {
	sink := newRecSink(nil)
	b := startBroker(t, BrokerConfig{Users: deviceUsers}, sink)
	subscribe(t, b, []Subscription{{"#", 1}})
	host, port, _ := strings.Cut(b.Addr(), ":")
	local := mosqSubReady(t, b.Addr(), "sensors/probe", "actuators/#", "sensors/#")
	asSensor1 := []string{"-h", host, "-p", port, "-u", "sensor1", "-P", "change-me", "-V", "mqttv311"}
	run := func(name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, name, append(append([]string{}, asSensor1...), args...)...).CombinedOutput()
		if err != nil {
			return errors.New(strings.TrimSpace(string(out)))
		}
		return nil
	}
	_ = run("mosquitto_pub", "-t", "actuators/fan/kitchen", "-m", "q0", "-q", "0")
	_ = run("mosquitto_pub", "-t", "actuators/fan/kitchen", "-m", "q1", "-q", "1") // disconnected without PUBACK
	_ = run("mosquitto_pub", "-t", "actuators/fan/kitchen", "-m", "kept", "-q", "0", "-r")
	if err := run("mosquitto_sub", "-t", "actuators/sensor1/#", "--will-topic", "actuators/fan/kitchen", "--will-payload", "will", "-C", "1"); err == nil ||
		!strings.Contains(err.Error(), "not authorised") {
		t.Errorf("connect with a will on actuators/fan/kitchen: %v, want refused as not authorised", err)
	}
	waitFor(t, "3 refused publishes and 1 refused connection", func() bool {
		st := b.Status()
		return st.ACLDenied >= 3 && st.AuthRefused >= 1
	})
	// Allowed: its own topics, and a will there that fires when it dies.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	withWill := exec.CommandContext(ctx, "mosquitto_sub", append(append([]string{}, asSensor1...), "-i", "s1-will", "-t", "actuators/sensor1/#",
		"--will-topic", "sensors/sensor1/status", "--will-payload", "offline")...)
	if err := withWill.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "sensor1 connected with a will", func() bool { return b.Status().Clients >= 2 })
	_ = withWill.Process.Kill()
	_ = withWill.Wait()
	if err := run("mosquitto_pub", "-t", "sensors/sensor1/end", "-m", "e", "-q", "1", "-r"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for l := range local {
		seen = append(seen, l)
		if l == "sensors/sensor1/end e" {
			break
		}
	}
	if strings.Contains(strings.Join(seen, ","), "actuators/fan/kitchen") {
		t.Errorf("local subscriber saw %q: a refused publish got through", seen)
	}
	if !strings.Contains(strings.Join(seen, ","), "sensors/sensor1/status offline") {
		// The will may follow the end marker: the kill and the publish race.
		waitLine(t, local, "sensors/sensor1/status offline")
	}
	for _, ev := range drain(sink) {
		if ev.Subject == "actuators/fan/kitchen" {
			t.Errorf("a function got the refused publish %q", ev.Payload)
		}
	}
	if st := b.Status(); st.Retained != 1 {
		t.Errorf("status %+v: want only sensors/sensor1/end retained", st)
	}
}

// TestBrokerSessionOfAnotherUser: a client id in use by one user's
// session cannot be taken over by another user.
func TestBrokerSessionOfAnotherUser(t *testing.T) {
	b := startBroker(t, BrokerConfig{Users: deviceUsers}, newRecSink(nil))
	url := "tcp://" + b.Addr()
	if _, err := userClient(t, url, "kitchen", "sensor1", "change-me", func(o *mqtt.ClientOptions) { o.SetCleanSession(false) }); err != nil {
		t.Fatal(err)
	}
	if _, err := userClient(t, url, "kitchen", "sensor2", "pw2"); err == nil {
		t.Error("sensor2 took over sensor1's session")
	}
	if _, err := userClient(t, url, "kitchen", "sensor1", "change-me"); err != nil {
		t.Errorf("sensor1 reconnecting to its own session: %v", err)
	}
	// The agent's own client cannot be taken over, even by a local tool.
	if _, err := userClient(t, url, mqttsrv.InlineClientId, "", ""); err == nil {
		t.Errorf("a local client took over the agent's inline client %q", mqttsrv.InlineClientId)
	}
	if err := b.Publish(context.Background(), "still/works", nil, 0, false, 0); err != nil {
		t.Error(err)
	}
}

// TestBrokerLocalRestricted: with local_full_access off, anonymous local
// clients get the anonymous ACL; $SYS stays readable when granted.
func TestBrokerLocalRestricted(t *testing.T) {
	off := false
	b := startBroker(t, BrokerConfig{LocalFullAccess: &off, Anonymous: BrokerACL{Publish: []string{"tools/#"}, Subscribe: []string{"tools/#", "$SYS/#"}}}, newRecSink(nil))
	got := make(chan string, 100)
	c, err := userClient(t, "tcp://"+b.Addr(), "tool", "", "", toChan(got))
	if err != nil {
		t.Fatal(err)
	}
	for filter, want := range map[string]byte{"#": 0x80, "actuators/#": 0x80, "tools/#": 1, "$SYS/broker/version": 1} {
		if q := subscribeResult(t, c, filter); q != want {
			t.Errorf("subscribe %q: granted %#x, want %#x", filter, q, want)
		}
	}
	waitLine(t, got, "$SYS/broker/version")
	before := b.Status().ACLDenied
	c.Publish("actuators/x", 0, false, "no").Wait()
	waitFor(t, "the refused publish", func() bool { return b.Status().ACLDenied > before })
	devicePublish(t, c, "tools/x", "yes", 1)
	waitLine(t, got, "tools/x yes")
}
