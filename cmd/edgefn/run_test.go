package main

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildBinary builds the edgefn binary into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "edgefn")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func guest(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "sandbox", "testdata", name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run `make wasm` first)", p, err)
	}
	return p
}

func TestRunCommand(t *testing.T) {
	bin := buildBinary(t)
	run := func(args ...string) (string, int) {
		out, err := exec.Command(bin, append([]string{"run"}, args...)...).CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}

	out, code := run(guest(t, "script"), "--data", "emit hi\nset a 1\npublish x/y z 1", "--allow-kv", "--allow-publish", "x/#", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var got struct {
		Outcome   string
		Emitted   []struct{ Text string }
		Published []struct {
			Topic   string
			QoS     int
			Payload struct{ Text string }
		}
		KV []struct {
			Op, Key string
			Value   struct{ Text string }
		}
		Logs []struct{ Level, Message string }
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Outcome != "ok" || len(got.Emitted) != 1 || got.Emitted[0].Text != "hi" ||
		len(got.Published) != 1 || got.Published[0].Topic != "x/y" || got.Published[0].QoS != 1 || got.Published[0].Payload.Text != "z" ||
		len(got.KV) != 1 || got.KV[0].Op != "set" || got.KV[0].Value.Text != "1" || len(got.Logs) != 3 {
		t.Errorf("unexpected output: %s", out)
	}

	data := filepath.Join(t.TempDir(), "payload")
	if err := os.WriteFile(data, []byte("from file"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, code = run(guest(t, "cmd"), "--data", "@"+data)
	if code != 0 || !strings.Contains(out, "emit: FROM FILE") || !strings.Contains(out, "outcome: ok") {
		t.Errorf("command module: exit %d: %s", code, out)
	}

	out, code = run("--timeout", "20ms", guest(t, "loop"), "--json")
	if code != 1 || !strings.Contains(out, `"outcome": "timeout"`) {
		t.Errorf("loop: exit %d: %s", code, out)
	}
	out, code = run(guest(t, "grow"), "--memory", "1MiB")
	if code != 1 || !strings.Contains(out, "outcome: memory") {
		t.Errorf("grow: exit %d: %s", code, out)
	}
	out, code = run(guest(t, "bad"))
	if code != 1 || !strings.Contains(out, "unknown import foo.bar") {
		t.Errorf("bad module: exit %d: %s", code, out)
	}
	for _, args := range [][]string{
		{},
		{guest(t, "trivial"), "--memory", "64MB"},
		{guest(t, "trivial"), "--source", "carrier-pigeon"},
		{guest(t, "trivial"), "--allow-publish", "a/#/b"},
		{guest(t, "trivial"), "extra"},
		{"/nonexistent.wasm"},
	} {
		if out, code := run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, out)
		}
	}
}
