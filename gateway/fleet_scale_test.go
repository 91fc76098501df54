package gateway

import (
	"bytes"
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

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
