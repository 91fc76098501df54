package gateway

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/testutil"
)

// The typed client against a real agent (TLS with its self-signed
// certificate pinned, token, real outbox): deploy refused with every
// problem, deploy, invoke with metadata, pending records decoded and
// bounded, not found, wrong token, wrong pin.
func TestAPIClient(t *testing.T) {
	ta := startAgent(t, t.TempDir())
	ctx := context.Background()
	c := api.NewClient(ta.ready.AdminURL, ta.token, ta.ready.Fingerprint, nil)

	_, err := c.Deploy(ctx, api.DeployRequest{File: "bad.yaml", Manifest: []byte("name: echo\nwasm: ./echo.wasm\nlimits: {memory: 1TiB}\nbogus: 1\n"),
		WasmName: "echo.wasm", Wasm: testutil.Testdata(t, "echo.wasm")})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Status != 422 || len(se.Problems) < 2 {
		t.Fatalf("deploy of a bad manifest: %v, want 422 with both problems", err)
	}
	v, err := c.Deploy(ctx, api.DeployRequest{Manifest: []byte("name: echo\nwasm: ./echo.wasm\n"), WasmName: "echo.wasm", Wasm: testutil.Testdata(t, "echo.wasm")})
	if err != nil || v.Name != "echo" || v.Version != 1 || !v.Active || v.Hash == "" {
		t.Fatalf("deploy: %+v, %v", v, err)
	}
	for _, p := range []string{`{"t": 21.5}`, "text", "\xff\x00"} {
		inv, err := c.Invoke(ctx, "echo", api.InvokeRequest{Payload: []byte(p), Meta: map[string]string{"k": "v"}, Source: "mqtt", Subject: "s/1"})
		if err != nil || inv.Outcome != "ok" || len(inv.Records) != 1 {
			t.Fatalf("invoke %q: %+v, %v", p, inv, err)
		}
		if b, err := inv.Records[0].Bytes(); err != nil || string(b) != p {
			t.Errorf("invoke %q: record %q, %v", p, b, err)
		}
	}
	recs, err := c.PendingRecords(ctx, "echo", 2)
	if err != nil || recs.Depth != 3 || len(recs.Records) != 2 || !recs.More {
		t.Fatalf("pending records: %+v, %v", recs, err)
	}
	if r := recs.Records[0]; r.Text() != `{"t":21.5}` || r.Subject != "s/1" || r.Source != "mqtt" || r.Size != 11 || r.ID != "gw1:1" {
		t.Errorf("first pending record %+v", r)
	}
	if r := recs.Records[1]; r.Payload != "text" || r.PayloadJSON != nil {
		t.Errorf("second pending record %+v", r)
	}
	all, err := c.PendingRecords(ctx, "", api.MaxPeek)
	if err != nil || len(all.Records) != 3 || all.More || all.Records[2].PayloadB64 != "/wA=" {
		t.Errorf("all pending records: %+v, %v", all, err)
	}
	for _, n := range []int{0, api.MaxPeek + 1} {
		if _, err := c.PendingRecords(ctx, "", n); !errors.As(err, &se) || se.Status != 400 || !strings.Contains(se.Message, "n=") {
			t.Errorf("n=%d: %v, want 400 naming n=", n, err)
		}
	}
	if _, err := c.PendingRecords(ctx, "../x", 1); !errors.As(err, &se) || se.Status != 400 {
		t.Errorf("function=../x: %v, want 400", err)
	}

	f, err := c.Function(ctx, "echo")
	if err != nil || len(f.Versions) != 1 || !f.Versions[0].Active || f.Versions[0].ModuleSHA256 == "" || f.Stats.Invocations != 3 {
		t.Errorf("function: %+v, %v", f, err)
	}
	if _, err := c.Function(ctx, "nope"); !api.IsNotFound(err) {
		t.Errorf("unknown function: %v, want not found", err)
	}
	if _, err := api.NewClient(ta.ready.AdminURL, "wrong-token", ta.ready.Fingerprint, nil).Status(ctx); !errors.As(err, new(*api.TokenError)) {
		t.Errorf("wrong token: %v", err)
	}
	if _, err := api.NewClient(ta.ready.AdminURL, ta.token, "sha256:00", nil).Status(ctx); !errors.As(err, new(*api.PinError)) {
		t.Errorf("wrong pin: %v", err)
	}
	if rm, err := c.Remove(ctx, "echo"); err != nil || rm.Removed != "echo" {
		t.Errorf("remove: %+v, %v", rm, err)
	}
}
