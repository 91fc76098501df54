package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The CLI habits of issue 12, with the real binary: help, version,
// suggestions, and every usage error one line on stderr with exit 2.
func TestE2EHelpVersionSuggestions(t *testing.T) {
	c := newCLI(t)
	for _, args := range [][]string{{"help"}, {"h"}, {"--help"}, {}} {
		out := c.ok(args...)
		if !strings.Contains(out, "COMMANDS:") || !strings.Contains(out, "deploy") {
			t.Errorf("edgefn %v: want the command list, got\n%s", args, out)
		}
	}
	if out := c.ok("help", "deploy"); !strings.Contains(out, "edgefn deploy - ") {
		t.Errorf("help deploy:\n%s", out)
	}
	for _, args := range [][]string{{"--version"}, {"-v"}, {"version"}} {
		out := c.ok(args...)
		if !strings.HasPrefix(out, "edgefn ") || !strings.Contains(out, "(commit ") {
			t.Errorf("edgefn %v: %q", args, out)
		}
	}
	var v buildInfo
	if err := json.Unmarshal([]byte(c.ok("version", "--json")), &v); err != nil || v.Version == "" || v.Go == "" {
		t.Errorf("version --json: %+v %v", v, err)
	}
	// rollback --help: --to has one default, not "(default: …) (default: 0)".
	if out := c.ok("rollback", "--help"); strings.Contains(out, ") (default") {
		t.Errorf("rollback --help doubles a default:\n%s", out)
	}
}

func TestE2EUsageErrors(t *testing.T) {
	c := newCLI(t)
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"dploy"}, "edgefn: unknown command dploy, did you mean deploy?"},
		{[]string{"xyzzy"}, "edgefn: unknown command xyzzy"},
		{[]string{"ls", "--bogus"}, "edgefn: ls: flag provided but not defined: -bogus"},
		{[]string{"logs", "--bogus", "fn"}, "edgefn: logs: flag provided but not defined: -bogus"},
		{[]string{"logs", "fn", "--bogus"}, "edgefn: logs: flag provided but not defined: -bogus"},
		{[]string{"invoke"}, "edgefn: invoke: want a function NAME"},
		{[]string{"rollback", "--to", "x", "fn"}, "edgefn: rollback: "},
		{[]string{"completion", "fish"}, "edgefn: completion: "},
		{[]string{"completion"}, "edgefn: completion: want bash or zsh, got 0 argument(s)"},
		// help NAME and subcommands: the same suggestion as a command.
		{[]string{"help", "dploy"}, "edgefn: unknown command dploy, did you mean deploy?"},
		{[]string{"h", "xyzzy"}, "edgefn: unknown command xyzzy"},
		{[]string{"gpio", "puls"}, "edgefn: unknown command gpio puls, did you mean gpio pulse?"},
		{[]string{"gpio", "help", "puls"}, "edgefn: unknown command gpio puls, did you mean gpio pulse?"},
		{[]string{"fleet", "xyzzy"}, "edgefn: unknown command fleet xyzzy"},
		// Argument counts, named by the command as typed.
		{[]string{"logs", "a", "b"}, "edgefn: logs: want a function NAME, got 2 argument(s)"},
		{[]string{"rm", "a", "b"}, "edgefn: rm: want a function NAME, got 2 argument(s)"},
		{[]string{"login", "a", "b"}, "edgefn: login: want the agent's URL, got 2 argument(s)"},
		{[]string{"run"}, "edgefn: run: want one function.yaml, DIR or MODULE.wasm, got 0 argument(s)"},
		{[]string{"run", "a.wasm", "b.wasm"}, "edgefn: run: want one function.yaml, DIR or MODULE.wasm, got 2 argument(s)"},
		{[]string{"build", "a", "b"}, "edgefn: build: want "},
		{[]string{"deploy", "a", "b"}, "edgefn: deploy: want at most one manifest file, got 2 argument(s)"},
		{[]string{"new"}, "edgefn: new: want the function's NAME, got 0 argument(s)"},
		{[]string{"tail", "a", "b"}, "edgefn: tail: want at most one topic FILTER, got 2 argument(s)"},
		{[]string{"status", "x"}, "edgefn: status: want no arguments, got 1 argument(s)"},
		{[]string{"usage", "x"}, "edgefn: usage: want no arguments, got 1 argument(s)"},
		{[]string{"version", "x"}, "edgefn: version: want no arguments, got 1 argument(s)"},
		{[]string{"keygen", "a", "b"}, "edgefn: keygen: want at most one KEYFILE, got 2 argument(s)"},
		{[]string{"agent", "x"}, "edgefn: agent "},
		{[]string{"gpio", "pulse"}, "edgefn: gpio pulse: want a PIN such as GPIO17, got 0 argument(s)"},
		{[]string{"fleet", "deploy"}, "edgefn: fleet deploy: want one manifest file, got 0 argument(s)"},
		// Flag values and unknown flags, before or after the argument.
		{[]string{"new", "x", "--lang"}, "edgefn: new: flag needs an argument: -lang"},
		{[]string{"new", "x", "--lang", "cobol"}, `edgefn: new: --lang "cobol": use go, c, rust, as or wat`},
		{[]string{"new", "Bad Name", "--lang", "go"}, `edgefn: new: name "Bad Name": `},
		{[]string{"logs", "fn", "-n", "x"}, `edgefn: logs: invalid value "x" for flag -n`},
		{[]string{"run", "x.wasm", "--timeout", "bad"}, `edgefn: run: invalid value "bad" for flag -timeout`},
		{[]string{"rollback", "fn", "--to", "-1"}, "edgefn: rollback: --to -1: versions start at 1"},
		{[]string{"agent", "--bogus"}, "edgefn: agent: flag provided but not defined: -bogus"},
		{[]string{"gpio", "pulse", "GPIO17", "--bogus"}, "edgefn: gpio pulse: flag provided but not defined: -bogus"},
		{[]string{"fleet", "deploy", "--bogus", "f.yaml"}, "edgefn: fleet deploy: flag provided but not defined: -bogus"},
	}
	for _, tc := range cases {
		out, errOut, code := c.run(tc.args...)
		if code != 2 || out != "" || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, tc.want) {
			t.Errorf("edgefn %v: exit %d, stdout %q, stderr %q; want exit 2 and one line %q...", tc.args, code, out, errOut, tc.want)
		}
		// Under --json: the same exit status, the error as JSON on stdout.
		out, errOut, code = c.run(append(tc.args, "--json")...)
		var e struct {
			Error string `json:"error"`
			Code  int    `json:"code"`
		}
		if err := json.Unmarshal([]byte(out), &e); err != nil || code != 2 || e.Code != 2 || e.Error == "" || errOut != "" {
			t.Errorf("edgefn %v --json: exit %d, stdout %q, stderr %q", tc.args, code, out, errOut)
		}
	}
	// A runtime error (no agent listening) is exit 1, as JSON under --json.
	out, _, code := c.run("ls", "--gateway", "http://127.0.0.1:1", "--token", "t", "--json")
	var e struct {
		Error string `json:"error"`
		Code  int    `json:"code"`
	}
	if err := json.Unmarshal([]byte(out), &e); err != nil || code != 1 || e.Code != 1 {
		t.Errorf("ls --json without an agent: exit %d, %q", code, out)
	}
}

// With no uplink configured, status says so and how many records wait, and
// the dashboard series exist from the start at zero.
func TestE2EStatusWithoutUplinkAndMetricsAtZero(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, "", agentOpts{noUplink: true})
	c := cliFor(t, a)
	c.ok("deploy", writeFunction(t, filepath.Join(dir, "fn"), fmt.Sprintf(echoManifest, "2MiB"), example(t, "wat-minimal"), "echo.wasm"))

	body := scrape(t, a)
	for _, want := range []string{
		`edgefn_uplink_online{uplink="none"} 0`,
		`edgefn_drops_total{function="echo",reason="queue_full"} 0`,
		`edgefn_chain_drops_total{function="echo"} 0`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	c.ok("invoke", "echo", "--data", "one")
	c.ok("invoke", "echo", "--data", "two")
	if out := c.ok("status"); !strings.Contains(out, "no uplink configured: 2 records waiting") {
		t.Errorf("status:\n%s", out)
	}
	if body := scrape(t, a); !strings.Contains(body, `edgefn_uplink_backlog_records{uplink="none"} 2`) {
		t.Errorf("/metrics: no backlog of 2 for uplink none")
	}
}

// scrape reads the agent's /metrics with its token.
func scrape(t *testing.T, a *agentProc) string { return adminGet(t, a, "/metrics") }

// adminGet reads a page of the agent's admin listener (metrics, the web
// console) with its token.
func adminGet(t *testing.T, a *agentProc, path string) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", a.AdminURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s: %d %v", path, resp.StatusCode, err)
	}
	return string(b)
}

// edgefn tail prints the MQTT traffic matching its filter, through the
// agent with the token (no broker login), real mosquitto_pub messages.
func TestE2ETail(t *testing.T) {
	_, a, c := loggedIn(t)
	publish(t, a.Broker, "sensors/kitchen/temp", []string{"before"})

	out := c.background("tail", "sensors/#", "--json", "-n", "5")
	waitFor(t, 10*time.Second, "the message from before", func() bool { return strings.Contains(out.String(), `"before"`) })
	publish(t, a.Broker, "sensors/hall/temp", []string{"21.5"})
	publish(t, a.Broker, "other/topic", []string{"not me"})
	waitFor(t, 10*time.Second, "the new message", func() bool { return strings.Contains(out.String(), `"21.5"`) })
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m struct {
			Topic   string `json:"topic"`
			Payload string `json:"payload"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil || !strings.HasPrefix(m.Topic, "sensors/") {
			t.Errorf("tail --json line %q: %v", l, err)
		}
	}
	// The table form, and a bad filter is an error naming it.
	tbl := c.background("tail", "sensors/+/temp")
	waitFor(t, 10*time.Second, "the table line", func() bool { return strings.Contains(tbl.String(), "sensors/hall/temp (qos 1)  21.5") })
	if _, errOut, code := c.run("tail", "a/#/b"); code != 1 || !strings.Contains(errOut, "a/#/b") {
		t.Errorf("tail a/#/b: exit %d, %q", code, errOut)
	}
}

// invoke --subject/--source: the event poses as an MQTT message, for a
// function that reads its topic (the C example prints EDGEFN_SUBJECT).
func TestE2EInvokeSubjectSource(t *testing.T) {
	_, _, c := loggedIn(t)
	c.ok("deploy", writeFunction(t, t.TempDir(), "name: conv\nwasm: ./c.wasm\ntriggers:\n  - mqtt: e2e/celsius\n    qos: 1\nlimits: {memory: 2MiB, timeout: 2s}\n", example(t, "c-command"), "c.wasm"))
	out := c.ok("invoke", "conv", "--data", "21.5", "--subject", "sensors/hall/celsius", "--source", "mqtt")
	if !strings.Contains(out, `sensors/hall/celsius`) {
		t.Errorf("invoke --subject: the function did not see the topic:\n%s", out)
	}
	if out := c.ok("invoke", "conv", "--data", "21.5"); !strings.Contains(out, `"subject":"conv"`) {
		t.Errorf("invoke without --subject: want the function name as subject:\n%s", out)
	}
	if _, errOut, code := c.run("invoke", "conv", "--source", "smtp"); code != 2 || !strings.Contains(errOut, "smtp") {
		t.Errorf("invoke --source smtp: exit %d %q", code, errOut)
	}
}

// A SIGINT is a clean stop: the agent watching a GPIO pin (the chip closes
// under the watch), subscribed to a topic, shipping records to its uplink
// and streaming traffic to a tail logs no ERROR line and exits 0.
func TestE2ESIGINTLogsNoError(t *testing.T) {
	dir := t.TempDir()
	cloud := newReceiver(t)
	a := startAgent(t, dir, cloud.srv.URL, agentOpts{})
	c := cliFor(t, a)
	c.ok("deploy", writeFunction(t, filepath.Join(dir, "fn"), "name: button\nwasm: ./echo.wasm\ntriggers:\n  - gpio: GPIO17\n    edge: falling\nlimits: {memory: 2MiB}\n",
		example(t, "wat-minimal"), "echo.wasm"))
	c.ok("deploy", writeFunction(t, filepath.Join(dir, "echo"), fmt.Sprintf(echoManifest, "2MiB"), example(t, "wat-minimal"), "echo.wasm"))
	tailOut := c.background("tail", "#")
	// An edge and a message handled prove the pin is watched and the topic
	// subscribed before the signal.
	c.ok("gpio", "pulse", "GPIO17")
	publish(t, a.Broker, "e2e/echo", []string{"before the signal"})
	waitFor(t, 20*time.Second, "both records at the cloud", func() bool { return len(cloud.snapshot()) == 2 })
	waitFor(t, 10*time.Second, "the message in tail", func() bool { return strings.Contains(tailOut.String(), "before the signal") })
	if err := a.Cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case <-a.Done():
		if err := a.Err(); err != nil {
			t.Errorf("agent exit after SIGINT: %v", err)
		}
	case <-time.After(30 * time.Second):
		a.Kill()
		t.Fatal("agent did not stop within 30s of SIGINT")
	}
	logs := a.Stderr.String()
	if !strings.Contains(logs, "shutting down") {
		t.Fatalf("no shutdown in the agent's log:\n%s", logs)
	}
	for _, l := range strings.Split(logs, "\n") {
		if strings.Contains(l, "level=ERROR") {
			t.Errorf("ERROR line on a clean SIGINT: %s", l)
		}
	}
}
