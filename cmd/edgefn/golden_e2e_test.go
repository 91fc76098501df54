package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestGoldenJSON and TestGoldenFleetJSON (testdata/golden/*.json)")

// TestGoldenJSON runs every command that has --json against a real agent
// (or none, for those that need none) and compares each output with its
// golden file in testdata/golden: the JSON shapes the CLI prints are a
// contract (docs/api.md), and a change to one must show up here. Fields
// that differ from run to run (times, durations, hashes, ports, paths)
// are replaced by a placeholder naming their kind, in one place
// (normalizeGolden), so the golden still says they are there and of what
// type. go test -run TestGoldenJSON -update rewrites the files.
func TestGoldenJSON(t *testing.T) {
	dir := t.TempDir()
	inbox := filepath.Join(dir, "inbox")
	if err := os.Mkdir(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, dir, "", agentOpts{noUplink: true, extra: fmt.Sprintf("grants: {max: {files: [%q]}}", inbox)})
	c := newCLI(t)
	g := &goldens{t: t, c: c}

	g.check("login", 0, "login", a.AdminURL, "--token", a.token, "--fingerprint", a.Fingerprint, "--json")
	echo := writeFunction(t, filepath.Join(dir, "echo"), "name: echo\nwasm: ./echo.wasm\ntriggers:\n  - mqtt: golden/echo\n    qos: 1\nlimits: {memory: 1MiB, timeout: 100ms}\n", example(t, "wat-minimal"), "echo.wasm")
	g.check("deploy", 0, "deploy", echo, "--json")
	conv := writeFunction(t, filepath.Join(dir, "conv"), "name: conv\nwasm: ./c.wasm\nlimits: {memory: 2MiB, timeout: 2s}\n", example(t, "c-command"), "c.wasm")
	c.ok("deploy", conv)
	// A second version of echo, for ls NAME and rollback.
	writeFunction(t, filepath.Join(dir, "echo"), "name: echo\nwasm: ./echo.wasm\ntriggers:\n  - mqtt: golden/echo\n    qos: 1\nlimits: {memory: 1MiB, timeout: 200ms}\n", "", "")
	c.ok("deploy", echo)
	g.check("ls", 0, "ls", "--json")
	g.check("ls_name", 0, "ls", "echo", "--json")

	g.check("invoke", 0, "invoke", "echo", "--data", `{"celsius": 21.5}`, "--json")
	c.ok("invoke", "echo", "--data", "plain text")
	bin := filepath.Join(dir, "bin")
	if err := os.WriteFile(bin, []byte{0xff, 0x00, 0x01}, 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("invoke", "echo", "--data", "@"+bin)
	g.check("invoke_converted", 0, "invoke", "conv", "--data", "21.5", "--json")
	g.check("invoke_failed", 1, "invoke", "conv", "--data", "warm", "--json")
	g.check("logs", 0, "logs", "conv", "--json")
	g.check("usage", 0, "usage", "--json")
	g.check("outbox", 0, "outbox", "--json")
	g.check("outbox_peek", 0, "outbox", "peek", "--json")
	g.check("outbox_peek_function", 0, "outbox", "peek", "conv", "-n", "1", "--json")
	// A file trigger, for the status's files part.
	c.ok("deploy", writeFunction(t, filepath.Join(dir, "cam"), fmt.Sprintf("name: cam\nwasm: ./echo.wasm\ntriggers:\n  - files: %s\n    pattern: \"*.txt\"\n", inbox), example(t, "wat-minimal"), "echo.wasm"))
	if err := os.WriteFile(filepath.Join(inbox, "a.txt"), []byte("snapshot"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the file processed", func() bool {
		var st api.Status
		return json.Unmarshal([]byte(c.ok("status", "--json")), &st) == nil && len(st.Files) == 1 && st.Files[0].Processed == 1
	})
	g.check("status", 0, "status", "--json")
	g.check("gpio_ls", 0, "gpio", "ls", "--json")
	g.check("gpio_set", 0, "gpio", "set", "GPIO5", "high", "--json")
	g.check("gpio_pulse", 0, "gpio", "pulse", "GPIO6", "--width", "5ms", "--json")
	g.check("rollback", 0, "rollback", "echo", "--json")
	// Completion: function names from the agent, manifests and modules
	// from the directory; nothing (not "help h") for a command that takes
	// no argument.
	if out := c.ok("invoke", "--generate-bash-completion"); out != "cam\nconv\necho\n" {
		t.Errorf("invoke NAME completion: %q, want the three functions", out)
	}
	if out, _, _ := c.runIn(filepath.Join(dir, "echo"), []string{"EDGEFN_COMPLETE_WORD=fu"}, "deploy", "--generate-bash-completion"); out != "function.yaml\n" {
		t.Errorf("deploy FILE completion: %q", out)
	}
	if out, _, _ := c.runIn(filepath.Join(dir, "echo"), nil, "run", "--generate-bash-completion"); out != "echo.wasm\nfunction.yaml\n" {
		t.Errorf("run FILE completion: %q", out)
	}
	if out := c.ok("status", "--generate-bash-completion"); out != "" {
		t.Errorf("status completion: %q, want nothing", out)
	}
	if out := c.ok("logs", "--gateway", "http://127.0.0.1:1", "--generate-bash-completion"); out != "" {
		t.Errorf("completion with no agent: %q, want nothing", out)
	}
	g.check("rm", 0, "rm", "conv", "--json")
	g.check("version", 0, "version", "--json")

	// Without an agent: run prints invoke's shape.
	g.check("run", 0, "run", guest(t, "script"), "--data", "emit {\"a\":1}\nset k v\npublish x/y z 1\nkv_delete k", "--allow-kv", "--allow-publish", "x/#", "--json")
	g.check("run_failed", 1, "run", conv, "--data", "warm", "--json")

	// Errors: one object with the exit status.
	g.check("error_not_found", 1, "ls", "nope", "--json")
	g.check("error_usage", 2, "logs", "--json")
	bad := writeFunction(t, filepath.Join(dir, "bad"), "name: bad\nwasm: ./echo.wasm\nlimits: {memory: 1GiB}\nbogus: 1\n", example(t, "wat-minimal"), "echo.wasm")
	g.check("error_deploy_refused", 1, "deploy", bad, "--json")
	g.check("error_peek_limit", 2, "outbox", "peek", "-n", "100000", "--json")

	// tail streams: the first line, from a message sent before.
	publish(t, a.Broker, "golden/echo", []string{`{"celsius": 19}`})
	out := c.background("tail", "golden/#", "-n", "1", "--json")
	waitFor(t, 20*time.Second, "tail's first line", func() bool { return strings.Contains(out.String(), "\n") })
	first, _, _ := strings.Cut(out.String(), "\n")
	g.compare("tail", first+"\n")
}

// TestGoldenFleetJSON is TestGoldenJSON for the fleet commands: their
// --json output against a real mosquitto and one real gateway process,
// compared with testdata/golden/fleet_*.json (-update rewrites them).
func TestGoldenFleetJSON(t *testing.T) {
	if testing.Short() {
		t.Skip("runs mosquitto and an agent process")
	}
	broker := mosquittotest.Start(t)
	f := fleettest.New(t, e2eBin, broker.URL())
	gw := f.Add("gw-golden", "lab")
	gw.Start()
	f.WaitOnline(60*time.Second, gw)
	g := &goldens{t: t}
	fleetCheck := func(name string, args ...string) {
		t.Helper()
		out, errOut, code := f.CLI(append(args, "--broker", f.Broker(), "--json")...)
		if code != 0 { // stderr carries the progress lines
			t.Fatalf("edgefn fleet %v: exit %d, stderr %q, stdout:\n%s", args, code, errOut, out)
		}
		g.compare(name, strings.ReplaceAll(out, f.PublicKey, "<public key>")) // fresh per run
	}
	echo := writeFunction(t, filepath.Join(t.TempDir(), "echo"), "name: echo\nwasm: ./echo.wasm\ntriggers:\n  - mqtt: golden/echo\n    qos: 1\nlimits: {memory: 1MiB, timeout: 100ms}\n", example(t, "wat-minimal"), "echo.wasm")
	fleetCheck("fleet_deploy", "deploy", echo, "--group", "lab", "--key", f.KeyFile, "--watch", "60s")
	fleetCheck("fleet_ls", "ls")
	// A second entry (other limits), so history has an earlier one and
	// rollback something to bring back.
	echo2 := writeFunction(t, filepath.Join(t.TempDir(), "echo"), "name: echo\nwasm: ./echo.wasm\ntriggers:\n  - mqtt: golden/echo\n    qos: 1\nlimits: {memory: 1MiB, timeout: 200ms}\n", example(t, "wat-minimal"), "echo.wasm")
	key := []string{"--group", "lab", "--key", f.KeyFile, "--watch", "60s"}
	fleetCheck("fleet_deploy_again", append([]string{"deploy", echo2}, key...)...)
	fleetCheck("fleet_history", "history", "echo", "--group", "lab")
	fleetCheck("fleet_rollback", append([]string{"rollback", "echo"}, key...)...)
	fleetCheck("fleet_rm", append([]string{"rm", "echo"}, key...)...)
}

// goldens runs CLI commands and compares their --json output with the
// golden files.
type goldens struct {
	t *testing.T
	c *cliEnv
}

// check runs the CLI with args, wants exit status code and nothing on
// stderr, and compares stdout with testdata/golden/NAME.json.
func (g *goldens) check(name string, code int, args ...string) {
	g.t.Helper()
	out, errOut, got := g.c.run(args...)
	if got != code || errOut != "" {
		g.t.Errorf("edgefn %s: exit %d (want %d), stderr %q, stdout:\n%s", strings.Join(args, " "), got, code, errOut, out)
		return
	}
	g.compare(name, out)
}

// compare normalizes out (one JSON value, or one a line) and compares it
// with testdata/golden/NAME.json, or rewrites that with -update.
func (g *goldens) compare(name, out string) {
	g.t.Helper()
	var vals []any
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			g.t.Errorf("%s: not JSON: %v:\n%s", name, err, out)
			return
		}
		vals = append(vals, normalizeGolden("", v))
	}
	var v any = vals
	if len(vals) == 1 {
		v = vals[0]
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		g.t.Fatal(err)
	}
	got := buf.Bytes()
	path := filepath.Join("testdata", "golden", name+".json")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			g.t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			g.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		g.t.Errorf("%s: %v (go test -run TestGoldenJSON -update writes it)", name, err)
		return
	}
	if !bytes.Equal(got, want) {
		g.t.Errorf("%s: output differs from %s (go test -run TestGoldenJSON -update rewrites it if the change is meant)\ngot:\n%s\nwant:\n%s", name, path, got, want)
	}
}

var (
	goldenHex    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	goldenTime   = regexp.MustCompile(`^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d`)
	goldenAddr   = regexp.MustCompile(`(https?://)?127\.0\.0\.1:\d+`)
	goldenTmpDir = regexp.MustCompile(`/tmp/[^\s:]+`)
	// An event id (Host.NewEventID): base 36 start time, "-", base 36
	// counter; within payloads that carry it.
	goldenEventID = regexp.MustCompile(`\b[0-9a-z]{11,14}-[0-9a-z]{1,6}\b`)
)

// Volatile fields by key: what their value is replaced with when it has
// the expected JSON type (a value of another type is left as it is, so the
// golden comparison catches it).
var goldenVolatile = map[string]string{
	// Measured durations (configured ones, such as limits, are kept).
	"duration_ms": "<ms>", "p50_ms": "<ms>", "p99_ms": "<ms>", "latency_p50_ms": "<ms>", "latency_p99_ms": "<ms>",
	"total_duration_ms": "<ms>", "elapsed_ms": "<ms>", "window_ms": "<ms>", "p99_duration_ms": "<ms>", "uptime_ms": "<ms>", "oldest_age_ms": "<ms>",
	// Fleet document sequences (milliseconds since 1970 when signed).
	"sequence": "<sequence>", "group/lab": "<sequence>", "gateway/gw-golden": "<sequence>",
	"gb_seconds": "<number>", "file_bytes": "<number>", "commits": "<number>",
	// Successful invocations are kept summed per minute.
	"invocation_records": "<number>",
	// Which of idle and warm a function is depends on when its instance
	// was last used.
	"state": "<state>",
	// The agent's and the binary's identity.
	"fingerprint": "<fingerprint>", "credentials": "<path>", "event_id": "<event id>",
	"commit": "<commit>", "modified": "<bool>", "go": "<go>", "os": "<os>", "arch": "<arch>",
}

// goldenKinds is the JSON type each placeholder stands for.
var goldenKinds = map[string]string{"<ms>": "number", "<sequence>": "number", "<number>": "number", "<bool>": "bool"}

func goldenKind(v any) string {
	switch v.(type) {
	case float64:
		return "number"
	case bool:
		return "bool"
	case string:
		return ""
	}
	return "other"
}

// normalizeGolden replaces the values that change from run to run: times,
// sha256 hashes, loopback addresses and temporary paths wherever they are,
// and the fields of goldenVolatile by key.
func normalizeGolden(key string, v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = normalizeGolden(k, e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = normalizeGolden(key, e)
		}
		return x
	}
	if ph, ok := goldenVolatile[key]; ok {
		if goldenKind(v) == goldenKinds[ph] && (ph != "<state>" || v == "idle" || v == "warm") {
			return ph
		}
		return v
	}
	s, ok := v.(string)
	if !ok {
		return v
	}
	switch {
	case key == "version" && !strings.HasPrefix(s, "<"):
		return "<version>" // version --json: the binary's
	case goldenHex.MatchString(s):
		return "<sha256>"
	case goldenTime.MatchString(s):
		return "<time>"
	}
	s = goldenAddr.ReplaceAllString(s, "<addr>")
	s = goldenEventID.ReplaceAllString(s, "<event id>")
	return goldenTmpDir.ReplaceAllString(s, "<tmp>")
}
