package uplink_test

import (
	"crypto/tls"
	"crypto/x509"
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
)

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
