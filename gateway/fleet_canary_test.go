package gateway

import (
	"context"
	"encoding/json"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/sync/fleet"
)

// fleetResultJSON is the part of fleet deploy|rollback|rm --json the tests
// read.
type fleetResultJSON struct {
	Sequence     uint64            `json:"sequence"`
	Canaries     []string          `json:"canaries"`
	CanaryFailed map[string]string `json:"canary_failed"`
	RolledBack   bool              `json:"rolled_back"`
	Converged    []string          `json:"converged"`
	Module       string            `json:"module_sha256"`
}

func fleetJSON(t *testing.T, wantCode int, args ...string) (fleetResultJSON, string) {
	t.Helper()
	out, errOut, code := fleetCLI(t, append(args, "--json")...)
	var res fleetResultJSON
	if code != wantCode || json.Unmarshal([]byte(out), &res) != nil {
		t.Fatalf("fleet %s: exit %d, want %d\n%s\n%s", strings.Join(args, " "), code, wantCode, out, errOut)
	}
	return res, errOut
}

func fleetStatusOf(t *testing.T, broker, gw string) fleet.StatusDoc {
	t.Helper()
	for _, st := range fleetLs(t, broker) {
		if st.Gateway == gw {
			return st
		}
	}
	return fleet.StatusDoc{}
}

func fnStatus(st fleet.StatusDoc, name string) (fleet.StatusFunction, bool) {
	i := slices.IndexFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == name })
	if i < 0 {
		return fleet.StatusFunction{}, false
	}
	return st.Functions[i], true
}

// ledgerNames reports whether a document a gateway accepted for one of
// the targets (its data dir's fleet.json) names the module sha.
func ledgerNames(t *testing.T, dataDir, sha string, targets ...string) bool {
	t.Helper()
	l, err := fleet.OpenLedger(filepath.Join(dataDir, "fleet.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, target := range targets {
		e, ok := l.Get(target)
		if !ok {
			continue
		}
		p, _ := json.Marshal(e.Signed)
		d, err := fleet.Peek(p)
		if err != nil {
			t.Fatal(err)
		}
		if slices.ContainsFunc(d.Functions, func(f fleet.Function) bool { return f.Module.SHA256 == sha }) {
			return true
		}
	}
	return false
}

// A canary whose function traps on every event is rolled back
// automatically, and the gateways outside the canary never activate it;
// then rollback and rm end to end through real agent processes.
func TestFleetCanaryRollbackRm(t *testing.T) {
	skipShort(t, "builds the agent and runs gateways as child processes")
	broker := mosquittotest.Start(t)
	key, pub, _ := fleetKeyPair(t)
	ids := []string{"gw-a", "gw-b", "gw-c"}
	dirs := map[string]string{}
	for _, id := range ids {
		dirs[id] = t.TempDir()
		startAgentProc(t, fleetGatewayConfig(t, dirs[id], id, broker.URL(), pub, "lab"))
	}
	waitFor(t, func() bool {
		sts := fleetLs(t, broker.URL())
		return len(sts) == len(ids) && !slices.ContainsFunc(sts, func(s fleet.StatusDoc) bool { return !s.Online })
	})
	// The same function, echo, with other modules (fleetManifest: topic
	// fleet-echo/#).
	shas := map[string]string{}
	deploy := func(wasm string, extra ...string) []string {
		var path string
		path, shas[wasm] = fleetManifest(t, "echo", wasm)
		return append([]string{"deploy", path, "--broker", broker.URL(), "--group", "lab", "--key", key}, extra...)
	}
	for _, w := range []string{"echo.wasm", "trap.wasm", "logecho.wasm"} {
		deploy(w)
	}
	echoSHA, trapSHA, logSHA := shas["echo.wasm"], shas["trap.wasm"], shas["logecho.wasm"]
	res, _ := fleetJSON(t, 0, deploy("echo.wasm", "--watch", "60s")...)
	if len(res.Converged) != 3 {
		t.Fatalf("echo converged on %v", res.Converged)
	}

	// Events flow to every gateway during the canary.
	cn, err := fleet.Connect(context.Background(), fleet.Dial{Broker: broker.URL()}, fleet.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_ = cn.Publish(ctx, "fleet-echo/t", []byte(`{"t":21}`), false)
				cancel()
			}
		}
	}()

	res, errOut := fleetJSON(t, 1, deploy("trap.wasm", "--canary", "1", "--watch", "20s", "--max-error-rate", "10%")...)
	if !slices.Equal(res.Canaries, []string{"gw-a"}) || !res.RolledBack || res.Sequence != 0 ||
		!strings.Contains(res.CanaryFailed["gw-a"], "trap") || !strings.Contains(res.CanaryFailed["gw-a"], "above --max-error-rate 10.0%") {
		t.Fatalf("trapping canary: %+v\n%s", res, errOut)
	}
	if !strings.Contains(errOut, "gw-a: rolled back to echo version") || !strings.Contains(errOut, "edgefn: canary gw-a:") {
		t.Errorf("progress lines:\n%s", errOut)
	}
	t.Logf("canary output:\n%s", errOut)
	waitFor(t, func() bool {
		f, ok := fnStatus(fleetStatusOf(t, broker.URL(), "gw-a"), "echo")
		return ok && f.Hash == echoSHA
	})
	for _, id := range []string{"gw-b", "gw-c"} {
		f, _ := fnStatus(fleetStatusOf(t, broker.URL(), id), "echo")
		// Version 1: nothing else was ever activated there.
		targets := []string{"group/lab", "gateway/" + id}
		if !ledgerNames(t, dirs[id], echoSHA, targets...) {
			t.Fatalf("%s: its ledger does not name echo: the check below would prove nothing", id)
		}
		if f.Hash != echoSHA || f.Version != 1 || ledgerNames(t, dirs[id], trapSHA, targets...) {
			t.Errorf("%s outside the canary: %+v (ledger names the trap: %v)", id, f, ledgerNames(t, dirs[id], trapSHA, targets...))
		}
	}
	if f, _ := fnStatus(fleetStatusOf(t, broker.URL(), "gw-a"), "echo"); f.Version != 3 {
		t.Errorf("gw-a after the canary: %+v, want version 3 (echo, trap, echo again)", f)
	}
	// Ctrl-C during a canary's watch: the canary still goes back.
	run := fleettest.New(t, agentBinary(t), broker.URL()).Background(deploy("logecho.wasm", "--canary", "1", "--watch", "60s")...)
	run.WaitLine(60*time.Second, "watching for")
	run.Interrupt()
	if _, errOut, code := run.Wait(60 * time.Second); code != 1 || !strings.Contains(errOut, "documents are written back") {
		t.Errorf("interrupted canary: exit %d\n%s", code, errOut)
	}
	waitFor(t, func() bool {
		f, ok := fnStatus(fleetStatusOf(t, broker.URL(), "gw-a"), "echo")
		return ok && f.Hash == echoSHA
	})
	// A canary that saw too few events is not judged healthy.
	res, errOut = fleetJSON(t, 1, deploy("logecho.wasm", "--canary", "1", "--watch", "3s", "--min-invocations", "100000")...)
	if !res.RolledBack || !strings.Contains(res.CanaryFailed["gw-a"], "--min-invocations 100000") {
		t.Errorf("canary with too few invocations: %+v\n%s", res, errOut)
	}
	// A healthy canary (the same function, logecho) goes on to the group.
	res, errOut = fleetJSON(t, 0, deploy("logecho.wasm", "--canary", "34%", "--watch", "10s", "--min-invocations", "5")...)
	if !slices.Equal(res.Canaries, []string{"gw-a", "gw-b"}) || res.Sequence == 0 || len(res.Converged) != 3 || res.Module != logSHA {
		t.Fatalf("healthy canary: %+v\n%s", res, errOut)
	}
	if !strings.Contains(errOut, "gw-b: healthy: echo version") {
		t.Errorf("progress lines:\n%s", errOut)
	}
	// The canaries' health (followed: published as invocations move) is
	// that of the new version: invocations, a p99, no failures.
	waitFor(t, func() bool {
		f, _ := fnStatus(fleetStatusOf(t, broker.URL(), "gw-b"), "echo")
		return f.Hash == logSHA && f.Invocations > 0 && f.P99 > 0 && f.Window > 0
	})
	if f, _ := fnStatus(fleetStatusOf(t, broker.URL(), "gw-b"), "echo"); len(f.Failures) > 0 {
		t.Errorf("gw-b's health after a healthy canary: %+v", f.Health)
	}

	// Rollback: the entry logecho replaced, signed again.
	flags := []string{"--broker", broker.URL(), "--group", "lab", "--key", key, "--watch", "60s"}
	res, _ = fleetJSON(t, 0, append([]string{"rollback", "echo"}, flags...)...)
	if res.Module != echoSHA || len(res.Converged) != 3 {
		t.Errorf("rollback: %+v", res)
	}
	// rm, and rollback brings it back.
	res, _ = fleetJSON(t, 0, append([]string{"rm", "echo"}, flags...)...)
	if len(res.Converged) != 3 {
		t.Errorf("rm: %+v", res)
	}
	for _, id := range ids {
		if _, ok := fnStatus(fleetStatusOf(t, broker.URL(), id), "echo"); ok {
			t.Errorf("%s still runs echo after rm", id)
		}
	}
	// history shows what rollback would bring back.
	out, errOut, code := fleetCLI(t, "history", "echo", "--broker", broker.URL(), "--group", "lab", "--json")
	var hist struct {
		Current *struct{}
		Earlier []struct {
			Module   string `json:"module_sha256"`
			Sequence uint64 `json:"sequence"`
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &hist) != nil || hist.Current != nil || len(hist.Earlier) != 1 || hist.Earlier[0].Module != echoSHA || hist.Earlier[0].Sequence == 0 {
		t.Errorf("fleet history after rm: exit %d\n%s\n%s", code, out, errOut)
	}
	res, _ = fleetJSON(t, 0, append([]string{"rollback", "echo"}, flags...)...)
	if res.Module != echoSHA || len(res.Converged) != 3 {
		t.Errorf("rollback after rm: %+v", res)
	}
	// History exhausted; rm of a function the group does not name.
	if _, errOut, code := fleetCLI(t, append([]string{"rollback", "echo"}, flags...)...); code != 1 || !strings.Contains(errOut, "no earlier entry of echo") {
		t.Errorf("rollback with no history: exit %d\n%s", code, errOut)
	}
	if _, errOut, code := fleetCLI(t, append([]string{"rm", "nope"}, flags...)...); code != 1 || !strings.Contains(errOut, "does not name nope") {
		t.Errorf("rm of an unknown function: exit %d\n%s", code, errOut)
	}
	for _, st := range fleetLs(t, broker.URL()) {
		if len(st.Errors) > 0 {
			t.Errorf("%s reports errors: %v", st.Gateway, st.Errors)
		}
	}
	// The table: one row per gateway with its health.
	out, _, code = fleetCLI(t, "ls", "--broker", broker.URL(), "--group", "lab")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "GATEWAY ONLINE GROUPS FUNCTIONS EVENTS FAILED ERRORS" ||
		!strings.HasPrefix(lines[1], "gw-a ") || !strings.Contains(lines[1], "echo@") {
		t.Errorf("fleet ls: exit %d\n%s", code, out)
	}
}
