package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
)

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
