package gateway

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

// A function that publishes back to its own trigger topic runs once per
// depth, 0 to max_chain_depth, then its publish is dropped, counted in
// status and metrics; other functions keep working.
func TestAgentChainStopsAtMaxDepth(t *testing.T) {
	for _, tc := range []struct {
		maxDepth, invocations int
	}{{0, DefaultMaxChainDepth + 1}, {3, 4}} {
		t.Run(fmt.Sprint("max_chain_depth=", tc.maxDepth), func(t *testing.T) {
			dir := t.TempDir()
			fns := filepath.Join(dir, "fns")
			writeFunction(t, fns, "loop", "allow: {publish: [\"loop/#\"]}\ntriggers:\n  - mqtt: loop/#\n", "loopback.wasm")
			writeFunction(t, fns, "relay", "allow: {publish: [\"relay/#\"]}\ntriggers:\n  - mqtt: in/#\n    qos: 1\n", "relay.wasm")
			writeFunction(t, fns, "sink", "triggers:\n  - mqtt: relay/out\n", "echo.wasm")
			ta := startAgent(t, dir, func(c *Config) {
				c.MaxChainDepth = tc.maxDepth
				c.Grants.Max.PublishToTriggers = []string{"relay/#"} // the chain relay -> sink
			})
			_, metrics := ta.api(t, "GET", "/metrics", nil)
			if want := `edgefn_chain_drops_total{function="loop"} 0`; !strings.Contains(string(metrics), want) {
				t.Errorf("metrics before any drop lack %q", want)
			}
			c := pahoClient(t, ta.ready.BrokerAddr, "device-3", true)
			c.Publish("loop/x", 0, false, "spin").WaitTimeout(5 * time.Second)
			loop := func() FunctionStats {
				for _, f := range ta.functions() {
					if f.Name == "loop" {
						return f.Stats
					}
				}
				t.Fatal("no loop function")
				return FunctionStats{}
			}
			waitFor(t, func() bool { return loop().ChainDropped == 1 })
			// A chain through two other functions completes after the loop
			// stopped, and the loop did not run again meanwhile.
			if tok := c.Publish("in/1", 1, false, "chained"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
				t.Fatal(tok.Error())
			}
			waitFor(t, func() bool {
				for _, r := range ta.records(t) {
					if r.Function == "sink" && string(r.Payload) == "chained" {
						return true
					}
				}
				return false
			})
			if s := loop(); s.Invocations != int64(tc.invocations) || s.ChainDropped != 1 || len(s.Errors) != 0 {
				t.Errorf("loop: %d invocations, %d chain drops, errors %v; want %d, 1, none", s.Invocations, s.ChainDropped, s.Errors, tc.invocations)
			}
			_, metrics = ta.api(t, "GET", "/metrics", nil)
			if want := `edgefn_chain_drops_total{function="loop"} 1`; !strings.Contains(string(metrics), want) {
				t.Errorf("metrics lack %q", want)
			}
			_, status := ta.api(t, "GET", "/v1/status", nil)
			if !strings.Contains(string(status), `"chain_dropped": 1`) {
				t.Errorf("status does not show the chain drop: %s", status)
			}
		})
	}
}

// The self-loop of the issue, against the agent process: a function that
// publishes every event twice to its own trigger topic. Before, it ran
// ~200,000 invocations in 5 s and wrote megabytes of warnings; now the
// chain ends at depth 8 (at most 2^9-1 = 511 invocations), its drops are in
// status and metrics, and the log stays small. Embedded broker and
// mosquitto.
func TestAgentSelfLoopBounded(t *testing.T) {
	skipShort(t, "builds the agent and runs it as a child process")
	for _, external := range []bool{false, true} {
		name := "embedded"
		if external {
			name = "mosquitto"
		}
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			fns := filepath.Join(dir, "fns")
			writeFunction(t, fns, "fork", "allow: {publish: [\"loop/#\"]}\ntriggers:\n  - mqtt: loop/#\n", "fork.wasm")
			broker := "broker: {embedded: {listen: \"127.0.0.1:0\"}}"
			var ext *mosquittotest.Broker
			if external {
				// Room for a whole generation (256) of QoS 0 messages in flight.
				ext = mosquittotest.Start(t, mosquittotest.WithMaxQueuedMessages(10000))
				broker = fmt.Sprintf("broker: {external: {brokers: [%q], client_id: edgefn-selfloop}}", ext.URL())
			}
			cfgPath := filepath.Join(dir, "edgefn.yaml")
			cfg := fmt.Sprintf("gateway_id: gw1\ndata_dir: %s\nfunctions_dir: %s\noutbox: {durability: normal}\nadmin: {listen: \"127.0.0.1:0\"}\n%s\n", dir, fns, broker)
			if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			p := startAgentProc(t, cfgPath)
			if want := `edgefn_chain_drops_total{function="fork"} 0`; !strings.Contains(string(p.get(t, dir, "/metrics")), want) {
				t.Errorf("metrics at start lack %q", want)
			}
			var addr string
			if external {
				waitFor(t, func() bool { return p.subscribed(t, dir) })
				addr = ext.Addr()
			} else {
				addr = p.brokerAddr(t)
			}
			logBefore := len(p.Stderr.String())
			c := pahoClient(t, addr, "seed", true)
			c.Publish("loop/seed", 0, false, "x").WaitTimeout(5 * time.Second)
			// Every event of the tree was invoked or dropped from a full
			// queue; every invocation at the last depth had its two
			// publishes dropped: invocations + 1 = chain drops + queue drops.
			var st api.FunctionStats
			waitFor(t, func() bool {
				for _, f := range p.status(t, dir).Functions {
					if f.Name == "fork" && f.Stats != nil {
						st = *f.Stats
					}
				}
				return st.ChainDropped > 0 && st.QueueDepth == 0 && st.Invocations+1 == st.ChainDropped+st.Dropped
			})
			logged := len(p.Stderr.String()) - logBefore
			t.Logf("%s: %d invocations, %d chain drops, %d queue drops, %d log bytes, cpu %v",
				name, st.Invocations, st.ChainDropped, st.Dropped, logged, p.cpu(t))
			if st.Invocations > 511 || st.ChainDropped > 512 {
				t.Errorf("chain not cut at depth 8: %d invocations, %d chain drops", st.Invocations, st.ChainDropped)
			}
			if st.Errors[string(edgefn.ReasonQueueFull)] != st.Dropped {
				t.Errorf("queue drops %d, queue_full errors %d", st.Dropped, st.Errors[string(edgefn.ReasonQueueFull)])
			}
			if logged > 16<<10 {
				t.Errorf("the self-loop logged %d bytes:\n%s", logged, p.Stderr.String()[logBefore:])
			}
			if want := fmt.Sprintf(`edgefn_chain_drops_total{function="fork"} %d`, st.ChainDropped); !strings.Contains(string(p.get(t, dir, "/metrics")), want) {
				t.Errorf("metrics lack %q", want)
			}
			p.Stop(t)
		})
	}
}
