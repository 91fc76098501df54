package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/edgefn/edgefn/scripts/internal/tool"
)

// env is what starting a path needs.
type env struct {
	dir       string // scratch directory of this run
	self      string // this program, for the floor and forwarder
	edgefn    string // agent binary
	relayWasm string // emits the reading and publishes it to relay/out
	pubWasm   string // publishes it only
	nodeRed   string // npm prefix holding node-red 4 ("": skip Node-RED)
	pinned    bool   // gateway-side processes on cpu 0, GOMAXPROCS=1
	nodelay   bool   // mosquitto set_tcp_nodelay
	maxQueued int    // mosquitto max_queued_messages
	inflight  int    // mosquitto max_inflight_messages (-1: its default)
	// brokerLimits sets the embedded broker's per-client limits (off for
	// agents older than those settings, whose broker had mochi's defaults).
	brokerLimits bool
	// brokerExtra is appended to the embedded broker's settings
	// (", max_clients: 2000").
	brokerExtra string
	logs        io.Writer
}

// path is one row of the table: how to start the gateway side.
type path struct {
	Key   string `json:"key"`
	Label string `json:"label"`
	start func(e *env, n int) (*running, error)
}

// running is a started path: where devices connect and which processes
// are the gateway side.
type running struct {
	broker string
	ps     procs
	agent  *proc // edgefn paths: the agent, whose admin API serves profiles
}

func (r *running) stop() {
	for i := len(r.ps) - 1; i >= 0; i-- {
		stopProc(r.ps[i])
	}
}

func paths() []path {
	ps := []path{
		{Key: "floor", Label: "embedded floor: mochi + in-process republish hook", start: startFloor},
		{Key: "mosquitto", Label: "mosquitto + do-nothing paho forwarder", start: startForwarder},
		{Key: "nodered", Label: "mosquitto + Node-RED 4 (function node)", start: startNodeRed},
	}
	for _, ext := range []bool{false, true} {
		for _, fn := range []string{"emit", "publish"} {
			for _, dur := range []string{"normal", "full"} {
				where, what := "embedded", "emit+publish"
				if ext {
					where = "external"
				}
				if fn == "publish" {
					what = "publish only"
				}
				label := fmt.Sprintf("edgefn %s, %s, %s", where, what, dur)
				if ext {
					label = "mosquitto + " + label
				}
				ps = append(ps, path{
					Key:   fmt.Sprintf("edgefn-%s-%s-%s", where, fn, dur),
					Label: label,
					start: func(e *env, n int) (*running, error) { return startAgent(e, n, ext, fn, dur) },
				})
			}
		}
	}
	return ps
}

// command builds a gateway-side command, pinned to cpu 0 when asked.
func (e *env) command(argv ...string) *exec.Cmd {
	if e.pinned {
		argv = append([]string{"taskset", "-c", "0"}, argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = os.Environ()
	if e.pinned {
		cmd.Env = append(cmd.Env, "GOMAXPROCS=1")
	}
	return cmd
}

// startProc starts cmd and, if ready is not empty, waits for a stdout line
// containing it; the output goes to e.logs.
func (e *env) startProc(name string, cmd *exec.Cmd, ready string) (*proc, error) {
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = e.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &proc{name: name, cmd: cmd}
	readyc := make(chan struct{})
	exited := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		seen := ready == ""
		if seen {
			close(readyc)
		}
		for sc.Scan() {
			fmt.Fprintf(e.logs, "[%s] %s\n", name, sc.Text())
			p.mu.Lock()
			if len(p.lines) < 100 {
				p.lines = append(p.lines, sc.Text())
			}
			p.mu.Unlock()
			if !seen && strings.Contains(sc.Text(), ready) {
				seen = true
				close(readyc)
			}
		}
		close(exited)
	}()
	select {
	case <-readyc:
		return p, nil
	case <-exited:
		_ = cmd.Wait()
		return nil, fmt.Errorf("%s exited before ready (%v)", name, cmd.ProcessState)
	case <-time.After(2 * time.Minute):
		stopProc(p)
		return nil, fmt.Errorf("%s not ready within 2 minutes", name)
	}
}

func stopProc(p *proc) {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// waitPort polls addr until it accepts a connection.
func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %s: %w", addr, d, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func startFloor(e *env, _ int) (*running, error) {
	addr, err := tool.FreePort()
	if err != nil {
		return nil, err
	}
	p, err := e.startProc("mochi+hook", e.command(e.self, "floor", "-listen", addr), "ready")
	if err != nil {
		return nil, err
	}
	return &running{broker: addr, ps: procs{p}}, nil
}

// mosquittoConf is the broker configuration of every path through
// mosquitto; docs/benchmarks.md states it.
func (e *env) mosquittoConf(port string) string {
	conf := fmt.Sprintf("listener %s 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay %t\nmax_queued_messages %d\nlog_type error\n",
		port, e.nodelay, e.maxQueued)
	if e.inflight >= 0 {
		conf += fmt.Sprintf("max_inflight_messages %d\n", e.inflight)
	}
	return conf
}

func (e *env) startMosquitto(n int) (*proc, string, error) {
	addr, err := tool.FreePort()
	if err != nil {
		return nil, "", err
	}
	_, port, _ := net.SplitHostPort(addr)
	conf := filepath.Join(e.dir, fmt.Sprintf("mosquitto-%d.conf", n))
	if err := os.WriteFile(conf, []byte(e.mosquittoConf(port)), 0o644); err != nil {
		return nil, "", err
	}
	p, err := e.startProc("mosquitto", e.command("mosquitto", "-c", conf), "")
	if err != nil {
		return nil, "", err
	}
	if err := waitPort(addr, 10*time.Second); err != nil {
		stopProc(p)
		return nil, "", err
	}
	return p, addr, nil
}

func startForwarder(e *env, n int) (*running, error) {
	m, addr, err := e.startMosquitto(n)
	if err != nil {
		return nil, err
	}
	f, err := e.startProc("forwarder", e.command(e.self, "forward", "-broker", addr), "ready")
	if err != nil {
		stopProc(m)
		return nil, err
	}
	return &running{broker: addr, ps: procs{m, f}}, nil
}

// nodeRedFlow: mqtt in (QoS 1, the payload as a string) -> a function node
// that sets the topic -> mqtt out (QoS 1).
func nodeRedFlow(port string) []byte {
	flow := []map[string]any{
		{"id": "tab1", "type": "tab", "label": "bench"},
		{"id": "broker1", "type": "mqtt-broker", "name": "bench", "broker": "127.0.0.1", "port": port,
			"clientid": "nodered-bench", "autoConnect": true, "usetls": false, "protocolVersion": "4",
			"keepalive": "60", "cleansession": true},
		{"id": "in1", "type": "mqtt in", "z": "tab1", "topic": "sensors/+/temperature", "qos": "1",
			"datatype": "utf8", "broker": "broker1", "nl": false, "rap": true, "rh": 0, "inputs": 0,
			"wires": [][]string{{"fn1"}}},
		{"id": "fn1", "type": "function", "z": "tab1", "name": "relay",
			"func": "msg.topic = '" + outTopic + "';\nreturn msg;", "outputs": 1, "wires": [][]string{{"out1"}}},
		{"id": "out1", "type": "mqtt out", "z": "tab1", "topic": "", "qos": "1", "retain": "false",
			"broker": "broker1", "wires": [][]string{}},
	}
	b, _ := json.Marshal(flow)
	return b
}

func startNodeRed(e *env, n int) (*running, error) {
	m, addr, err := e.startMosquitto(n)
	if err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(addr)
	user := filepath.Join(e.dir, fmt.Sprintf("node-red-%d", n))
	if err := os.MkdirAll(user, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(user, "flows.json"), nodeRedFlow(port), 0o644); err != nil {
		return nil, err
	}
	uiAddr, err := tool.FreePort()
	if err != nil {
		return nil, err
	}
	_, uiPort, _ := net.SplitHostPort(uiAddr)
	red := filepath.Join(e.nodeRed, "node_modules", "node-red", "red.js")
	nr, err := e.startProc("node-red", e.command("node", red, "--userDir", user, "--port", uiPort, "flows.json"), "Started flows")
	if err != nil {
		stopProc(m)
		return nil, err
	}
	return &running{broker: addr, ps: procs{m, nr}}, nil
}

// startAgent runs `edgefn agent` with one function on sensors/+/temperature
// (QoS 1) that publishes each reading to relay/out, emitting it as a record
// first when fn is "emit". ext: the agent uses a mosquitto beside it.
func startAgent(e *env, n int, ext bool, fn, durability string) (*running, error) {
	dir := filepath.Join(e.dir, fmt.Sprintf("agent-%d", n))
	fns := filepath.Join(dir, "functions")
	if err := os.MkdirAll(fns, 0o755); err != nil {
		return nil, err
	}
	wasm := e.relayWasm
	if fn == "publish" {
		wasm = e.pubWasm
	}
	manifest := fmt.Sprintf("name: relay\nwasm: %s\ntriggers:\n  - mqtt: sensors/+/temperature\n    qos: 1\nallow: { publish: [\"relay/#\"] }\n", wasm)
	if err := os.WriteFile(filepath.Join(fns, "relay.yaml"), []byte(manifest), 0o644); err != nil {
		return nil, err
	}
	var ps procs
	var broker, brokerConf string
	if ext {
		m, addr, err := e.startMosquitto(n)
		if err != nil {
			return nil, err
		}
		ps = append(ps, m)
		broker = addr
		brokerConf = fmt.Sprintf("broker: { external: { brokers: [\"tcp://%s\"] } }", addr)
	} else {
		addr, err := tool.FreePort()
		if err != nil {
			return nil, err
		}
		broker = addr
		// Per-client limits as mochi's defaults (the floor's): the
		// saturated subscriber must not lose derived messages.
		brokerConf = fmt.Sprintf("broker: { embedded: { listen: %q, max_queued: 8192, max_inflight: 65535 } }", addr)
		if !e.brokerLimits {
			brokerConf = fmt.Sprintf("broker: { embedded: { listen: %q%s } }", addr, e.brokerExtra)
		}
	}
	conf := fmt.Sprintf("data_dir: %s\nfunctions_dir: %s\nlog_level: warn\n%s\nadmin: { listen: \"127.0.0.1:0\", tls: \"off\" }\ngpio: { backend: none }\noutbox: { durability: %s }\n",
		filepath.Join(dir, "data"), fns, brokerConf, durability)
	cfg := filepath.Join(dir, "edgefn.yaml")
	if err := os.WriteFile(cfg, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	a, err := e.startProc("edgefn", e.command(e.edgefn, "agent", "--config", cfg), " ready")
	if err != nil {
		for _, p := range ps {
			stopProc(p)
		}
		return nil, err
	}
	ps = append(ps, a)
	r := &running{broker: broker, ps: ps, agent: a}
	if !ext {
		if err := waitPort(broker, 30*time.Second); err != nil {
			r.stop()
			return nil, err
		}
	}
	return r, nil
}

// profileAgent fetches a profile from the agent's admin API into dir/name:
// kind "profile" (CPU, for d) or "heap"; the returned channel says when it
// is done.
func profileAgent(r *running, dir, name, kind string, d time.Duration) chan error {
	done := make(chan error, 1)
	go func() {
		done <- func() error {
			deadline := time.Now().Add(5 * time.Second)
			var url, tok string
			for url == "" || tok == "" {
				if time.Now().After(deadline) {
					return errors.New("the agent printed no admin API URL and token file")
				}
				if l, ok := r.agent.line("admin API:"); ok {
					url = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "admin API:"))
				}
				if l, ok := r.agent.line("API token:"); ok {
					f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "API token:"))
					if len(f) > 0 {
						tok = f[0]
					}
				}
				time.Sleep(10 * time.Millisecond)
			}
			secret, err := os.ReadFile(tok)
			if err != nil {
				return err
			}
			u := fmt.Sprintf("%s/debug/pprof/%s", strings.TrimSuffix(url, "/"), kind)
			if d > 0 {
				u += fmt.Sprintf("?seconds=%d", max(1, int(d.Seconds())))
			}
			req, err := http.NewRequest("GET", u, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(secret)))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b, _ := io.ReadAll(resp.Body)
				return fmt.Errorf("%s: %s", resp.Status, b)
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			f, err := os.Create(filepath.Join(dir, name))
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(f, resp.Body)
			return err
		}()
	}()
	return done
}
