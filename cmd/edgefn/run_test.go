package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/gateway/api"
)

func guest(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join("..", "..", "sandbox", "testdata", name+".wasm")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run `make wasm` first)", p, err)
	}
	return p
}

// runner returns a function running `edgefn CMD args...` as a workstation
// would (newCLI) that returns its stdout and stderr, joined, and the exit
// status.
func runner(t *testing.T, cmd string) func(args ...string) (string, int) {
	c := newCLI(t)
	return func(args ...string) (string, int) {
		t.Helper()
		out, errOut, code := c.run(append([]string{cmd}, args...)...)
		return out + errOut, code
	}
}

func TestRunCommand(t *testing.T) {
	run := runner(t, "run")

	out, code := run(guest(t, "script"), "--data", "emit hi\nset a 1\npublish x/y z 1", "--allow-kv", "--allow-publish", "x/#", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// The shape of invoke --json.
	var got api.Invocation
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got.Outcome != "ok" || len(got.Records) != 1 || got.Records[0].Payload != "hi" ||
		len(got.Published) != 1 || got.Published[0].Topic != "x/y" || got.Published[0].QoS != 1 || got.Published[0].Payload != "z" ||
		len(got.KV) != 1 || got.KV[0].Op != "set" || got.KV[0].Payload != "1" || len(got.Logs) != 3 {
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

// scriptProject writes a project directory with the script guest as
// script.wasm and manifest as function.yaml.
func scriptProject(t *testing.T, manifest string) (dir, man string) {
	t.Helper()
	dir = t.TempDir()
	wasm, err := os.ReadFile(guest(t, "script"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "script.wasm"), wasm, 0o644); err != nil {
		t.Fatal(err)
	}
	man = filepath.Join(dir, "function.yaml")
	if err := os.WriteFile(man, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir, man
}

// TestRunManifest runs function.yaml: the manifest's grants, env and
// trigger shape the run, --env overrides, the simulated GPIO reads --high
// pins and takes writes, and --kv-file keeps kv across runs (not the
// writes of a failed run).
func TestRunManifest(t *testing.T) {
	run := runner(t, "run")
	dir, man := scriptProject(t, `name: scr
wasm: script.wasm
triggers:
  - mqtt: scr/in/+
    qos: 1
allow:
  kv: true
  publish: [scr/out]
  gpio_read: [GPIO4]
  gpio_write: [GPIO17]
env:
  A: from-manifest
  B: kept
`)
	kv := filepath.Join(dir, "kv.json")
	script := "meta subject\nmeta qos\nmeta env.A\nmeta env.B\nget n\nset n 1\ngpior GPIO4\ngpior GPIO5\ngpiow GPIO17 1\npublish scr/out hi\npublish other x\nfail"
	out, code := run(man, "--env", "A=overridden", "--high", "GPIO4", "--kv-file", kv, "--data", script)
	if code != 1 {
		t.Fatalf("exit %d, want 1 (fail): %s", code, out)
	}
	for _, want := range []string{"meta=8:scr/in/x", "meta=1:1", "meta=10:overridden", "meta=4:kept", "get=-3", "gpior=1", "gpior=-1", "gpiow=0", "publish=0", "publish=-1"} {
		if !strings.Contains(out, "log info: "+want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	if _, err := os.Stat(kv); err == nil {
		t.Errorf("a failed run wrote %s", kv)
	}
	// The same without the forbidden publish, from the directory: kv kept.
	script = "set n 1\ngpiow GPIO17 1"
	if out, code := run(dir, "--kv-file", kv, "--data", script); code != 0 || !strings.Contains(out, "gpio_write GPIO17: true") {
		t.Fatalf("exit %d: %s", code, out)
	}
	if out, code := run(dir, "--kv-file", kv, "--data", "get n", "--pin", "GPIO4", "--edge", "falling"); code != 0 || !strings.Contains(out, "get=1:1") {
		t.Errorf("kv not kept across runs: exit %d: %s", code, out)
	}
	// --pin shapes the gpio event (payload and meta) when --data is absent.
	out, code = run(dir, "--pin", "GPIO4", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	// A module missing next to the manifest is a usage error naming build.
	if err := os.Remove(filepath.Join(dir, "script.wasm")); err != nil {
		t.Fatal(err)
	}
	if out, code := run(man); code != 2 || !strings.Contains(out, "edgefn build") {
		t.Errorf("missing module: exit %d: %s", code, out)
	}
}

// --file shapes the event as a files trigger does: the file's content as
// payload, meta file.name and file.size, source file, subject the
// trigger's directory resolved next to the manifest; a file over the
// trigger's max_size is refused as the agent refuses it.
func TestRunFile(t *testing.T) {
	run := runner(t, "run")
	dir, man := scriptProject(t, "name: cam\nwasm: script.wasm\ntriggers:\n  - files: inbox\n    max_size: 64B\n")
	// The payload is the script guest's program.
	drop := filepath.Join(t.TempDir(), "shot.jpg")
	script := "meta source\nmeta subject\nmeta file.name\nmeta file.size"
	if err := os.WriteFile(drop, []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, code := run(man, "--file", drop)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	inbox := filepath.Join(dir, "inbox")
	for _, want := range []string{"meta=4:file", fmt.Sprintf("meta=%d:%s", len(inbox), inbox), "meta=8:shot.jpg", fmt.Sprintf("meta=2:%d", len(script))} {
		if !strings.Contains(out, "log info: "+want+"\n") {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
	// Over max_size: refused, the function does not run.
	if err := os.WriteFile(drop, []byte(strings.Repeat("x", 65)), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run(man, "--file", drop); code != 1 || !strings.Contains(out, "65 bytes, over the trigger's max_size 64B") || strings.Contains(out, "outcome") {
		t.Errorf("oversize: exit %d: %s", code, out)
	}
	// --file with --data is a usage error; a bare module takes the file's directory.
	if out, code := run(man, "--file", drop, "--data", "x"); code != 2 || !strings.Contains(out, "leave out --data") {
		t.Errorf("--file --data: exit %d: %s", code, out)
	}
	if err := os.WriteFile(drop, []byte("meta subject"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, code := run(guest(t, "script"), "--file", drop); code != 0 || !strings.Contains(out, "meta="+fmt.Sprint(len(filepath.Dir(drop)))+":"+filepath.Dir(drop)+"\n") {
		t.Errorf("bare module: exit %d: %s", code, out)
	}
}

// TestBuildCommand runs the manifest's build: line and checks the module
// against the manifest's limits: a failing command, a module over
// limits.memory and a manifest with no build: are refused.
func TestBuildCommand(t *testing.T) {
	if _, err := exec.LookPath("wat2wasm"); err != nil {
		t.Skip("wat2wasm not installed")
	}
	build := runner(t, "build")
	dir := t.TempDir()
	write := func(name, s string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, name), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("m.wat", `(module (memory (export "memory") 2) (func (export "edgefn_handle") (param i32) (result i32) i32.const 0))`)
	write("function.yaml", "name: m\nwasm: m.wasm\nbuild: wat2wasm -o m.wasm m.wat\n")
	if out, code := build(dir); code != 0 || !strings.Contains(out, "reactor, ABI v1 ok") || !strings.Contains(out, "edgefn_handle") {
		t.Errorf("exit %d: %s", code, out)
	}
	write("function.yaml", "name: m\nwasm: m.wasm\nbuild: wat2wasm -o m.wasm m.wat\nlimits: { memory: 64KiB }\n")
	if out, code := build(filepath.Join(dir, "function.yaml")); code != 1 || !strings.Contains(out, "limits.memory") {
		t.Errorf("over limits.memory: exit %d: %s", code, out)
	}
	write("function.yaml", "name: m\nwasm: m.wasm\nbuild: wat2wasm -o m.wasm missing.wat\n")
	if out, code := build(dir); code != 1 {
		t.Errorf("failing build: exit %d: %s", code, out)
	}
	write("function.yaml", "name: m\nwasm: m.wasm\n")
	if out, code := build(dir); code != 2 || !strings.Contains(out, "no build:") {
		t.Errorf("no build: exit %d: %s", code, out)
	}
}
