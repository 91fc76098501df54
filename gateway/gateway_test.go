package gateway

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/sync/outbox"
)

// newTestGateway builds a Host on a real outbox and a real sandbox in a
// temp dir, without triggers.
func newTestGateway(t testing.TB, mutate ...func(*Config)) *Host {
	t.Helper()
	dir := t.TempDir()
	cfg := &Config{GatewayID: "gw1", DataDir: dir}
	cfg.setDefaults()
	for _, m := range mutate {
		m(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	store, err := outbox.Open(ctx, outbox.Config{Path: filepath.Join(dir, "outbox.db"), Gateway: cfg.GatewayID, Durability: outbox.DurabilityNormal})
	if err != nil {
		t.Fatal(err)
	}
	rt, err := sandbox.New(ctx, sandbox.Config{CacheDir: filepath.Join(dir, "cache"), KV: kvAdapter{store}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := newHost(cfg, discardLogger(), store, rt)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = g.drain(ctx)
		g.bg.Wait()
		_ = rt.Close(ctx)
		_ = store.Close()
	})
	return g
}

func deploy(t testing.TB, g *Host, manifest, wasmFixture string) versionMeta {
	t.Helper()
	meta, err := g.Deploy(context.Background(), "function.yaml", []byte(manifest), testutil.Testdata(t, wasmFixture), "test", nil)
	if err != nil {
		t.Fatal(err)
	}
	return meta
}

func mqttEvent(topic, payload string, qos int) edgefn.Event {
	return edgefn.Event{Source: edgefn.SourceMQTT, Subject: topic, Payload: []byte(payload), Meta: map[string]string{"qos": fmt.Sprint(qos)}}
}

func pending(t testing.TB, g *Host) []edgefn.Record {
	t.Helper()
	recs, err := g.store.Pending(context.Background(), 0, 100000, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// An MQTT event runs every function whose filter matches, once each, and
// Deliver returns only when their records are durable.
func TestDeliverRoutesAndCommits(t *testing.T) {
	g := newTestGateway(t)
	deploy(t, g, "name: a\nwasm: x.wasm\ntriggers:\n  - mqtt: sensors/+/temp\n    qos: 1\n  - mqtt: sensors/#\n", "echo.wasm")
	deploy(t, g, "name: b\nwasm: x.wasm\ntriggers:\n  - mqtt: sensors/kitchen/temp\n", "echo.wasm")
	deploy(t, g, "name: c\nwasm: x.wasm\ntriggers:\n  - mqtt: other\n", "echo.wasm")
	if err := g.Deliver(context.Background(), mqttEvent("sensors/kitchen/temp", `{"t":21}`, 1)); err != nil {
		t.Fatal(err)
	}
	recs := pending(t, g)
	got := map[string]int{}
	for _, r := range recs {
		got[r.Function]++
		if string(r.Payload) != `{"t":21}` || r.Subject != "sensors/kitchen/temp" || r.Source != edgefn.SourceMQTT || !strings.HasPrefix(r.ID(), "gw1:") {
			t.Errorf("record %+v", r)
		}
	}
	if got["a"] != 1 || got["b"] != 1 || got["c"] != 0 {
		t.Errorf("records per function = %v, want a:1 b:1", got)
	}
}

func TestInvokeReturnsRecordsAndOutcome(t *testing.T) {
	g := newTestGateway(t)
	deploy(t, g, "name: relay\nwasm: x.wasm\nallow: {publish: [\"relay/#\"]}\n", "relay.wasm")
	res, err := g.Invoke(context.Background(), "relay", []byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Sandbox.Err != nil || len(res.Seqs) != 1 {
		t.Fatalf("result %+v", res)
	}
	var pubs []edgefn.Effect
	for _, e := range res.Sandbox.Effects {
		if e.Kind == edgefn.EffectPublish {
			pubs = append(pubs, e)
		}
	}
	if len(pubs) != 1 || pubs[0].Topic != "relay/out" || string(pubs[0].Payload) != "hello" {
		t.Errorf("publishes %+v", pubs)
	}
	if _, err := g.Invoke(context.Background(), "nope", nil, nil); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("invoke unknown = %v", err)
	}
}

// A hostile function (an infinite loop) beside a healthy one: the healthy
// one keeps running, and the hostile one fails with timeout each time.
func TestHostileFunctionDoesNotDelayOthers(t *testing.T) {
	g := newTestGateway(t)
	deploy(t, g, "name: spin\nwasm: x.wasm\nlimits: {timeout: 50ms, concurrency: 1}\ntriggers:\n  - mqtt: spin\n", "loop.wasm")
	deploy(t, g, "name: ok\nwasm: x.wasm\ntriggers:\n  - mqtt: ok\n", "echo.wasm")
	var wg sync.WaitGroup
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = g.Deliver(context.Background(), mqttEvent("spin", "x", 0))
		}()
	}
	for i := 0; i < 50; i++ {
		if err := g.Deliver(context.Background(), mqttEvent("ok", "y", 1)); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
	stats := func() map[string]FunctionInfo {
		fi := map[string]FunctionInfo{}
		for _, f := range g.functions() {
			fi[f.Name] = f
		}
		return fi
	}
	if ok := stats()["ok"].Stats; ok.Invocations != 50 || len(ok.Errors) != 0 {
		t.Errorf("healthy function stats %+v", ok)
	}
	// The QoS 0 spin events are queued without waiting: their timeouts
	// come after the healthy events, which do not wait for them.
	testutil.Eventually(t, 10*time.Second, "hostile function timeouts", func() bool {
		return stats()["spin"].Stats.Errors[edgefn.ReasonTimeout] > 0
	})
}

func TestRedeployRollbackRemove(t *testing.T) {
	g := newTestGateway(t)
	m := "name: f\nwasm: x.wasm\ntriggers:\n  - mqtt: t\n"
	v1 := deploy(t, g, m, "echo.wasm")
	if again := deploy(t, g, m, "echo.wasm"); again.Version != v1.Version {
		t.Errorf("same content redeployed as v%d", again.Version)
	}
	v2 := deploy(t, g, m+"limits: {memory: 1MiB}\n", "echo.wasm")
	if v2.Version != 2 {
		t.Fatalf("v2 = %+v", v2)
	}
	if fi := g.functions(); fi[0].Version != 2 || fi[0].Limits.Memory != edgefn.MiB {
		t.Errorf("after redeploy %+v", fi[0])
	}
	back, err := g.Rollback(context.Background(), "f", 0, nil)
	if err != nil || back.Version != 1 {
		t.Fatalf("rollback = %+v, %v", back, err)
	}
	if err := g.Deliver(context.Background(), mqttEvent("t", "z", 1)); err != nil {
		t.Fatal(err)
	}
	recs := pending(t, g)
	if len(recs) != 1 || recs[0].Version != 1 {
		t.Errorf("records after rollback %+v", recs)
	}
	if err := g.Remove(context.Background(), "f"); err != nil {
		t.Fatal(err)
	}
	if len(g.functions()) != 0 {
		t.Error("function still listed after rm")
	}
	if err := g.Deliver(context.Background(), mqttEvent("t", "z", 1)); err != nil {
		t.Fatal(err)
	}
	if n := len(pending(t, g)); n != 1 {
		t.Errorf("removed function still ran: %d records", n)
	}
	if err := g.Remove(context.Background(), "f"); !errors.As(err, new(*NotFoundError)) {
		t.Errorf("second rm = %v", err)
	}
}

// Every problem of a bad deploy is reported at once, and nothing changes.
func TestDeployRefusesWithEveryProblem(t *testing.T) {
	g := newTestGateway(t, func(c *Config) { c.Limits.Max.Memory = 32 * edgefn.MiB })
	_, err := g.Deploy(context.Background(), "function.yaml", []byte("name: f\nwasm: x.wasm\nlimits: {memory: 64MiB}\ntriggers:\n  - gpio: GPIO17\n"), testutil.Testdata(t, "echo.wasm"), "test", nil)
	var de *DeployError
	if !errors.As(err, &de) || len(de.Problems) != 2 {
		t.Fatalf("err = %v", err)
	}
	if !strings.Contains(de.Problems[0], "function.yaml:3: limits.memory: 64MiB: over the agent's maximum 32MiB") || !strings.Contains(de.Problems[1], `gpio pin "GPIO17": no GPIO backend`) {
		t.Errorf("problems %q", de.Problems)
	}
	_, err = g.Deploy(context.Background(), "function.yaml", []byte("name: f\nwasm: x.wasm\n"), []byte("\x00asm\x01\x00\x00\x00garbage"), "test", nil)
	if !errors.As(err, &de) {
		t.Fatalf("bad module err = %v", err)
	}
	if len(g.functions()) != 0 {
		t.Error("a refused deploy left a function")
	}
}
