package gateway

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The hardened config shown in docs/security.md is a valid agent config.
func TestSecurityDocConfigLoads(t *testing.T) {
	doc, err := os.ReadFile("../docs/security.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Configuring it")
	if !ok {
		t.Fatal("docs/security.md has no \"Configuring it\" section")
	}
	_, rest, ok = strings.Cut(rest, "```yaml\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no yaml block in the \"Configuring it\" section")
	}
	path := filepath.Join(t.TempDir(), "edgefn.yaml")
	if err := os.WriteFile(path, []byte(block), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfig(path)
	if err != nil {
		t.Fatalf("the config of docs/security.md: %v", err)
	}
	if c.MaxChainDepth != 4 {
		t.Errorf("max_chain_depth %d, want the 4 shown", c.MaxChainDepth)
	}
	if keys, err := trustedKeys(c.Admin.TrustedKeys); err != nil || len(keys) != 1 {
		t.Errorf("trusted_keys: %d keys, %v", len(keys), err)
	}
}
