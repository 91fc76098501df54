package gateway

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testpki"
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
			w.Write(fixture(t, "echo.wasm"))
		case "/logecho.wasm":
			w.Write(fixture(t, "logecho.wasm"))
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

// fleet.health_window and status_every are bounded; fleet.module_tls is
// checked like tls.
func TestFleetConfigHealthWindow(t *testing.T) {
	_, pub := fleetKey(t)
	base := "admin: {trusted_keys: [%q]}\nfleet:\n  broker: tcp://127.0.0.1:1883\n"
	for extra, want := range map[string]string{
		"  health_window: 1s\n":                       "fleet.health_window",
		"  health_window: 2h\n":                       "fleet.health_window",
		"  module_tls: {ca_file: /nonexistent.pem}\n": "fleet.module_tls.ca_file",
		"  status_every: 5s\n":                        "fleet.status_every",
	} {
		_, err := LoadConfig(writeConfig(t, fmt.Sprintf(base+extra, pub)))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want a problem with %s", extra, err, want)
		}
	}
	c, err := LoadConfig(writeConfig(t, fmt.Sprintf(base+"  health_window: 30s\n  status_every: 10m\n", pub)))
	if err != nil || c.Fleet.HealthWindow != 30*time.Second || c.Fleet.StatusEvery != 10*time.Minute {
		t.Errorf("health_window 30s: %+v %v", c, err)
	}
}

// Reload swaps the fleet agent in process (under the race detector in
// CI): another group applies that group's document; removing the section
// stops the fleet agent, which says it is offline, and leaves the function.
func TestFleetReloadInProcess(t *testing.T) {
	skipShort(t, "runs the fleet CLI binary")
	broker := mosquittotest.Start(t)
	key, pub, _ := fleetKeyPair(t)
	ta := startAgent(t, t.TempDir(), func(c *Config) {
		c.Admin.TrustedKeys = []string{pub}
		c.Fleet = &fleet.Config{Broker: broker.URL(), Groups: []string{"lab"}}
	})
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
