package main

import (
	"encoding/json"
	"strings"
	"testing"
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
