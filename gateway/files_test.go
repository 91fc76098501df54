package gateway

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Under umask 022, the agent process keeps its data dir private: files it
// creates (outbox.db and its -wal and -shm, token, certificate, registry,
// compile cache) are 0600 and directories 0700, and looser ones already
// there are tightened at start, and logged.
func TestAgentDataDirIsPrivate(t *testing.T) {
	skipShort(t, "builds the agent and runs it as a child process")
	old := syscall.Umask(0o022) // the child inherits it
	defer syscall.Umask(old)

	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	fns := filepath.Join(dir, "fns")
	// What an older agent, or a person, left there.
	if err := os.MkdirAll(filepath.Join(data, "old"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(data, "old", "notes.txt"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(data, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFunction(t, fns, "echo", "triggers:\n  - mqtt: a\n    qos: 1\n", "echo.wasm")
	cfgPath := filepath.Join(dir, "edgefn.yaml")
	cfg := fmt.Sprintf("gateway_id: gw1\ndata_dir: %s\nfunctions_dir: %s\noutbox: {durability: normal}\nadmin: {listen: \"127.0.0.1:0\"}\nbroker: {embedded: {listen: \"127.0.0.1:0\"}}\n", data, fns)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startAgentProc(t, cfgPath)
	c := pahoClient(t, p.brokerAddr(t), "perm-device", true)
	if tok := c.Publish("a", 1, false, "x"); !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	// The WAL and shared-memory files exist while the agent runs.
	check := func() {
		t.Helper()
		seen := map[string]bool{}
		err := filepath.WalkDir(data, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := d.Info()
			if err != nil {
				return nil // a temporary file gone meanwhile
			}
			seen[d.Name()] = true
			if m := info.Mode().Perm(); m&0o077 != 0 {
				t.Errorf("%s: mode %v, want no group or other permissions", path, m)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"outbox.db", "outbox.db-wal", "outbox.db-shm", "api.token", "notes.txt"} {
			if !seen[want] {
				t.Errorf("no %s in the data dir", want)
			}
		}
	}
	check()
	if out := p.Stderr.String(); !strings.Contains(out, "permissions removed") || !strings.Contains(out, "notes.txt") {
		t.Errorf("the tightening is not logged:\n%s", out)
	}
	p.Stop(t)
}
