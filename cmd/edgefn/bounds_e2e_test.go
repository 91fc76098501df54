package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/internal/wasmgen"
)

// The sandbox bounds against the real agent, under the limits of the attack
// (1 MiB, 100 ms): a table.grow bomb fails at the memory cap instead of
// taking 800 MB, tables whose minimums take 1.2 GB and a module of 100,000
// functions are refused at deploy, and the agent's peak RSS stays far from
// what the bomb would have cost.
func TestE2ESandboxBounds(t *testing.T) {
	_, a, c := loggedIn(t)
	root := t.TempDir()
	td, err := filepath.Abs(filepath.Join("..", "..", "sandbox", "testdata"))
	if err != nil {
		t.Fatal(err)
	}
	manifest := func(name string) string {
		return fmt.Sprintf("name: %s\nwasm: ./f.wasm\nlimits: {memory: 1MiB, timeout: 100ms}\n", name)
	}

	p := writeFunction(t, filepath.Join(root, "tablegrow"), manifest("tablegrow"), filepath.Join(td, "tablegrow.wasm"), "f.wasm")
	c.ok("deploy", p)
	for i := 0; i < 3; i++ {
		out, errOut, code := c.run("invoke", "tablegrow", "--data", "bomb")
		if code != 1 || !strings.Contains(out+errOut, "table.grow failed at the cap of 1 MiB") {
			t.Fatalf("bomb: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	}
	c.ok("invoke", "tablegrow", "--data", "fill")

	refused := []struct {
		name string
		wasm func() string
		want string
	}{
		{"tablemin", func() string { return filepath.Join(td, "tablemin.wasm") }, "tables need at least 150000000 elements"},
		{"manyfuncs", func() string {
			p := filepath.Join(root, "manyfuncs.wasm")
			if err := os.WriteFile(p, wasmgen.Reactor(100_000, 0, 0), 0o644); err != nil {
				t.Fatal(err)
			}
			return p
		}, "module declares 100001 functions, over the agent's bound of 20000"},
	}
	for _, r := range refused {
		p := writeFunction(t, filepath.Join(root, r.name), manifest(r.name), r.wasm(), "f.wasm")
		out, errOut, code := c.run("deploy", p)
		if code != 1 || !strings.Contains(errOut, r.want) {
			t.Errorf("deploy %s: exit %d, want 1 saying %q\nstdout: %s\nstderr: %s", r.name, code, r.want, out, errOut)
		}
	}

	// Without the bound one bomb took the agent past 800 MB; 200 MiB is
	// several times what it needs.
	hwm, err := procstat.Status(a.Cmd.Process.Pid, "VmHWM")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("agent peak RSS: %.1f MiB", float64(hwm)/(1<<20))
	if hwm > 200<<20 {
		t.Errorf("agent peak RSS %.1f MiB, want under 200 MiB", float64(hwm)/(1<<20))
	}
}
