package uplink_test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testpki"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/sync/uplink/internal/receiver"
)

// mqttCloud is a mosquitto broker (with persistence, so a restart keeps the
// collector's session) and a paho subscriber with a persistent session that
// collects every message.
type mqttCloud struct {
	b  *mosquittotest.Broker
	mu sync.Mutex
	ls []receiver.Line
}

func newMQTTCloud(t *testing.T) cloud {
	// The collector stands in for the cloud's consumer. After the broker
	// restarts, the uplink may reconnect and drain before the collector's
	// paho client does; mosquitto queues for the offline collector only
	// max_queued_messages (default 1000) and drops the rest, which is
	// loss between the cloud broker and its consumer, not the uplink's.
	c := &mqttCloud{b: mosquittotest.Start(t, mosquittotest.WithMaxQueuedMessages(1_000_000))}
	c.collect(t, c.b.URL(), nil)
	return c
}

// collect subscribes to edgefn/# with a persistent session.
func (c *mqttCloud) collect(t *testing.T, url string, opts func(*paho.ClientOptions)) {
	cl := testutil.MQTTClient(t, url, "collector-"+fmt.Sprint(time.Now().UnixNano()), func(o *paho.ClientOptions) {
		o.SetCleanSession(false).SetAutoReconnect(true).SetMaxReconnectInterval(200 * time.Millisecond).
			SetConnectRetry(true).SetConnectRetryInterval(100 * time.Millisecond)
		if opts != nil {
			opts(o)
		}
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			var l receiver.Line
			if err := json.Unmarshal(m.Payload(), &l); err != nil {
				t.Errorf("collector: bad message on %s: %v: %s", m.Topic(), err, m.Payload())
				return
			}
			c.mu.Lock()
			c.ls = append(c.ls, l)
			c.mu.Unlock()
		})
	})
	if tok := cl.Subscribe("edgefn/#", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("collector subscribe: %v", tok.Error())
	}
}

func (c *mqttCloud) newUplink(t *testing.T, src uplink.Source) uplink.Link {
	u, err := uplink.NewMQTT(uplink.MQTTConfig{Broker: c.b.URL(), ClientID: "uplink-" + fmt.Sprint(time.Now().UnixNano()),
		InFlight: 16, ConnectTimeout: 2 * time.Second, AckTimeout: 5 * time.Second, Backoff: fastBackoff, StrictOrder: strictOrder}, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	return u
}
func (c *mqttCloud) down(*testing.T)        { c.b.Stop() }
func (c *mqttCloud) up(*testing.T)          { c.b.Start() }
func (c *mqttCloud) lines() []receiver.Line { return c.linesSince(0) }
func (c *mqttCloud) linesSince(i int) []receiver.Line {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]receiver.Line(nil), c.ls[min(i, len(c.ls)):]...)
}

func TestMQTTTopicTemplateAndMessage(t *testing.T) {
	b := mosquittotest.Start(t)
	var mu sync.Mutex
	topics := map[string]string{}
	c := testutil.MQTTClient(t, b.URL(), "topic-collector", func(o *paho.ClientOptions) {
		o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			mu.Lock()
			topics[m.Topic()] = string(m.Payload())
			mu.Unlock()
		})
	})
	if tok := c.Subscribe("cloud/#", 1, nil); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	src := newSource(t)
	src.add(t, "temp", []byte(`{"c":1}`))
	src.add(t, "door", []byte("open"))
	u, err := uplink.NewMQTT(uplink.MQTTConfig{Broker: b.URL(), ClientID: "u1", Topic: "cloud/{gateway}/{source}/{function}",
		InFlight: 1, Backoff: fastBackoff}, src, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, u.Run)
	testutil.Eventually(t, 10*time.Second, "two messages", func() bool { mu.Lock(); defer mu.Unlock(); return len(topics) == 2 })
	mu.Lock()
	defer mu.Unlock()
	if m := topics["cloud/gw1/mqtt/temp"]; !strings.Contains(m, `"id":"gw1:1"`) || !strings.Contains(m, `"payload":{"c":1}`) || strings.Contains(m, "\n") {
		t.Errorf("temp message %q", m)
	}
	if m := topics["cloud/gw1/mqtt/door"]; !strings.Contains(m, `"payload_b64":"b3Blbg=="`) {
		t.Errorf("door message %q", m)
	}
	testutil.Eventually(t, 5*time.Second, "confirmed", func() bool { return src.pending(t) == 0 && u.State().Sent == 2 })
}

func TestMQTTMutualTLS(t *testing.T) {
	pki := testpki.New(t)
	b := mosquittotest.Start(t, mosquittotest.WithServerTLS(pki.CAFile, pki.ServerCert, pki.ServerKey, true))
	cl := &mqttCloud{b: b}
	caPEM, err := os.ReadFile(pki.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	cert, err := tls.LoadX509KeyPair(pki.ClientCert, pki.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	cl.collect(t, b.TLSURL(), func(o *paho.ClientOptions) {
		o.SetTLSConfig(&tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}})
	})
	cases := []struct {
		name    string
		tls     uplink.TLS
		deliver bool
	}{
		{"ca and client cert", uplink.TLS{CAFile: pki.CAFile, CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, true},
		{"no client cert", uplink.TLS{CAFile: pki.CAFile}, false},
		{"unknown CA", uplink.TLS{CertFile: pki.ClientCert, KeyFile: pki.ClientKey}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := newSource(t)
			seq := src.add(t, "temp", []byte(`{"tls":true}`))
			u, err := uplink.NewMQTT(uplink.MQTTConfig{Broker: b.TLSURL(), ClientID: "tls-" + strings.ReplaceAll(c.name, " ", "-"),
				TLS: c.tls, ConnectTimeout: 2 * time.Second, Backoff: fastBackoff}, src, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, u.Run)
			if c.deliver {
				testutil.Eventually(t, 10*time.Second, "delivery over mutual TLS", func() bool {
					for _, l := range cl.lines() {
						if l.ID == "gw1:"+itoa(seq) {
							return true
						}
					}
					return false
				})
				testutil.Eventually(t, 5*time.Second, "confirmed", func() bool { return src.pending(t) == 0 })
				return
			}
			testutil.Eventually(t, 10*time.Second, "a refused connection", func() bool { s := u.State(); return s.Retries > 0 && !s.Online })
			if n := src.pending(t); n != 1 {
				t.Errorf("pending = %d after a refused connection, want 1", n)
			}
		})
	}
}
