package testutil

import (
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// MQTTTimeout bounds how long a test client waits for its connection.
const MQTTTimeout = 20 * time.Second

// MQTTDial connects a paho client (a device, a collector) with client id
// id to the broker at url, after opts adjust its options, and returns the
// connection error. A connected client is disconnected when the test ends.
func MQTTDial(t testing.TB, url, id string, opts ...func(*mqtt.ClientOptions)) (mqtt.Client, error) {
	t.Helper()
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID(id)
	for _, f := range opts {
		f(o)
	}
	c := mqtt.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(MQTTTimeout) {
		return c, errors.New("connect timed out")
	}
	if tok.Error() == nil {
		t.Cleanup(func() { c.Disconnect(100) })
	}
	return c, tok.Error()
}

// MQTTClient is MQTTDial that fails the test when the client does not
// connect.
func MQTTClient(t testing.TB, url, id string, opts ...func(*mqtt.ClientOptions)) mqtt.Client {
	t.Helper()
	c, err := MQTTDial(t, url, id, opts...)
	if err != nil {
		t.Fatal(fmt.Errorf("mqtt client %s: connect to %s: %w", id, url, err))
	}
	return c
}

// MosquittoPub publishes each line as one QoS 1 message on topic to the
// broker at addr (host:port) with Debian's mosquitto_pub, a client that is
// not ours, and fails the test if it does not exit 0.
func MosquittoPub(t testing.TB, addr, topic string, lines ...string) {
	t.Helper()
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", topic, "-l", "-i", fmt.Sprintf("test-%d", time.Now().UnixNano()))
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, out)
	}
}
