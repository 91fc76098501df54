package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The operator's ceilings hold against the real agent: a limit above
// limits.max is refused at deploy and a function stored before a maximum
// was lowered is not loaded, so invoke cannot run it beyond the new maximum;
// a publish grant reaching another function's trigger topic is refused
// unless grants.max.publish_to_triggers allows it.
func TestE2ECeilings(t *testing.T) {
	cloud := newReceiver(t)
	dir := t.TempDir()
	echo := example(t, "wat-minimal")
	root := t.TempDir()
	const head = "wasm: ./f.wasm\n"
	high := agentOpts{limits: "{default: {max_output: 4KiB}, max: {memory: 64MiB, max_output: 8KiB}}"}
	a := startAgent(t, dir, cloud.srv.URL, high)
	c := cliFor(t, a)

	// Above the maximum: refused, naming line, field and maximum.
	p := writeFunction(t, filepath.Join(root, "over"), "name: echo\n"+head+"limits: {max_output: 16KiB}\n", echo, "f.wasm")
	if _, errOut, code := c.run("deploy", p); code != 1 || !strings.Contains(errOut, "function.yaml:3: limits.max_output: 16KiB: over the agent's maximum 8KiB") {
		t.Fatalf("deploy over the maximum: exit %d: %s", code, errOut)
	}
	// At the maximum: the invocation's output is bounded by it.
	p = writeFunction(t, filepath.Join(root, "at"), "name: echo\n"+head+"limits: {max_output: 8KiB}\n", echo, "f.wasm")
	c.ok("deploy", p)
	big := filepath.Join(root, "payload")
	if err := os.WriteFile(big, bytes.Repeat([]byte("x"), 20<<10), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, errOut, code := c.run("invoke", "echo", "--data", "@"+big); code != 1 || !strings.Contains(out+errOut, "output_limit") {
		t.Errorf("invoke emitting 20KiB under an 8KiB maximum: exit %d: %s %s", code, out, errOut)
	}
	if out := c.ok("invoke", "echo", "--data", "small"); !strings.Contains(out, "small") {
		t.Errorf("invoke within the maximum: %s", out)
	}

	// A chain: relay may publish to relay/#, which sink is triggered by.
	p = writeFunction(t, filepath.Join(root, "sink"), "name: sink\n"+head+"triggers:\n  - mqtt: relay/out\n", echo, "f.wasm")
	c.ok("deploy", p)
	relay := writeFunction(t, filepath.Join(root, "relay"), "name: relay\n"+head+"allow:\n  publish: [\"relay/#\"]\n", echo, "f.wasm")
	if _, errOut, code := c.run("deploy", relay); code != 1 ||
		!strings.Contains(errOut, `function.yaml:4: allow.publish[0]: "relay/#": reaches topic "relay/out" that function "sink" is triggered by; the agent config's grants.max.publish_to_triggers must allow it`) {
		t.Fatalf("deploy of a grant on another function's trigger: exit %d: %s", code, errOut)
	}
	a.Stop(t)

	// The operator lowers max_output: the stored echo (8KiB) is not loaded,
	// so invoke cannot run it; and allows the relay -> sink chain.
	low := agentOpts{limits: "{default: {max_output: 1KiB}, max: {memory: 64MiB, max_output: 2KiB}}",
		extra: "grants:\n  max:\n    publish_to_triggers: [\"relay/#\"]\n"}
	b := startAgent(t, dir, cloud.srv.URL, low)
	c.login(b)
	if out, errOut, code := c.run("invoke", "echo", "--data", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("invoke of a function above the lowered maximum: exit %d: %s %s", code, out, errOut)
	}
	waitFor(t, 10*time.Second, "the agent to log the function it did not load", func() bool {
		s := b.Stderr.String()
		return strings.Contains(s, "echo") && strings.Contains(s, "limits.max_output: 8KiB: over the agent's maximum 2KiB")
	})
	c.ok("deploy", relay)
}

// A config file of 100 MB is refused before it is parsed, quickly, with a
// short error (it took 4 s and 790 MB and was echoed whole in the error).
func TestE2EHugeConfigRefused(t *testing.T) {
	p := filepath.Join(t.TempDir(), "edgefn.yaml")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	line := "gateway_id: " + strings.Repeat("x", 1000) + "\n"
	for range (100 << 20) / len(line) {
		if _, err := f.WriteString(line); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, stderr, code := newCLI(t).run("agent", "--config", p)
	t.Logf("refused in %v: %s", time.Since(start), strings.TrimSpace(stderr))
	if code == 0 {
		t.Fatal("the agent started on a 100 MB config")
	}
	if !strings.Contains(stderr, "larger than the 1024 KiB a config or manifest file may be") || len(stderr) > 1000 {
		t.Errorf("stderr (%d bytes): %.2000s", len(stderr), stderr)
	}
}
