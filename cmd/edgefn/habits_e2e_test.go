package main

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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
	c := newCLI(t)
	c.login(a)
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
func scrape(t *testing.T, a *agentProc) string {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", a.url+"/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+a.token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d %v", resp.StatusCode, err)
	}
	return string(b)
}
