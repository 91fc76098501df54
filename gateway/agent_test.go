package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/rawmqtt"
	"github.com/edgefn/edgefn/internal/testutil"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefn/edgefn"
)

// testAgent is an Agent running in-process on loopback ports with its
// embedded broker, for end-to-end tests with real MQTT clients.
type testAgent struct {
	*Agent
	ready  Ready
	token  string
	cancel context.CancelFunc
	done   chan error
	dir    string
}

// writeFunction writes a manifest (and copies its module) into dir.
func writeFunction(t testing.TB, dir, name, manifest, wasmFixture string) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".wasm"), testutil.Testdata(t, wasmFixture), 0o644); err != nil {
		t.Fatal(err)
	}
	body := fmt.Sprintf("name: %s\nwasm: ./%s.wasm\n%s", name, name, manifest)
	if err := os.WriteFile(filepath.Join(dir, name+".yaml"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
}

// agentWithFunction starts an agent on a new data dir whose functions
// directory holds one function (as writeFunction writes it).
func agentWithFunction(t testing.TB, name, manifest, wasmFixture string, mutate ...func(*Config)) (ta *testAgent, dataDir string) {
	t.Helper()
	dataDir = t.TempDir()
	writeFunction(t, filepath.Join(dataDir, "fns"), name, manifest, wasmFixture)
	return startAgent(t, dataDir, mutate...), dataDir
}

func startAgent(t testing.TB, dataDir string, mutate ...func(*Config)) *testAgent {
	t.Helper()
	cfg := &Config{
		GatewayID:    "gw1",
		DataDir:      dataDir,
		FunctionsDir: filepath.Join(dataDir, "fns"),
		Admin:        AdminConfig{Listen: "127.0.0.1:0", TLS: "auto"},
		GPIO:         GPIOConfig{Backend: "simulated"},
		Outbox:       OutboxConfig{Durability: "normal"},
	}
	cfg.Broker.Embedded.Listen = "127.0.0.1:0"
	for _, m := range mutate {
		m(cfg)
	}
	cfg.setDefaults()
	a, err := NewAgent(cfg, discardLogger())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ta := &testAgent{Agent: a, cancel: cancel, done: make(chan error, 1), dir: dataDir}
	go func() { ta.done <- a.Run(ctx) }()
	select {
	case ta.ready = <-a.Ready():
	case err := <-ta.done:
		t.Fatalf("agent stopped before ready: %v", err)
	case <-time.After(60 * time.Second):
		t.Fatal("agent not ready within 60s")
	}
	tok, err := os.ReadFile(ta.ready.TokenFile)
	if err != nil {
		t.Fatal(err)
	}
	ta.token = strings.TrimSpace(string(tok))
	t.Cleanup(func() { ta.stop(t) })
	return ta
}

func (ta *testAgent) stop(t testing.TB) {
	t.Helper()
	if ta.cancel == nil {
		return
	}
	ta.cancel()
	ta.cancel = nil
	select {
	case err := <-ta.done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Error("agent did not stop within 60s")
	}
}

func (ta *testAgent) api(t testing.TB, method, path string, body io.Reader) (int, []byte) {
	t.Helper()
	resp := adminDo(t, method, ta.ready.AdminURL+path, ta.token, body, 30*time.Second)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// adminDo sends a request with token to an agent's admin API, trusting the
// agent's self-signed certificate; timeout 0 is none (for streams). The
// caller closes the response's body.
func adminDo(t testing.TB, method, url, token string, body io.Reader, timeout time.Duration) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// records reads what the outbox holds, by opening nothing: it asks the
// running gateway's store.
func (ta *testAgent) records(t testing.TB) []edgefn.Record {
	t.Helper()
	recs, err := ta.store.Pending(context.Background(), 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func pahoClient(t testing.TB, addr, id string, clean bool) mqtt.Client {
	t.Helper()
	return testutil.MQTTClient(t, "tcp://"+addr, id, func(o *mqtt.ClientOptions) {
		o.SetCleanSession(clean).SetOrderMatters(false).SetAutoReconnect(false)
	})
}

// A device's QoS 1 PUBLISH to the embedded broker is acknowledged only
// once the functions it triggers have committed: when the PUBACK arrives,
// the record is already in the outbox.
func TestAgentEmbeddedPubackAfterCommit(t *testing.T) {
	ta, _ := agentWithFunction(t, "echo", "triggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "echo.wasm")
	c := pahoClient(t, ta.ready.BrokerAddr, "device-1", true)
	for i := 0; i < 20; i++ {
		msg := fmt.Sprintf(`{"n":%d}`, i)
		tok := c.Publish("sensors/kitchen/temp", 1, false, msg)
		if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", i, tok.Error())
		}
		recs := ta.records(t)
		if len(recs) != i+1 || string(recs[i].Payload) != msg {
			t.Fatalf("after PUBACK %d the outbox holds %d records (want %d): PUBACK came before the commit", i, len(recs), i+1)
		}
	}
}

// Devices that publish QoS 1 readings without waiting for each PUBACK
// (the embedded broker pipelines them): a PUBACK still means the record is
// in the outbox, and each device's records are committed in the order it
// published them (seq order), with two devices and two workers at once.
func TestAgentEmbeddedPipelinedOrder(t *testing.T) {
	ta, _ := agentWithFunction(t, "echo", "limits: {concurrency: 2}\ntriggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "echo.wasm")
	const n = 300
	devices := []string{"d1", "d2"}
	toks := map[string][]mqtt.Token{}
	clients := map[string]mqtt.Client{}
	for _, d := range devices {
		clients[d] = pahoClient(t, ta.ready.BrokerAddr, "device-"+d, true)
	}
	for i := range n {
		for _, d := range devices {
			toks[d] = append(toks[d], clients[d].Publish("sensors/"+d+"/temp", 1, false, fmt.Sprintf(`{"dev":%q,"n":%d}`, d, i)))
		}
	}
	for _, k := range []int{n / 6, n / 2, n - 1} {
		tok := toks["d1"][k]
		if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d: %v", k, tok.Error())
		}
		want := fmt.Sprintf(`{"dev":"d1","n":%d}`, k)
		if !slices.ContainsFunc(ta.records(t), func(r edgefn.Record) bool { return string(r.Payload) == want }) {
			t.Fatalf("PUBACK of %s before its record was in the outbox", want)
		}
	}
	for _, d := range devices {
		for i, tok := range toks[d] {
			if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatalf("%s publish %d: %v", d, i, tok.Error())
			}
		}
	}
	next := map[string]int{}
	for _, r := range ta.records(t) {
		var m struct {
			Dev string
			N   int
		}
		if err := json.Unmarshal(r.Payload, &m); err != nil {
			t.Fatal(err)
		}
		if m.N != next[m.Dev] {
			t.Fatalf("device %s: record %d (seq %d) where %d was next: committed out of publish order", m.Dev, m.N, r.Seq, next[m.Dev])
		}
		next[m.Dev]++
	}
	for _, d := range devices {
		if next[d] != n {
			t.Errorf("device %s: %d records, want %d", d, next[d], n)
		}
	}
}

// A device that publishes QoS 1 messages and never reads its socket (each
// PUBACK echoes 60 KB of MQTT 5 user properties, so its socket fills at
// once) holds up only itself: another device's readings are committed and
// acknowledged.
func TestAgentEmbeddedDeviceNotReading(t *testing.T) {
	ta, _ := agentWithFunction(t, "echo", "triggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n", "echo.wasm")
	c, err := net.Dial("tcp", ta.ready.BrokerAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.(*net.TCPConn).SetReadBuffer(4096)
	if _, err := c.Write(rawmqtt.Connect5("deaf")); err != nil {
		t.Fatal(err)
	}
	deafDone := make(chan struct{})
	go func() {
		defer close(deafDone)
		for i := range 400 {
			if _, err := c.Write(rawmqtt.PublishPadded5("sensors/deaf/temp", uint16(i+1), []byte(`{"deaf":true}`), 60<<10)); err != nil {
				return // the agent closed it at the end of the test
			}
		}
	}()
	waitFor(t, func() bool {
		n := 0
		for _, r := range ta.records(t) {
			if r.Subject == "sensors/deaf/temp" {
				n++
			}
		}
		return n >= 40 // past the connection's window: its PUBACKs are stuck
	})
	dev := pahoClient(t, ta.ready.BrokerAddr, "device-reads", true)
	for i := range 5 {
		msg := fmt.Sprintf(`{"n":%d}`, i)
		if tok := dev.Publish("sensors/ok/temp", 1, false, msg); !tok.WaitTimeout(20*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d beside the deaf device: no PUBACK (%v)", i, tok.Error())
		}
		if !slices.ContainsFunc(ta.records(t), func(r edgefn.Record) bool { return string(r.Payload) == msg }) {
			t.Fatalf("PUBACK of %s before its record was in the outbox", msg)
		}
	}
	_ = c.Close()
	<-deafDone
}

// Simulated GPIO edges (injected through the admin API, as `edgefn gpio
// pulse` does) run the function, debounced; every-timers fire; HTTP invoke
// answers synchronously.
func TestAgentGPIOTimersAndInvoke(t *testing.T) {
	dir := t.TempDir()
	fns := filepath.Join(dir, "fns")
	writeFunction(t, fns, "button", "triggers:\n  - gpio: GPIO17\n    edge: rising\n    debounce: 20ms\n", "echo.wasm")
	writeFunction(t, fns, "tick", "triggers:\n  - every: 20ms\n", "echo.wasm")
	ta := startAgent(t, dir)

	if code, body := ta.api(t, "POST", "/v1/gpio/GPIO17/pulse?width=5ms", nil); code != 200 {
		t.Fatalf("pulse: %d %s", code, body)
	}
	waitFor(t, func() bool {
		n := 0
		for _, r := range ta.records(t) {
			if r.Function == "button" {
				n++
				if r.Source != edgefn.SourceGPIO || r.Subject != "GPIO17" {
					t.Errorf("gpio record %+v", r)
				}
			}
		}
		return n == 1
	})
	waitFor(t, func() bool {
		n := 0
		for _, r := range ta.records(t) {
			if r.Function == "tick" {
				n++
			}
		}
		return n >= 3
	})

	code, body := ta.api(t, "POST", "/v1/functions/button/invoke", strings.NewReader("pressed"))
	if code != 200 {
		t.Fatalf("invoke: %d %s", code, body)
	}
	var ir api.Invocation
	if err := json.Unmarshal(body, &ir); err != nil {
		t.Fatal(err)
	}
	if ir.Outcome != "ok" || len(ir.Records) != 1 || ir.Records[0].Payload != "pressed" || !strings.HasPrefix(ir.Records[0].ID, "gw1:") {
		t.Errorf("invoke response %+v", ir)
	}
	if code, _ := ta.api(t, "POST", "/v1/functions/nope/invoke", nil); code != 404 {
		t.Errorf("invoke of an unknown function: %d", code)
	}
}

// A slow function with a tiny queue: QoS 1 publishes wait (the device's
// PUBACK is held back) and none is lost; QoS 0 events beyond the queue are
// dropped, counted and visible in status.
func TestAgentQueueFullBackpressure(t *testing.T) {
	dir := t.TempDir()
	fns := filepath.Join(dir, "fns")
	writeFunction(t, fns, "slow", "limits: {timeout: 30ms, concurrency: 1}\ntriggers:\n  - mqtt: slow/#\n    qos: 1\n", "loop.wasm")
	ta := startAgent(t, dir, func(c *Config) { c.QueueSize = 2 })
	c := pahoClient(t, ta.ready.BrokerAddr, "device-2", true)
	const n = 12
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		tok := c.Publish("slow/a", 1, false, fmt.Sprint(i))
		go func() {
			defer wg.Done()
			if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
				t.Errorf("QoS 1 publish not acknowledged: %v", tok.Error())
			}
		}()
	}
	wg.Wait()
	// Every QoS 1 event ran (and timed out: the module spins) and was
	// recorded, none dropped.
	fi := ta.functions()[0]
	if fi.Stats.Invocations != n || fi.Stats.Errors[edgefn.ReasonTimeout] != n || fi.Stats.Dropped != 0 {
		t.Errorf("QoS 1 under backpressure: %+v", fi.Stats)
	}
	for i := 0; i < 30; i++ {
		c.Publish("slow/b", 0, false, "x")
	}
	waitFor(t, func() bool { return ta.functions()[0].Stats.Dropped > 0 })
	_, body := ta.api(t, "GET", "/v1/status", nil)
	if !strings.Contains(string(body), `"dropped"`) || !strings.Contains(string(body), `"queue_full"`) {
		t.Errorf("status does not show the drops: %s", body)
	}
}

// Functions deployed survive a restart, and records committed before it
// are still there with their seqs.
func TestAgentRestartKeepsFunctionsAndRecords(t *testing.T) {
	ta, dir := agentWithFunction(t, "echo", "triggers:\n  - mqtt: a\n    qos: 1\n", "echo.wasm")
	c := pahoClient(t, ta.ready.BrokerAddr, "device-4", true)
	c.Publish("a", 1, false, "one").WaitTimeout(10 * time.Second)
	c.Disconnect(100)
	ta.stop(t)
	if err := os.RemoveAll(filepath.Join(dir, "fns")); err != nil {
		t.Fatal(err)
	}
	ta2 := startAgent(t, dir)
	if fi := ta2.functions(); len(fi) != 1 || fi[0].Name != "echo" {
		t.Fatalf("after restart: %+v", fi)
	}
	c2 := pahoClient(t, ta2.ready.BrokerAddr, "device-4b", true)
	c2.Publish("a", 1, false, "two").WaitTimeout(10 * time.Second)
	recs := ta2.records(t)
	if len(recs) != 2 || recs[0].Seq >= recs[1].Seq || string(recs[1].Payload) != "two" {
		t.Errorf("records after restart %+v", recs)
	}
}

// /metrics carries the counters and the gauges read at scrape time.
func TestAgentMetrics(t *testing.T) {
	ta, _ := agentWithFunction(t, "echo", "triggers:\n  - mqtt: m\n    qos: 1\n", "echo.wasm")
	c := pahoClient(t, ta.ready.BrokerAddr, "device-m", true)
	c.Publish("m", 1, false, "x").WaitTimeout(10 * time.Second)
	code, body := ta.api(t, "GET", "/metrics", nil)
	if code != 200 {
		t.Fatalf("metrics: %d", code)
	}
	for _, want := range []string{
		`edgefn_invocations_total{function="echo",outcome="ok"} 1`,
		`edgefn_starts_total{function="echo",kind="cold"} 1`,
		`edgefn_invocation_duration_seconds_count{function="echo"} 1`,
		`edgefn_queue_depth{function="echo"} 0`,
		`edgefn_outbox_backlog_records{function="echo"} 1`,
		`edgefn_outbox_oldest_age_seconds`,
		`edgefn_outbox_drops_total{reason="max_bytes"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

// Reload (SIGHUP) deploys manifests added to the functions dir, applies
// the log level and names settings that need a restart.
func TestAgentReload(t *testing.T) {
	dir := t.TempDir()
	fns := filepath.Join(dir, "fns")
	writeFunction(t, fns, "one", "triggers:\n  - mqtt: one\n", "echo.wasm")
	ta := startAgent(t, dir)
	writeFunction(t, fns, "two", "triggers:\n  - mqtt: two\n", "echo.wasm")
	next := *ta.cfg
	next.LogLevel = "debug"
	next.QueueSize = 7
	level := new(slog.LevelVar)
	ta.Reload(context.Background(), &next, level)
	if len(ta.functions()) != 2 {
		t.Errorf("functions after reload: %+v", ta.functions())
	}
	if level.Level() != slog.LevelDebug {
		t.Errorf("log level %v after reload", level.Level())
	}
}

// A gpio_write happens after the commit, on the device's pin; a second
// function claiming the same output pin is refused at deploy.
func TestAgentGPIOWrite(t *testing.T) {
	ta, _ := agentWithFunction(t, "fan", "allow: {gpio_write: [GPIO18]}\n", "gpiowrite.wasm")
	if code, body := ta.api(t, "POST", "/v1/functions/fan/invoke", nil); code != 200 {
		t.Fatalf("invoke: %d %s", code, body)
	}
	waitFor(t, func() bool {
		_, body := ta.api(t, "GET", "/v1/gpio", nil)
		return strings.Contains(string(body), `"name": "GPIO18"`) && strings.Contains(strings.SplitAfter(string(body), `"name": "GPIO18"`)[1][:80], `"high": true`)
	})
	_, err := ta.Deploy(context.Background(), "function.yaml", []byte("name: fan2\nwasm: x.wasm\nallow: {gpio_write: [GPIO18]}\n"), testutil.Testdata(t, "gpiowrite.wasm"), "test", nil)
	if err == nil || !strings.Contains(err.Error(), "claimed for output by more than one function") {
		t.Errorf("second writer of GPIO18: %v", err)
	}
}
