package gateway

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/internal/rawmqtt"
	"github.com/edgefn/edgefn/internal/testutil"
)

// TestAgentBrokerLimits runs the agent with its embedded broker configured
// as the docs show (users with ACLs, a TLS listener with the auto-created
// certificate) and plays hostile clients: two unauthenticated 150 MB
// CONNECTs and a 200 MB PUBLISH leave the agent's peak memory where it
// was; a device cannot subscribe to "#"; TLS clients trusting
// data_dir/broker.crt get in.
func TestAgentBrokerLimits(t *testing.T) {
	skipShort(t, "builds the agent and runs it as a child process")
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "edgefn.yaml")
	cfg := fmt.Sprintf(`gateway_id: gw1
data_dir: %s
admin: {listen: "127.0.0.1:0"}
broker:
  embedded:
    listen: 127.0.0.1:0
    users:
      - username: sensor1
        password: change-me
        publish: ["sensors/%%u/#"]
        subscribe: ["actuators/%%u/#"]
    tls:
      listen: 127.0.0.1:0
`, dir)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgentProc(t, cfgPath)
	part := func() api.Broker {
		if b := p.status(t, dir).Broker; b != nil {
			return *b
		}
		return api.Broker{}
	}
	addr, tlsAddr := part().Addr, part().TLSAddr
	if addr == "" || tlsAddr == "" {
		t.Fatalf("broker status %+v: want addr and tls_addr", part())
	}
	pid := p.Cmd.Process.Pid
	peak := func() int64 {
		v, err := procstat.Status(pid, "VmHWM")
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	before := peak()
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			if _, err := rawmqtt.Stream(c, rawmqtt.Header(0x10, 150<<20), 150<<20); err == nil {
				t.Error("the agent read a whole 150 MB CONNECT")
			}
		}()
	}
	wg.Wait()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(rawmqtt.Connect("big-publisher")); err != nil {
		t.Fatal(err)
	}
	if _, err := rawmqtt.Stream(c, append(rawmqtt.Header(0x30, 200<<20), 0, 1, 'x'), 200<<20-3); err == nil {
		t.Error("the agent read a whole 200 MB PUBLISH")
	}
	if grew := peak() - before; grew > 64<<20 {
		t.Errorf("agent peak memory grew by %d MB under two 150 MB CONNECTs and a 200 MB PUBLISH, want < 64 MB", grew>>20)
	}
	if n := part().BadConnects; n != 2 {
		t.Errorf("broker status %v: want 2 bad_connects", part())
	}
	if m := string(p.get(t, dir, "/metrics")); !strings.Contains(m, `edgefn_broker_refused_total{reason="bad_connect"} 2`) {
		t.Errorf("metrics do not count the 2 bad connects:\n%s", m)
	}

	// A malformed MQTT 5 SUBSCRIBE crashed mochi's decoder, and with it
	// the agent.
	bad, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	if _, err := bad.Write([]byte{0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 0, 0, 1, 'r', 0x82, 6, 0, 1, 0, 0, 1, '#'}); err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, bad)
	deadline := time.Now().Add(20 * time.Second)
	for n := part().HandlerPanics; n != 1; n = part().HandlerPanics {
		if time.Now().After(deadline) {
			t.Fatalf("broker status %v: want 1 handler panic recovered", part())
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}

	s1 := testutil.MQTTClient(t, "tcp://"+addr, "s1", func(o *mqtt.ClientOptions) {
		o.SetUsername("sensor1").SetPassword("change-me").SetProtocolVersion(4).SetAutoReconnect(false)
	})
	tok := s1.Subscribe("#", 1, nil)
	if !tok.WaitTimeout(20*time.Second) || tok.(*mqtt.SubscribeToken).Result()["#"] != 0x80 {
		t.Errorf("sensor1 subscribing to #: %v, want refused (0x80)", tok.(*mqtt.SubscribeToken).Result())
	}

	host, port, _ := strings.Cut(tlsAddr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", "-h", host, "-p", port, "--cafile", filepath.Join(dir, "broker.crt"),
		"-u", "sensor1", "-P", "change-me", "-t", "sensors/sensor1/tls", "-m", "x", "-q", "1").CombinedOutput()
	if err != nil {
		t.Errorf("mosquitto_pub over TLS trusting data_dir/broker.crt: %v %s", err, out)
	}
	if fi, err := os.Stat(filepath.Join(dir, "broker.key")); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o600 {
		t.Errorf("broker.key mode %v, want 0600", fi.Mode().Perm())
	}
}

// TestConfigEmbeddedBroker: the embedded broker's ACLs, limits and TLS
// listener decode from the agent config as docs/mqtt.md writes them, and
// mistakes are reported with their line.
func TestConfigEmbeddedBroker(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edgefn.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(`broker:
  embedded:
    users:
      - username: sensor1
        password: change-me
        publish: ["sensors/%u/#"]
        subscribe: ["actuators/%u/#"]
    anonymous: {publish: ["tools/#"]}
    local_full_access: false
    max_packet_size: 64KiB
    connect_timeout: 3s
    max_clients: 50
    tls:
      listen: ":8883"
      client_ca_file: ca.pem
      client_certs: require
`)
	c, err := LoadConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	e := c.Broker.Embedded
	if u := e.Users[0]; u.Publish[0] != "sensors/%u/#" || u.Subscribe[0] != "actuators/%u/#" || e.Anonymous.Publish[0] != "tools/#" ||
		e.LocalFullAccess == nil || *e.LocalFullAccess || e.MaxPacketSize != 64<<10 || e.ConnectTimeout != 3*time.Second ||
		e.MaxClients != 50 || e.TLS.Listen != ":8883" || e.TLS.ClientCerts != "require" {
		t.Errorf("decoded %+v", e)
	}
	write("broker:\n  embedded:\n    users:\n      - username: s\n        password: p\n        publsh: [\"x\"]\n        subscribe: [\"a+\"]\n")
	_, err = LoadConfig(p)
	for _, want := range []string{"edgefn.yaml:6", "publsh", "edgefn.yaml:7: broker.embedded.users[0].subscribe[0]"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("LoadConfig = %v, want it to mention %q", err, want)
		}
	}
}
