package gateway

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/testutil"
)

func signingGateway(t *testing.T, dataDir string) (*Host, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g := newTestGateway(t, func(c *Config) {
		c.DataDir = dataDir
		c.FunctionsDir = filepath.Join(dataDir, "fns")
		c.Admin.TrustedKeys = []string{base64.StdEncoding.EncodeToString(pub)}
	})
	return g, priv
}

// The statement is recorded before the active pointer moves; an agent that
// stopped in between activates, at start, the version the statement names.
// A functions_dir manifest has no statement and is skipped.
func TestStartActivatesTheVersionItsStatementNames(t *testing.T) {
	dir := t.TempDir()
	g, priv := signingGateway(t, dir)
	ctx := context.Background()
	wasm := testutil.Testdata(t, "echo.wasm")
	m1, m2 := []byte("name: f\nwasm: x.wasm\n"), []byte("name: f\nwasm: x.wasm\nlimits: {memory: 1MiB}\n")
	for i, m := range [][]byte{m1, m2} {
		sg := activation.Sign(activation.New(activation.Deploy, "f", m, wasm, uint64(i+1)), priv)
		if _, err := g.Deploy(ctx, "function.yaml", m, wasm, "test", &sg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := g.Deploy(ctx, "function.yaml", m1, wasm, "test", nil); !errors.As(err, new(*ActivationError)) {
		t.Errorf("unsigned deploy: %v", err)
	}
	// A rollback to version 1 recorded, then a crash before the pointer
	// moved.
	if err := g.reg.recordActivation("f", activation.Sign(activation.New(activation.Rollback, "f", m1, wasm, 3), priv)); err != nil {
		t.Fatal(err)
	}
	writeFunction(t, filepath.Join(dir, "fns"), "loose", "", "echo.wasm")

	g2, _ := signingGateway(t, t.TempDir())
	g2.reg, g2.cfg.FunctionsDir = g.reg, filepath.Join(dir, "fns")
	g2.trusted = g.trusted
	g2.loadStored(ctx)
	fi := g2.functions()
	if len(fi) != 1 || fi[0].Name != "f" || fi[0].Version != 1 {
		t.Fatalf("functions after start: %+v, want f version 1 only", fi)
	}
	if act, _ := g.reg.active("f"); act != 1 {
		t.Errorf("active pointer %d, want 1", act)
	}
	if seq, _ := g2.lastSequence("f"); seq != 3 {
		t.Errorf("sequence %d, want 3", seq)
	}
}

func TestTrustedKeysMustDecode(t *testing.T) {
	_, err := trustedKeys([]string{" " + base64.StdEncoding.EncodeToString(make([]byte, 32)) + "\n", "not-a-key"})
	if err == nil || !strings.Contains(err.Error(), "admin.trusted_keys: key 2") {
		t.Errorf("err = %v", err)
	}
}
