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

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/internal/rawmqtt"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/triggers"
)

var (
	binOnce   sync.Once
	binPath   string
	binRemove func()
	binErr    error
)

// TestMain removes the agent binary agentBinary built, if any.
func TestMain(m *testing.M) {
	code := m.Run()
	if binRemove != nil {
		binRemove()
	}
	os.Exit(code)
}

// skipShort skips a test that builds and runs processes (why says what
// it runs) under -short.
func skipShort(t testing.TB, why string) {
	t.Helper()
	if testing.Short() {
		t.Skip(why)
	}
}

// agentBinary builds cmd/edgefn once per test run: crash tests kill a real
// process, not a goroutine.
func agentBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() { binPath, binRemove, binErr = testutil.BuildEdgefn("../cmd/edgefn") })
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// agentProc is the agent running as a child process.
type agentProc struct{ *testutil.Agent }

func startAgentProc(t testing.TB, configPath string) *agentProc {
	t.Helper()
	return &agentProc{testutil.StartAgent(t, agentBinary(t), configPath)}
}

// status asks the running agent process for its status.
func (p *agentProc) status(t testing.TB, dataDir string) api.Status {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := p.client(t, dataDir).Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// client is the typed API client of the running agent process, with its
// token (any certificate: the test started the agent).
func (p *agentProc) client(t testing.TB, dataDir string) *api.Client {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	return api.NewClient(p.AdminURL, strings.TrimSpace(string(tok)), "", nil)
}

// get GETs path from the running agent's admin API with its token.
func (p *agentProc) get(t testing.TB, dataDir, path string) []byte {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(dataDir, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	resp := adminDo(t, "GET", p.AdminURL+path, strings.TrimSpace(string(tok)), nil, 10*time.Second)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// brokerAddr is the embedded broker's address from the agent's banner.
func (p *agentProc) brokerAddr(t testing.TB) string {
	t.Helper()
	if p.Broker == "" {
		t.Fatalf("agent printed no embedded broker address:\n%s", p.Stderr)
	}
	return p.Broker
}

// cpu is the CPU time (user + system) the agent process has used so far.
func (p *agentProc) cpu(t testing.TB) time.Duration {
	t.Helper()
	d, err := procstat.CPU(p.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// subscribed reports whether the agent's external MQTT link is up with
// its subscriptions in place.
func (p *agentProc) subscribed(t testing.TB, dataDir string) bool {
	b := p.status(t, dataDir).Broker
	return b != nil && b.Connected && b.Subscribed > 0
}

func (p *agentProc) invocations(t testing.TB, dataDir, fn string) (int64, string) {
	for _, f := range p.status(t, dataDir).Functions {
		if f.Name == fn {
			return f.Stats.Invocations, f.State
		}
	}
	return 0, ""
}

// readRecords opens the outbox of a stopped agent.
func readRecords(t testing.TB, dataDir string) []edgefn.Record {
	t.Helper()
	s, err := outbox.Open(context.Background(), outbox.Config{Path: filepath.Join(dataDir, "outbox.db"), Gateway: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	recs, err := s.Pending(context.Background(), 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// Against Debian's mosquitto: a QoS 1 message whose invocation is still
// running when the agent is killed (kill -9, before the commit) is
// redelivered and processed after the restart; messages published while
// the agent is down are processed when it comes back (persistent session).
func TestAgentExternalBrokerRedeliveryAndCatchUp(t *testing.T) {
	skipShort(t, "builds the agent and runs it as a child process")
	broker := mosquittotest.Start(t)
	dir := t.TempDir()
	fns := filepath.Join(dir, "fns")
	cfgPath := filepath.Join(dir, "edgefn.yaml")
	cfg := fmt.Sprintf("gateway_id: gw1\ndata_dir: %s\nfunctions_dir: %s\nlog_level: debug\noutbox: {durability: normal}\nadmin: {listen: \"127.0.0.1:0\"}\nbroker:\n  external:\n    brokers: [%q]\n    client_id: edgefn-gw1\n", dir, fns, broker.URL())
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	// v1 spins until its 20 s deadline: the agent is killed while it runs.
	writeFunction(t, fns, "job", "limits: {timeout: 20s, concurrency: 1}\ntriggers:\n  - mqtt: jobs/#\n    qos: 1\n", "loop.wasm")
	p := startAgentProc(t, cfgPath)
	waitFor(t, func() bool { return p.subscribed(t, dir) })
	testutil.MosquittoPub(t, broker.Addr(), "jobs/1", "first")
	// The invocation is running (a worker is up) and nothing committed.
	waitFor(t, func() bool { _, state := p.invocations(t, dir, "job"); return state == "warm" })
	if n, _ := p.invocations(t, dir, "job"); n != 0 {
		t.Fatalf("job finished before the kill: %d invocations", n)
	}
	p.Kill()

	// v2 echoes: the redelivered message must now commit.
	writeFunction(t, fns, "job", "limits: {timeout: 1s}\ntriggers:\n  - mqtt: jobs/#\n    qos: 1\n", "echo.wasm")
	p = startAgentProc(t, cfgPath)
	waitFor(t, func() bool { n, _ := p.invocations(t, dir, "job"); return n >= 1 })
	p.Stop(t)
	recs := readRecords(t, dir)
	if len(recs) != 1 || string(recs[0].Payload) != "first" || recs[0].Version != 2 {
		t.Fatalf("after kill -9 and restart: records %+v\n%s", recs, p.Stderr.String())
	}

	// Catch-up: published while the agent is down.
	for i := 0; i < 5; i++ {
		testutil.MosquittoPub(t, broker.Addr(), "jobs/late", fmt.Sprint("late-", i))
	}
	p = startAgentProc(t, cfgPath)
	waitFor(t, func() bool { n, _ := p.invocations(t, dir, "job"); return n >= 5 })
	p.Stop(t)
	recs = readRecords(t, dir)
	got := map[string]bool{}
	for _, r := range recs {
		got[string(r.Payload)] = true
	}
	for i := 0; i < 5; i++ {
		if !got[fmt.Sprint("late-", i)] {
			t.Errorf("message late-%d published while the agent was down was not processed; records %d", i, len(recs))
		}
	}
}

// Against mosquitto, restarted in the middle of a QoS 1 stream: every
// message the device got a PUBACK for is processed, none lost (the agent's
// persistent session and the device's resends cover the gap).
func TestAgentExternalBrokerRestartMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts mosquitto")
	}
	broker := mosquittotest.Start(t, mosquittotest.WithMaxQueuedMessages(10000))
	ta, _ := agentWithFunction(t, "job", "triggers:\n  - mqtt: stream/#\n    qos: 1\n", "echo.wasm", func(c *Config) {
		c.Broker.External = &triggers.MQTTConfig{Brokers: []string{broker.URL()}, ClientID: "edgefn-restart", MaxReconnectInterval: time.Second}
	})
	waitFor(t, func() bool {
		st := ta.Status(context.Background()).Broker
		return st != nil && st.Connected && st.Subscribed > 0
	})
	dev := testutil.MQTTClient(t, broker.URL(), "device-stream", func(o *mqtt.ClientOptions) {
		o.SetCleanSession(false).SetAutoReconnect(true).SetConnectRetry(true).SetMaxReconnectInterval(time.Second)
	})
	const n = 300
	var toks []mqtt.Token
	for i := 0; i < n; i++ {
		if i == n/2 {
			broker.Restart()
		}
		toks = append(toks, dev.Publish("stream/a", 1, false, fmt.Sprint("m-", i)))
	}
	for i, tok := range toks {
		if !tok.WaitTimeout(60*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d not acknowledged: %v", i, tok.Error())
		}
	}
	waitFor(t, func() bool {
		got := map[string]bool{}
		for _, r := range ta.records(t) {
			got[string(r.Payload)] = true
		}
		return len(got) == n
	})
}

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
