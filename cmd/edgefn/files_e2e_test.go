package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The file-drop loop with the real binaries: `run function.yaml --file`
// locally, `deploy`, a file dropped in the inbox, its record at the cloud,
// the file in .done, and `status` naming the watched directory.
func TestE2EFileDrop(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with event flow: skipped with -short")
	}
	cloud := newReceiver(t)
	dir := t.TempDir()
	inbox := filepath.Join(dir, "inbox", "stats")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, dir, cloud.srv.URL, agentOpts{extra: "grants: {max: {files: [inbox]}}\n"})
	c := cliFor(t, a)
	manifest := writeFunction(t, filepath.Join(t.TempDir(), "stats"),
		"name: stats\nwasm: ./stats.wasm\ntriggers:\n  - files: "+inbox+"\n    pattern: \"*.log\"\n    max_size: 1KiB\n",
		example(t, "c-file-stats"), "stats.wasm")

	drop := filepath.Join(t.TempDir(), "today.log")
	if err := os.WriteFile(drop, []byte("one\ntwo\nthree"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := c.ok("run", manifest, "--file", drop); !strings.Contains(out, `emit: {"file":"today.log","bytes":13,"lines":3}`) {
		t.Errorf("run --file: %s", out)
	}
	c.ok("deploy", manifest)
	if err := os.Rename(drop, filepath.Join(inbox, "today.log")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "the file's record at the cloud", func() bool { return len(cloud.snapshot()) == 1 })
	r := cloud.snapshot()[0]
	var rec map[string]any
	if err := json.Unmarshal([]byte(r.payload()), &rec); err != nil || rec["file"] != "today.log" || rec["bytes"] != 13.0 || rec["lines"] != 3.0 ||
		r.Function != "stats" || r.Subject != inbox {
		t.Errorf("cloud record %+v (%v)", r, err)
	}
	waitFor(t, 10*time.Second, "today.log in .done", func() bool {
		_, err := os.Stat(filepath.Join(inbox, ".done", "today.log"))
		return err == nil
	})
	if out := c.ok("status"); !strings.Contains(out, "files") || !strings.Contains(out, inbox+" -> stats (queued 0, processed 1, failed 0, rejected 0)") {
		t.Errorf("status does not show the watched directory:\n%s", out)
	}
	// A manifest naming a directory the agent may not watch is refused,
	// naming it.
	bad := writeFunction(t, filepath.Join(t.TempDir(), "bad"), "name: bad\nwasm: ./stats.wasm\ntriggers:\n  - files: "+dir+"\n", example(t, "c-file-stats"), "stats.wasm")
	if _, errOut, code := c.run("deploy", bad); code != 1 || !strings.Contains(errOut, "triggers[0].files") || !strings.Contains(errOut, "is not within the agent config's grants.max.files") {
		t.Errorf("deploy outside grants.max.files: exit %d: %s", code, errOut)
	}
}
