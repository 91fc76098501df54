package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A corrupt outbox is moved aside and kept; a healthy one is left alone.
func TestOutboxRecover(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "edgefn.yaml")
	if err := os.WriteFile(cfg, []byte("data_dir: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	garbage := bytes.Repeat([]byte("not a database "), 400)
	if err := os.WriteFile(filepath.Join(dir, "outbox.db"), garbage, 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"edgefn", "outbox", "recover", "--config", cfg}, nil, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	moved, _ := filepath.Glob(filepath.Join(dir, "outbox.db.corrupt-*"))
	if len(moved) != 1 || !strings.Contains(out.String(), moved[0]) {
		t.Fatalf("moved %v, output %q", moved, out.String())
	}
	if b, _ := os.ReadFile(moved[0]); !bytes.Equal(b, garbage) {
		t.Error("the corrupt file was not kept as it was")
	}
	out.Reset()
	errb.Reset()
	if code := run(context.Background(), []string{"edgefn", "outbox", "recover", "--config", cfg}, nil, &out, &errb); code != 1 || !strings.Contains(errb.String(), "nothing to recover") {
		t.Errorf("healthy outbox: exit %d, %q", code, errb.String())
	}
}
