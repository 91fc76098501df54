package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/fleettest"
	"github.com/edgefn/edgefn/internal/mosquittotest"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/fleet"
)

// fleetKey writes an ed25519 private key as edgefn keygen does and returns
// its path and the public key in base64.
func fleetKey(t *testing.T) (string, string) {
	t.Helper()
	path, pub, _ := fleetKeyPair(t)
	return path, pub
}

func fleetKeyPair(t *testing.T) (string, string, ed25519.PrivateKey) {
	return fleettest.KeyPair(t)
}

// fleetGatewayConfig writes the config of a fleet gateway using broker as
// both its event broker and its fleet's cloud broker.
func fleetGatewayConfig(t *testing.T, dir, id, broker, pub string, groups ...string) string {
	t.Helper()
	cfg := fmt.Sprintf("gateway_id: %s\ndata_dir: %s\nlog_level: debug\noutbox: {durability: normal}\n"+
		"admin: {listen: \"127.0.0.1:0\", trusted_keys: [%q]}\n"+
		"broker:\n  external:\n    brokers: [%q]\n    client_id: edgefn-%s\n"+
		"fleet:\n  broker: %s\n  groups: [%s]\n", id, dir, pub, broker, id, broker, strings.Join(groups, ", "))
	path := filepath.Join(dir, "edgefn.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// fleetCLI runs the edgefn binary's fleet subcommand.
func fleetCLI(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(agentBinary(t), append([]string{"fleet"}, args...)...)
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return stdout.String(), stderr.String(), code
}

func fleetLs(t *testing.T, broker string) []fleet.StatusDoc {
	t.Helper()
	out, errOut, code := fleetCLI(t, "ls", "--broker", broker, "--json")
	if code != 0 {
		t.Fatalf("fleet ls: exit %d: %s", code, errOut)
	}
	var sts []fleet.StatusDoc
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		t.Fatalf("fleet ls --json: %v\n%s", err, out)
	}
	return sts
}

func runsFleet(st fleet.StatusDoc, name, sha string) bool {
	return slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool {
		return f.Name == name && f.Hash == sha && f.Origin == fleet.OriginFleet
	})
}

// Real agent processes in two groups converge after one fleet deploy per
// group; a gateway stopped during the rollout converges when it starts
// again; a document signed by another key is refused and reported, and the
// gateway keeps what it had.
func TestFleetGatewaysConverge(t *testing.T) {
	skipShort(t, "builds the agent and runs gateways as child processes")
	broker := mosquittotest.Start(t)
	key, pub, priv := fleetKeyPair(t)
	const n = 4
	groups := map[string]string{}
	dirs := map[string]string{}
	procs := map[string]*agentProc{}
	for i := range n {
		id := fmt.Sprintf("gw-%d", i)
		groups[id] = []string{"lab", "office"}[i%2]
		dirs[id] = t.TempDir()
		procs[id] = startAgentProc(t, fleetGatewayConfig(t, dirs[id], id, broker.URL(), pub, groups[id]))
	}
	waitFor(t, func() bool {
		sts := fleetLs(t, broker.URL())
		return len(sts) == n && !slices.ContainsFunc(sts, func(s fleet.StatusDoc) bool { return !s.Online })
	})
	// gw-3 (office) is stopped during the rollout.
	procs["gw-3"].Stop(t)

	fns := t.TempDir()
	writeFunction(t, fns, "echo", "triggers:\n  - mqtt: fleet-test/#\n", "echo.wasm")
	manifest := filepath.Join(fns, "echo.yaml")
	sha := fmt.Sprintf("%x", sha256.Sum256(testutil.Testdata(t, "echo.wasm")))
	start := time.Now()
	for _, g := range []string{"lab", "office"} {
		out, errOut, code := fleetCLI(t, "deploy", manifest, "--broker", broker.URL(), "--group", g, "--key", key, "--watch", "60s", "--json", "--chunk-size", "4096")
		if code != 0 {
			t.Fatalf("fleet deploy --group %s: exit %d\n%s\n%s", g, code, out, errOut)
		}
		var res struct {
			Converged []string `json:"converged"`
			Module    string   `json:"module_sha256"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil || res.Module != sha {
			t.Fatalf("fleet deploy --json: %v %s", err, out)
		}
		want := map[string][]string{"lab": {"gw-0", "gw-2"}, "office": {"gw-1"}}[g]
		if !slices.Equal(res.Converged, want) {
			t.Errorf("group %s converged %v, want %v\n%s", g, res.Converged, want, errOut)
		}
	}
	t.Logf("3 online gateways in 2 groups converged in %v (two fleet deploy runs)", time.Since(start).Round(time.Millisecond))

	// The stopped gateway catches up when it starts again.
	procs["gw-3"] = startAgentProc(t, filepath.Join(dirs["gw-3"], "edgefn.yaml"))
	waitFor(t, func() bool {
		for _, st := range fleetLs(t, broker.URL()) {
			if st.Gateway == "gw-3" && st.Online && runsFleet(st, "echo", sha) {
				return true
			}
		}
		return false
	})
	for _, st := range fleetLs(t, broker.URL()) {
		if !runsFleet(st, "echo", sha) || len(st.Errors) > 0 {
			t.Errorf("%s: %+v", st.Gateway, st)
		}
	}

	// A document signed by a key the gateways do not trust is refused
	// and reported; they keep echo.
	otherKey, _ := fleetKey(t)
	writeFunction(t, fns, "other", "triggers:\n  - mqtt: fleet-other/#\n", "echo.wasm")
	if _, errOut, code := fleetCLI(t, "deploy", filepath.Join(fns, "other.yaml"), "--broker", broker.URL(), "--group", "lab", "--key", otherKey, "--watch", "60s"); code != 1 || !strings.Contains(errOut, "does not trust") {
		t.Errorf("deploy signed by an untrusted key: exit %d\n%s", code, errOut)
	}
	for _, st := range fleetLs(t, broker.URL()) {
		if st.Gateway == "gw-0" && (!runsFleet(st, "echo", sha) || len(st.Errors) == 0) {
			t.Errorf("gw-0 after an untrusted document: %+v", st)
		}
	}

	// gw-2's own document, written straight to the broker: a tampered
	// blob and limits above the gateway's maxima are refused function by
	// function and reported; then a replay of an older document is
	// refused.
	cn, err := fleet.Connect(context.Background(), fleet.Dial{Broker: broker.URL()}, fleet.Topics{})
	if err != nil {
		t.Fatal(err)
	}
	defer cn.Close()
	ctx := context.Background()
	wasm := testutil.Testdata(t, "echo.wasm")
	entry := func(name, manifest string, mod fleet.Module, wasm []byte) fleet.Function {
		return fleet.Function{Name: name, Manifest: []byte(manifest), Module: mod,
			Activation: activation.Sign(activation.New(activation.Deploy, name, []byte(manifest), wasm, uint64(time.Now().UnixMilli())), priv)}
	}
	good, err := cn.PublishBlob(ctx, wasm, 4096)
	if err != nil {
		t.Fatal(err)
	}
	// The tampered function names a blob whose chunk 1 is overwritten.
	loop := testutil.Testdata(t, "loop.wasm")
	tampered, err := cn.PublishBlob(ctx, loop, 16)
	if err != nil {
		t.Fatal(err)
	}
	if err := cn.Publish(ctx, cn.Topics().Chunk(tampered.SHA256, 1), make([]byte, 16), true); err != nil {
		t.Fatal(err)
	}
	own := func(seq uint64, fns ...fleet.Function) []byte {
		sd, err := fleet.Sign(fleet.Document{Target: fleet.Target(fleet.KindGateway, "gw-2"), Sequence: seq, Functions: fns}, priv)
		if err != nil {
			t.Fatal(err)
		}
		p, _ := json.Marshal(sd)
		if err := cn.Publish(ctx, cn.Topics().Desired(fleet.KindGateway, "gw-2"), p, true); err != nil {
			t.Fatal(err)
		}
		return p
	}
	own(100,
		entry("tamp", "name: tamp\nwasm: x.wasm\ntriggers:\n  - mqtt: fleet-t/#\n", tampered, loop),
		entry("big", "name: big\nwasm: x.wasm\nlimits: {memory: 1GiB}\ntriggers:\n  - mqtt: fleet-b/#\n", good, wasm),
		entry("fine", "name: fine\nwasm: x.wasm\ntriggers:\n  - mqtt: fleet-f/#\n", good, wasm))
	gw2 := func() fleet.StatusDoc {
		for _, st := range fleetLs(t, broker.URL()) {
			if st.Gateway == "gw-2" {
				return st
			}
		}
		return fleet.StatusDoc{}
	}
	waitFor(t, func() bool { st := gw2(); return runsFleet(st, "fine", good.SHA256) && len(st.Errors) >= 2 })
	st := gw2()
	errs := strings.Join(st.Errors, "\n")
	if !strings.Contains(errs, "function tamp:") || !strings.Contains(errs, "do not match their sha256") ||
		!strings.Contains(errs, "function big:") || !strings.Contains(errs, "memory") ||
		slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == "tamp" || f.Name == "big" }) ||
		!runsFleet(st, "echo", sha) {
		t.Errorf("gw-2 after a tampered blob and limits above its maxima: %+v", st)
	}
	own(99, entry("late", "name: late\nwasm: x.wasm\ntriggers:\n  - mqtt: fleet-l/#\n", good, wasm))
	waitFor(t, func() bool {
		return strings.Contains(strings.Join(gw2().Errors, "\n"), "not newer than the last accepted")
	})
	if st := gw2(); !runsFleet(st, "fine", good.SHA256) || slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == "late" }) {
		t.Errorf("gw-2 after an older document: %+v", st)
	}

	// A gateway stopped cleanly reports itself offline; one killed is
	// reported offline by its last will.
	procs["gw-0"].Stop(t)
	procs["gw-1"].Kill()
	waitFor(t, func() bool {
		off := 0
		for _, st := range fleetLs(t, broker.URL()) {
			if (st.Gateway == "gw-0" || st.Gateway == "gw-1") && !st.Online {
				off++
			}
		}
		return off == 2
	})
}

// fleet: needs admin.trusted_keys, and its fields are checked.
func TestFleetConfig(t *testing.T) {
	_, err := LoadConfig(writeConfig(t, "fleet:\n  broker: tcp://127.0.0.1:1883\n  groups: [lab]\n"))
	if err == nil || !strings.Contains(err.Error(), "fleet") || !strings.Contains(err.Error(), "admin.trusted_keys") {
		t.Errorf("fleet without trusted keys: %v", err)
	}
	_, pub := fleetKey(t)
	_, err = LoadConfig(writeConfig(t, fmt.Sprintf("admin: {trusted_keys: [%q]}\nfleet:\n  broker: ftp://x\n  groups: [lab, \"a/b\", lab]\n  topic_prefix: edgefn/#\n", pub)))
	for _, want := range []string{"fleet.broker", "fleet.groups[1]", "fleet.groups[2]", "fleet.topic_prefix"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want a problem with %s: %v", want, err)
		}
	}
	// The deepest topic must keep to AWS IoT Core's 7 slashes.
	_, err = LoadConfig(writeConfig(t, fmt.Sprintf("admin: {trusted_keys: [%q]}\nfleet:\n  broker: tcp://127.0.0.1:1883\n  topic_prefix: a/b/c/d/e\n", pub)))
	if err == nil || !strings.Contains(err.Error(), "fleet.topic_prefix") || !strings.Contains(err.Error(), "at most 4 levels") {
		t.Errorf("a 5-level topic prefix: %v", err)
	}
	c, err := LoadConfig(writeConfig(t, fmt.Sprintf("admin: {trusted_keys: [%q]}\nfleet:\n  broker: mqtts://broker.example.com:8883\n  groups: [lab]\n  username: gw\n  password: pw\n", pub)))
	if err != nil || c.Fleet == nil || c.Fleet.Groups[0] != "lab" {
		t.Fatalf("fleet config: %+v, %v", c, err)
	}
}
