package gateway

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/fleet"
)

// startFleet starts n real agent processes on a real mosquitto, gw-00...,
// each in group "site" and alternately in "lab" and "office".
func startFleet(t testing.TB, n int, opts ...mosquittotest.Option) (*mosquittotest.Broker, *fleettest.Fleet) {
	t.Helper()
	skipShort(t, "builds the agent and runs gateways as child processes")
	broker := mosquittotest.Start(t, append([]mosquittotest.Option{mosquittotest.WithConfigLines(fleettest.SysInterval)}, opts...)...)
	f := fleettest.New(t, agentBinary(t), broker.URL())
	for i := range n {
		f.Add(fmt.Sprintf("gw-%02d", i), "site", []string{"lab", "office"}[i%2])
	}
	start := time.Now()
	f.StartAll(3*time.Minute, 10)
	t.Logf("%d gateways started and online in %v", n, time.Since(start).Round(time.Millisecond))
	return broker, f
}

func ids(gws []*fleettest.Gateway) []string {
	var out []string
	for _, g := range gws {
		out = append(out, g.ID)
	}
	slices.Sort(out)
	return out
}

func inGroup(gws []*fleettest.Gateway, group string) []*fleettest.Gateway {
	return slices.DeleteFunc(slices.Clone(gws), func(g *fleettest.Gateway) bool { return !slices.Contains(g.Groups, group) })
}

// fleetManifest writes a function manifest on the fixture wasm and returns
// its path and the module's SHA-256.
func fleetManifest(t testing.TB, name, wasmFixture string) (string, string) {
	return fleetManifestFile(t, name, filepath.Join("testdata", wasmFixture))
}

// fleetManifestFile is fleetManifest with a module from any path.
func fleetManifestFile(t testing.TB, name, wasmPath string) (string, string) {
	t.Helper()
	wasm, err := os.ReadFile(wasmPath)
	if err != nil {
		t.Fatalf("%v (run make wasm)", err)
	}
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, name+".wasm"), wasm)
	writeFile(t, filepath.Join(dir, name+".yaml"), []byte("name: "+name+"\nwasm: ./"+name+".wasm\nlimits: {memory: 32MiB}\ntriggers:\n  - mqtt: fleet-"+name+"/#\n"))
	return filepath.Join(dir, name+".yaml"), fmt.Sprintf("%x", sha256.Sum256(wasm))
}

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

// 20 real gateways in two groups (and all in "site") converge after one
// fleet deploy to "site"; one stopped during the rollout converges when it
// starts again; a deploy to "lab" reaches the lab gateways only. The time
// to converge and the broker's traffic are logged, not asserted.
func TestFleetTwentyGateways(t *testing.T) {
	_, f := startFleet(t, 20)
	tr := fleettest.NewTraffic(t, f.Broker(), f.Watch)
	gws := f.Gateways()
	stopped := gws[len(gws)-1]
	stopped.Stop()
	online := gws[:len(gws)-1]

	manifest, sha := fleetManifest(t, "echo", "echo.wasm")
	before := tr.Snapshot()
	start := time.Now()
	res := f.Deploy(manifest, "site", "--watch", "2m")
	if !slices.Equal(res.Converged, ids(online)) || len(res.Failed) > 0 || len(res.Pending) > 0 || res.Module != sha {
		t.Fatalf("fleet deploy --group site: %+v, want converged %v", res, ids(online))
	}
	took := f.WaitRunning(time.Minute, start, "echo", sha, online...)
	traffic := tr.Snapshot().Sub(before)
	t.Logf("%d online gateways converged in %v (fleet deploy --watch: %.0f ms); broker: %+v", len(online), took.Round(time.Millisecond), res.ElapsedMS, traffic)
	if traffic.Published["desired"].Messages != 1 || traffic.Published["blobs"].Messages != 1 {
		t.Errorf("one deploy of a one-chunk module published %+v, want 1 document and 1 chunk", traffic.Published)
	}

	stopped.Start()
	f.WaitRunning(time.Minute, time.Now(), "echo", sha, stopped)

	other, otherSHA := fleetManifest(t, "other", "logecho.wasm")
	res = f.Deploy(other, "lab", "--watch", "2m")
	lab := inGroup(gws, "lab")
	if !slices.Equal(res.Converged, ids(lab)) {
		t.Errorf("fleet deploy --group lab converged %v, want %v", res.Converged, ids(lab))
	}
	f.WaitRunning(time.Minute, time.Now(), "other", otherSHA, lab...)
	for _, g := range gws {
		st := f.Watch.Status(g.ID)
		hasOther := slices.ContainsFunc(st.Functions, func(fn fleet.StatusFunction) bool { return fn.Name == "other" })
		if !fleettest.Runs(st, "echo", sha) || len(st.Errors) > 0 || hasOther != slices.Contains(g.Groups, "lab") {
			t.Errorf("%s (groups %v): %+v", g.ID, g.Groups, st)
		}
	}
}

// The cloud broker restarts while a rollout is under way (right after
// fleet deploy published the document, while the gateways fetch the
// module): the gateways and the CLI's --watch reconnect, and every gateway
// converges.
func TestFleetBrokerRestartMidRollout(t *testing.T) {
	broker, f := startFleet(t, 6)
	manifest, sha := fleetManifest(t, "echo", "echo.wasm")
	cli := f.Background("deploy", manifest, "--broker", f.Broker(), "--group", "site", "--key", f.KeyFile, "--watch", "3m", "--json")
	cli.WaitLine(time.Minute, "published echo")
	broker.Stop()
	converged := 0
	for _, st := range f.Watch.Statuses() {
		if fleettest.Runs(st, "echo", sha) {
			converged++
		}
	}
	time.Sleep(time.Second)
	broker.Start()
	t.Logf("broker stopped after the document was published, %d of 6 gateways had reported echo active", converged)
	out, errOut, code := cli.Wait(4 * time.Minute)
	var res fleettest.DeployResult
	if err := json.Unmarshal([]byte(out), &res); code != 0 || err != nil || !slices.Equal(res.Converged, ids(f.Gateways())) {
		t.Fatalf("fleet deploy --watch across a broker restart: exit %d, want every gateway converged\n%s\n%s", code, out, errOut)
	}
	t.Logf("fleet deploy --watch converged %d gateways in %.0f ms across the broker restart", len(res.Converged), res.ElapsedMS)
	f.WaitRunning(2*time.Minute, time.Now(), "echo", sha, f.Gateways()...)
	for _, g := range f.Gateways() {
		if st := f.Watch.Status(g.ID); len(st.Errors) > 0 || !st.Online {
			t.Errorf("%s after the broker restart: %+v", g.ID, st)
		}
	}
}

// kill -9 of a gateway while it applies a new version leaves it on the old
// or the new one, never half: the active version on disk is a complete
// stored version (manifest and module of one deploy), the ledger holds the
// old or the new document, and after the restart the gateway converges to
// the new version. Each round kills at another moment after the document
// was accepted (fetch, compile, store, activation), alternating a 3 MB Go
// module (about a second to compile) and a small one.
func TestFleetKillWhileApplying(t *testing.T) {
	skipShort(t, "builds the agent and runs gateways as child processes")
	broker := mosquittotest.Start(t)
	f := fleettest.New(t, agentBinary(t), broker.URL())
	g := f.Add("gw-k", "site")
	f.StartAll(time.Minute, 0)
	goMod, err := os.ReadFile("../examples/go-temp-alert/go-temp-alert.wasm")
	if err != nil {
		t.Fatalf("%v (run make wasm)", err)
	}
	modules := [][]byte{testutil.Testdata(t, "echo.wasm"), goMod}
	type content struct{ manifest, module []byte }
	var deployed []content
	deploy := func(round int) content {
		dir := t.TempDir()
		c := content{[]byte(fmt.Sprintf("name: temp\nwasm: ./temp.wasm\nlimits: {memory: 32MiB}\nenv: {ROUND: \"%d\"}\ntriggers:\n  - mqtt: fleet-kill/#\n", round)), modules[round%2]}
		writeFile(t, filepath.Join(dir, "temp.wasm"), c.module)
		writeFile(t, filepath.Join(dir, "temp.yaml"), c.manifest)
		if out, errOut, code := f.CLI("deploy", filepath.Join(dir, "temp.yaml"), "--broker", f.Broker(), "--group", "site", "--key", f.KeyFile); code != 0 {
			t.Fatalf("fleet deploy round %d: exit %d\n%s\n%s", round, code, out, errOut)
		}
		deployed = append(deployed, c)
		return c
	}
	sum := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	c := deploy(0)
	f.WaitRunning(time.Minute, time.Now(), "temp", sum(c.module), g)
	accepted := func() int { return strings.Count(g.Log(), "fleet document accepted") }
	for round, delay := range []time.Duration{0, 30 * time.Millisecond, 150 * time.Millisecond, 400 * time.Millisecond, 900 * time.Millisecond, 0} {
		round++
		old := deployed[len(deployed)-1]
		n := accepted()
		next := deploy(round)
		testutil.Eventually(t, time.Minute, "the document accepted", func() bool { return accepted() > n })
		time.Sleep(delay)
		g.Kill()

		// On disk: a complete version of one deploy, the old or the new.
		active, err := os.ReadFile(filepath.Join(g.Dir, "functions", "temp", "active"))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		vdir := filepath.Join(g.Dir, "functions", "temp", strings.TrimSpace(string(active)))
		man, err1 := os.ReadFile(filepath.Join(vdir, "function.yaml"))
		mod, err2 := os.ReadFile(filepath.Join(vdir, "module.wasm"))
		state := ""
		switch {
		case err1 != nil || err2 != nil:
			t.Fatalf("round %d: active version %s incomplete: %v %v", round, vdir, err1, err2)
		case bytes.Equal(man, old.manifest) && bytes.Equal(mod, old.module):
			state = "old"
		case bytes.Equal(man, next.manifest) && bytes.Equal(mod, next.module):
			state = "new"
		default:
			t.Fatalf("round %d: active version %s is neither the old nor the new deploy:\n%s", round, vdir, man)
		}
		l, err := fleet.OpenLedger(filepath.Join(g.Dir, "fleet.json"))
		if err != nil {
			t.Fatalf("round %d: ledger after kill -9: %v", round, err)
		}
		e, _ := l.Get(fleet.Target(fleet.KindGroup, "site"))
		js, _ := json.Marshal(e.Signed)
		d, err := fleet.Peek(js)
		if err != nil || len(d.Functions) != 1 || !bytes.Equal(d.Functions[0].Manifest, next.manifest) {
			t.Fatalf("round %d: the ledger does not hold the accepted document: %v %+v", round, err, d)
		}
		t.Logf("round %d: killed %v after the document was accepted: active on disk: %s version", round, delay, state)

		// After the restart it runs the new version, with no errors.
		g.Start()
		f.WaitRunning(time.Minute, time.Now(), "temp", sum(next.module), g)
		dir := filepath.Join(g.Dir, "functions", "temp")
		testutil.Eventually(t, 30*time.Second, "the new manifest active", func() bool {
			a, _ := os.ReadFile(filepath.Join(dir, "active"))
			m, _ := os.ReadFile(filepath.Join(dir, strings.TrimSpace(string(a)), "function.yaml"))
			return bytes.Equal(m, next.manifest) && len(f.Watch.Status(g.ID).Errors) == 0
		})
	}
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

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
