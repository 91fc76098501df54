package testutil_test

import (
	"net"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testutil"
)

// A client from MQTTClient is connected with the options given: a message
// it publishes comes back through its own subscription.
func TestMQTTClient(t *testing.T) {
	b := mosquittotest.Start(t)
	got := make(chan string, 1)
	c := testutil.MQTTClient(t, b.URL(), "testutil-client", func(o *mqtt.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) { got <- string(m.Payload()) })
	})
	if tok := c.Subscribe("t/#", 1, nil); !tok.WaitTimeout(testutil.MQTTTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	if tok := c.Publish("t/x", 1, false, "hello"); !tok.WaitTimeout(testutil.MQTTTimeout) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	select {
	case p := <-got:
		if p != "hello" {
			t.Fatalf("got %q, want hello", p)
		}
	case <-time.After(testutil.MQTTTimeout):
		t.Fatal("own message never came back")
	}
}

func TestMQTTDialRefused(t *testing.T) {
	addr, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "tcp://" + addr.Addr().String()
	addr.Close() // nothing listens there now
	if _, err := testutil.MQTTDial(t, url, "nobody", func(o *mqtt.ClientOptions) { o.SetConnectTimeout(time.Second) }); err == nil {
		t.Fatalf("MQTTDial to %s, where nothing listens, connected", url)
	}
}
