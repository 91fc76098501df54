package gateway

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testpki"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/fleet"
)

// A module named by an https URL: a gateway that does not trust the
// server's certificate reports why and retries on its own (no new
// document); SIGHUP with a changed fleet section (another group, the CA
// in module_tls) restarts the fleet agent, which fetches the module,
// checks it and runs it.
func TestFleetReloadAndModuleURL(t *testing.T) {
	skipShort(t, "builds the agent and runs a gateway as a child process")
	broker := mosquittotest.Start(t)
	key, pub, _ := fleetKeyPair(t)
	pki := testpki.New(t)
	var fetches atomic.Int64
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		switch r.URL.Path {
		case "/echo.wasm":
			w.Write(testutil.Testdata(t, "echo.wasm"))
		case "/logecho.wasm":
			w.Write(testutil.Testdata(t, "logecho.wasm"))
		default:
			http.NotFound(w, r)
		}
	}))
	srv.TLS = pki.ServerTLS(t, false)
	srv.StartTLS()
	t.Cleanup(srv.Close)

	dir := t.TempDir()
	cfg := fleetGatewayConfig(t, dir, "gw-r", broker.URL(), pub, "lab")
	p := startAgentProc(t, cfg)
	waitFor(t, func() bool { return fleetStatusOf(t, broker.URL(), "gw-r").Online })

	echo, echoSHA := fleetManifest(t, "echo", "echo.wasm")
	logecho, _ := fleetManifest(t, "logecho", "logecho.wasm")
	// office: nobody there yet; lab: the gateway does not trust the
	// server's certificate.
	if _, errOut, code := fleetCLI(t, "deploy", echo, "--broker", broker.URL(), "--group", "office", "--key", key, "--module-url", srv.URL+"/echo.wasm"); code != 0 {
		t.Fatalf("deploy to office: exit %d\n%s", code, errOut)
	}
	res, errOut := fleetJSON(t, 1, "deploy", logecho, "--broker", broker.URL(), "--group", "lab", "--key", key, "--module-url", srv.URL+"/logecho.wasm", "--watch", "30s")
	if !strings.Contains(errOut, "refused: function logecho:") || !strings.Contains(errOut, "certificate") || len(res.Converged) != 0 {
		t.Fatalf("deploy from an untrusted server: %+v\n%s", res, errOut)
	}
	// The gateway tries again on its own (Retry: 10 s, then doubling).
	// A TLS handshake that fails never reaches the handler: the retry is
	// seen in the agent's log.
	waitFor(t, func() bool { return strings.Count(p.Stderr.String(), "fleet: function not applied") >= 2 })
	if fetches.Load() != 0 {
		t.Errorf("%d requests reached the server through an untrusted certificate", fetches.Load())
	}
	if !strings.Contains(p.Stderr.String(), "attempt=2") {
		t.Errorf("second attempt not logged as such:\n%s", p.Stderr.String())
	}

	// The fleet section changes: group office, the test CA trusted for
	// modules. SIGHUP applies it without a restart.
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	next := strings.Replace(string(b), "groups: [lab]", "groups: [office]", 1) + "  module_tls:\n    ca_file: " + pki.CAFile + "\n"
	if err := os.WriteFile(cfg, []byte(next), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st := fleetStatusOf(t, broker.URL(), "gw-r")
		return st.Online && slices.Equal(st.Groups, []string{"office"}) && runsFleet(st, "echo", echoSHA)
	})
	st := fleetStatusOf(t, broker.URL(), "gw-r")
	if len(st.Errors) > 0 || slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == "logecho" }) {
		t.Errorf("after the reload: %+v", st)
	}
	if fetches.Load() != 1 {
		t.Errorf("%d module fetches, want 1", fetches.Load())
	}
	if !strings.Contains(p.Stderr.String(), "fleet agent restarted with the new fleet section") {
		t.Errorf("reload not logged:\n%s", p.Stderr.String())
	}
}

// fleet.health_window, status_every and fetch_timeout are bounded; fleet.module_tls is
// checked like tls.
func TestFleetConfigHealthWindow(t *testing.T) {
	_, pub := fleetKey(t)
	base := "admin: {trusted_keys: [%q]}\nfleet:\n  broker: tcp://127.0.0.1:1883\n"
	for extra, want := range map[string]string{
		"  health_window: 1s\n":                       "fleet.health_window",
		"  health_window: 2h\n":                       "fleet.health_window",
		"  module_tls: {ca_file: /nonexistent.pem}\n": "fleet.module_tls.ca_file",
		"  status_every: 5s\n":                        "fleet.status_every",
		"  fetch_timeout: 500ms\n":                    "fleet.fetch_timeout",
		"  fetch_timeout: 2h\n":                       "fleet.fetch_timeout",
	} {
		_, err := LoadConfig(writeConfig(t, fmt.Sprintf(base+extra, pub)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a problem with %s", extra, err, want)
		}
	}
	c, err := LoadConfig(writeConfig(t, fmt.Sprintf(base+"  health_window: 30s\n  status_every: 10m\n  fetch_timeout: 5s\n", pub)))
	if err != nil || c.Fleet.HealthWindow != 30*time.Second || c.Fleet.StatusEvery != 10*time.Minute || c.Fleet.FetchTimeout != 5*time.Second {
		t.Errorf("health_window 30s: %+v %v", c, err)
	}
}

// startFleetAgent starts an agent in process that trusts pub, with fleet
// section fc.
func startFleetAgent(t *testing.T, pub string, fc fleet.Config) *testAgent {
	return startAgent(t, t.TempDir(), func(c *Config) {
		c.Admin.TrustedKeys = []string{pub}
		c.Fleet = &fc
	})
}

// Reload swaps the fleet agent in process (under the race detector in
// CI): another group applies that group's document; removing the section
// stops the fleet agent, which says it is offline, and leaves the function.
func TestFleetReloadInProcess(t *testing.T) {
	skipShort(t, "runs the fleet CLI binary")
	broker := mosquittotest.Start(t)
	key, pub, _ := fleetKeyPair(t)
	ta := startFleetAgent(t, pub, fleet.Config{Broker: broker.URL(), Groups: []string{"lab"}})
	echo, echoSHA := fleetManifest(t, "echo", "echo.wasm")
	if _, errOut, code := fleetCLI(t, "deploy", echo, "--broker", broker.URL(), "--group", "office", "--key", key); code != 0 {
		t.Fatalf("deploy to office: exit %d\n%s", code, errOut)
	}
	waitFor(t, func() bool {
		st := fleetStatusOf(t, broker.URL(), "gw1")
		return st.Online && slices.Equal(st.Groups, []string{"lab"})
	})
	reload := func(fc *fleet.Config) {
		next := *ta.cfg
		next.Fleet = fc
		ta.Reload(context.Background(), &next, nil)
	}
	reload(&fleet.Config{Broker: broker.URL(), Groups: []string{"office"}})
	waitFor(t, func() bool {
		st := fleetStatusOf(t, broker.URL(), "gw1")
		return st.Online && slices.Equal(st.Groups, []string{"office"}) && runsFleet(st, "echo", echoSHA)
	})
	reload(nil)
	waitFor(t, func() bool { return !fleetStatusOf(t, broker.URL(), "gw1").Online })
	if !slices.ContainsFunc(ta.functions(), func(fi FunctionInfo) bool { return fi.Name == "echo" && fi.Version == 1 }) {
		t.Errorf("echo after the fleet section was removed: %+v", ta.functions())
	}
}

// pendingOf is function name's entry among st's pending functions.
func pendingOf(st fleet.StatusDoc, name string) (fleet.PendingFunction, bool) {
	i := slices.IndexFunc(st.Pending, func(p fleet.PendingFunction) bool { return p.Name == name })
	if i < 0 {
		return fleet.PendingFunction{}, false
	}
	return st.Pending[i], true
}

// missingChunk is a lab document naming logecho, whose blob misses one
// chunk, first, and the healthy echo, published on a real broker.
type missingChunk struct {
	cn              *fleet.Conn
	broken, healthy fleet.Function
	brokenWasm      []byte
	missing, chunks int // the missing chunk, of chunks
	doc             fleet.Document
}

const missingChunkSize = 32

// fleetEntry publishes fixture name's module as a blob in chunks of chunk
// bytes (0: the default) and returns its entry signed with priv, and the
// module.
func fleetEntry(t *testing.T, cn *fleet.Conn, priv ed25519.PrivateKey, name string, chunk int) (fleet.Function, []byte) {
	t.Helper()
	path, _ := fleetManifest(t, name, name+".wasm")
	manifest, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	wasm, err := os.ReadFile(filepath.Join(filepath.Dir(path), name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	m, err := cn.PublishBlob(context.Background(), wasm, chunk)
	if err != nil {
		t.Fatal(err)
	}
	return fleet.Function{Name: name, Manifest: manifest, Module: m,
		Activation: activation.Sign(activation.New(activation.Deploy, name, manifest, wasm, uint64(time.Now().UnixNano())), priv)}, wasm
}

// publishMissingChunk publishes the blobs (logecho's in chunks of 32
// bytes, chunk 2 cleared) and group lab's document signed with priv.
func publishMissingChunk(t *testing.T, brokerURL string, priv ed25519.PrivateKey) missingChunk {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cn, err := fleet.Connect(ctx, fleet.Dial{Broker: brokerURL}, fleet.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Close)
	entry := func(name string, chunk int) (fleet.Function, []byte) { return fleetEntry(t, cn, priv, name, chunk) }
	mc := missingChunk{cn: cn, missing: 2}
	mc.broken, mc.brokenWasm = entry("logecho", missingChunkSize)
	mc.healthy, _ = entry("echo", 0)
	if mc.chunks = mc.broken.Module.Chunks(); mc.chunks <= mc.missing {
		t.Fatalf("logecho.wasm makes %d chunks of %d bytes, want more than %d", mc.chunks, missingChunkSize, mc.missing)
	}
	if err := cn.Publish(ctx, mc.chunkTopic(), nil, true); err != nil { // clears the retained chunk
		t.Fatal(err)
	}
	mc.doc = publishLabDoc(t, cn, priv, mc.broken, mc.healthy)
	return mc
}

// publishLabDoc publishes group lab's document of sequence 1 naming fns,
// signed with priv.
func publishLabDoc(t *testing.T, cn *fleet.Conn, priv ed25519.PrivateKey, fns ...fleet.Function) fleet.Document {
	t.Helper()
	d := fleet.Document{Target: fleet.Target(fleet.KindGroup, "lab"), Sequence: 1, Functions: fns}
	sd, err := fleet.Sign(d, priv)
	if err != nil {
		t.Fatal(err)
	}
	p, err := json.Marshal(sd)
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Publish(context.Background(), cn.Topics().Desired(fleet.KindGroup, "lab"), p, true); err != nil {
		t.Fatal(err)
	}
	return d
}

func (mc missingChunk) chunkTopic() string {
	return mc.cn.Topics().Chunk(mc.broken.Module.SHA256, mc.missing)
}

// fetching: echo active while logecho is still being fetched.
func (mc missingChunk) fetching(st fleet.StatusDoc) bool {
	p, ok := pendingOf(st, "logecho")
	return runsFleet(st, "echo", mc.healthy.Module.SHA256) && ok && p.State == fleet.PendingFetching
}

// A document names a function whose module blob misses one chunk, first,
// beside a healthy one: the real agent fetches in the background, so the
// healthy function activates while the broken one is still being fetched
// (the status is published meanwhile and says "fetching"); when the fetch
// times out the status names the missing chunk; once the chunk is
// published the function converges on the agent's own retry, without a
// new document.
func TestFleetMissingChunk(t *testing.T) {
	skipShort(t, "builds the agent and runs a gateway as a child process")
	broker := mosquittotest.Start(t)
	f := fleettest.New(t, agentBinary(t), broker.URL())
	const fetchTimeout = 15 * time.Second
	f.Config = fmt.Sprintf("  fetch_timeout: %v\n", fetchTimeout)
	g := f.Add("gw-m", "lab")
	g.Start()
	f.WaitOnline(time.Minute, g)
	mc := publishMissingChunk(t, broker.URL(), f.Priv)
	broken, healthy := mc.broken, mc.healthy

	f.Watch.Wait(2*time.Minute, "echo active while logecho is being fetched", func(sts map[string]fleet.StatusDoc) bool {
		return mc.fetching(sts[g.ID])
	})
	want := fmt.Sprintf("blob %s chunk %d of %d missing after %v", broken.Module.SHA256, mc.missing, mc.chunks, fetchTimeout)
	f.Watch.Wait(2*time.Minute, "the status naming the missing chunk", func(sts map[string]fleet.StatusDoc) bool {
		st := sts[g.ID]
		p, _ := pendingOf(st, "logecho")
		return p.State == fleet.PendingFailed && strings.Contains(p.Reason, want) &&
			slices.ContainsFunc(st.Errors, func(e string) bool { return strings.Contains(e, "function logecho: "+want) })
	})
	if st := f.Watch.Status(g.ID); !fleettest.Runs(st, "echo", healthy.Module.SHA256) || fleettest.Runs(st, "logecho", broken.Module.SHA256) {
		t.Fatalf("after the failed fetch: %+v", st)
	}
	// fleet ls shows it pending (failed, or fetching again on its retry).
	if out, errOut, code := f.CLI("ls", "--broker", f.Broker()); code != 0 || !strings.Contains(out, "echo@1(fleet)") ||
		!(strings.Contains(out, "logecho(failed)") || strings.Contains(out, "logecho(fetching)")) {
		t.Errorf("fleet ls: exit %d, want echo active and logecho pending\n%s%s", code, out, errOut)
	}

	// The chunk arrives: the agent's retry applies the same document.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := mc.cn.Publish(ctx, mc.chunkTopic(), mc.brokenWasm[mc.missing*missingChunkSize:(mc.missing+1)*missingChunkSize], true); err != nil {
		t.Fatal(err)
	}
	f.Watch.Wait(3*time.Minute, "logecho active once its chunk is published", func(sts map[string]fleet.StatusDoc) bool {
		st := sts[g.ID]
		_, pending := pendingOf(st, "logecho")
		return fleettest.Runs(st, "logecho", broken.Module.SHA256) && fleettest.Runs(st, "echo", healthy.Module.SHA256) && !pending && len(st.Errors) == 0
	})
	if st := f.Watch.Status(g.ID); st.Documents[mc.doc.Target] != 1 {
		t.Errorf("documents %v: want lab's sequence 1 still (no new document)", st.Documents)
	}
}

// In process (under the race detector in CI): a fetch that would wait an
// hour for a missing chunk does not hold up the healthy function, and
// removing the fleet section stops the agent at once, the fetch with it.
func TestFleetMissingChunkInProcess(t *testing.T) {
	skipShort(t, "runs a real mosquitto")
	broker := mosquittotest.Start(t)
	_, pub, priv := fleetKeyPair(t)
	ta := startFleetAgent(t, pub, fleet.Config{Broker: broker.URL(), Groups: []string{"lab"}, FetchTimeout: time.Hour})
	mc := publishMissingChunk(t, broker.URL(), priv)
	waitFor(t, func() bool { return mc.fetching(fleetStatusOf(t, broker.URL(), "gw1")) })
	next := *ta.cfg
	next.Fleet = nil
	ta.Reload(context.Background(), &next, nil)
	waitFor(t, func() bool { return !fleetStatusOf(t, broker.URL(), "gw1").Online })
}

// The cap on concurrent fetches (2 by default), in process: two modules
// missing a chunk take both slots and the healthy function waits
// ("queued"); the first chunk arriving completes its fetch in flight,
// which frees a slot for the healthy one.
func TestFleetFetchCap(t *testing.T) {
	skipShort(t, "runs a real mosquitto")
	broker := mosquittotest.Start(t)
	_, pub, priv := fleetKeyPair(t)
	startFleetAgent(t, pub, fleet.Config{Broker: broker.URL(), Groups: []string{"lab"}, FetchTimeout: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cn, err := fleet.Connect(ctx, fleet.Dial{Broker: broker.URL()}, fleet.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cn.Close)
	logecho, logechoWasm := fleetEntry(t, cn, priv, "logecho", missingChunkSize)
	relay, _ := fleetEntry(t, cn, priv, "relay", missingChunkSize)
	echo, _ := fleetEntry(t, cn, priv, "echo", 0)
	for _, f := range []fleet.Function{logecho, relay} {
		if err := cn.Publish(ctx, cn.Topics().Chunk(f.Module.SHA256, 1), nil, true); err != nil {
			t.Fatal(err)
		}
	}
	publishLabDoc(t, cn, priv, logecho, relay, echo)
	state := func(st fleet.StatusDoc, name string) string { p, _ := pendingOf(st, name); return p.State }
	waitFor(t, func() bool {
		st := fleetStatusOf(t, broker.URL(), "gw1")
		return state(st, "logecho") == fleet.PendingFetching && state(st, "relay") == fleet.PendingFetching && state(st, "echo") == fleet.PendingQueued
	})
	if err := cn.Publish(ctx, cn.Topics().Chunk(logecho.Module.SHA256, 1), logechoWasm[missingChunkSize:2*missingChunkSize], true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		st := fleetStatusOf(t, broker.URL(), "gw1")
		return runsFleet(st, "logecho", logecho.Module.SHA256) && runsFleet(st, "echo", echo.Module.SHA256) && state(st, "relay") == fleet.PendingFetching
	})
}
