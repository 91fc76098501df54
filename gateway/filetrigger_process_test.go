package gateway

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/outbox"
)

// fileAgentSetup writes an agent config whose grants.max.files is
// dir/inbox and makes dir/inbox/cam; it returns the config path, the data
// dir, the functions dir and the inbox.
func fileAgentSetup(t *testing.T) (cfgPath, data, fns, inbox string) {
	t.Helper()
	skipShort(t, "builds the agent and runs it as a child process")
	dir := t.TempDir()
	data, fns, inbox = filepath.Join(dir, "data"), filepath.Join(dir, "fns"), filepath.Join(dir, "inbox", "cam")
	if err := os.MkdirAll(inbox, 0o755); err != nil {
		t.Fatal(err)
	}
	cfgPath = filepath.Join(dir, "edgefn.yaml")
	cfg := fmt.Sprintf("gateway_id: gw1\ndata_dir: %s\nfunctions_dir: %s\nlog_level: debug\noutbox: {durability: normal}\n"+
		"admin: {listen: \"127.0.0.1:0\"}\nbroker: {embedded: {listen: \"127.0.0.1:0\"}}\ngrants: {max: {files: [inbox]}}\n", data, fns)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, data, fns, inbox
}

// fileWatch returns the agent's status of its watch of dir.
func (p *agentProc) fileWatch(t *testing.T, data, dir string) api.FileWatch {
	t.Helper()
	for _, w := range p.status(t, data).Files {
		if w.Dir == dir {
			return w
		}
	}
	return api.FileWatch{}
}

func writeInbox(t *testing.T, inbox, name, content string) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(inbox, name), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// dirNames lists a directory's entries.
func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out
}

// fileRecords groups a stopped agent's records by file: the function
// emits meta("file.name"), meta("file.size") and the payload.
func fileRecords(t *testing.T, data, inbox string) map[string][]string {
	t.Helper()
	recs := readRecords(t, data)
	if len(recs)%3 != 0 {
		t.Fatalf("%d records, want triples", len(recs))
	}
	out := map[string][]string{}
	for i := 0; i < len(recs); i += 3 {
		for _, r := range recs[i : i+3] {
			if r.Source != edgefn.SourceFile || r.Subject != inbox || r.Function != "cam" {
				t.Errorf("record %+v: want source file, subject %s", r, inbox)
			}
		}
		name := string(recs[i].Payload)
		out[name] = append(out[name], string(recs[i+1].Payload), string(recs[i+2].Payload))
	}
	return out
}

// With the real binary and SQLite: a file waiting at start and files
// dropped while the agent runs are handed to the function (payload,
// file.name, file.size), their records committed, then moved to .done; a
// file over max_size is moved to .rejected with a failure record; a name
// that does not match the pattern is left alone; files dropped while the
// agent is stopped are processed when it starts again.
func TestAgentFileTrigger(t *testing.T) {
	cfgPath, data, fns, inbox := fileAgentSetup(t)
	// Relative: next to the manifest in the functions dir.
	writeFunction(t, fns, "cam", "triggers:\n  - files: ../inbox/cam\n    pattern: \"*.jpg\"\n    max_size: 1KiB\n", "filemeta.wasm")
	writeInbox(t, inbox, "a.jpg", "waiting at start")
	p := startAgentProc(t, cfgPath)
	waitFor(t, func() bool { return p.fileWatch(t, data, inbox).Processed == 1 })
	if w := p.fileWatch(t, data, inbox); !w.Watching || w.Pattern != "*.jpg" || w.MaxSizeBytes != 1024 || w.After != "move" || w.Function != "cam" {
		t.Errorf("status files = %+v", w)
	}
	// The rejected-drops series a dashboard plots is there before any file is refused.
	if m := string(p.get(t, data, "/metrics")); !strings.Contains(m, `edgefn_drops_total{function="cam",reason="rejected"} 0`) {
		t.Errorf("/metrics has no rejected series at zero:\n%s", m)
	}
	// Written under a dotfile name and renamed in, as careful writers do.
	writeInbox(t, inbox, ".b.jpg.part", "dropped")
	if err := os.Rename(filepath.Join(inbox, ".b.jpg.part"), filepath.Join(inbox, "b.jpg")); err != nil {
		t.Fatal(err)
	}
	writeInbox(t, inbox, "big.jpg", strings.Repeat("x", 1025))
	writeInbox(t, inbox, "notes.txt", "not a jpg")
	waitFor(t, func() bool { w := p.fileWatch(t, data, inbox); return w.Processed == 2 && w.Rejected == 1 })
	p.Stop(t)

	if got := dirNames(t, filepath.Join(inbox, edgefn.FileDoneDir)); strings.Join(got, " ") != "a.jpg b.jpg" {
		t.Errorf(".done = %v", got)
	}
	if got := dirNames(t, filepath.Join(inbox, edgefn.FileRejectedDir)); strings.Join(got, " ") != "big.jpg" {
		t.Errorf(".rejected = %v", got)
	}
	if got := dirNames(t, inbox); strings.Join(got, " ") != ".done .rejected notes.txt" {
		t.Errorf("inbox = %v", got)
	}
	recs := fileRecords(t, data, inbox)
	if fmt.Sprint(recs) != fmt.Sprint(map[string][]string{"a.jpg": {"16", "waiting at start"}, "b.jpg": {"7", "dropped"}}) {
		t.Errorf("records by file = %v", recs)
	}
	s, err := outbox.Open(context.Background(), outbox.Config{Path: filepath.Join(data, "outbox.db"), Gateway: "gw1"})
	if err != nil {
		t.Fatal(err)
	}
	logs, err := s.Logs(context.Background(), "cam", time.Time{}, 100)
	s.Close()
	if err != nil {
		t.Fatal(err)
	}
	var failures []string
	for _, l := range logs {
		if l.Reason != "" {
			failures = append(failures, string(l.Reason)+": "+l.Message)
		}
	}
	if len(failures) != 1 || !strings.Contains(failures[0], "rejected: file big.jpg: 1025 bytes, over the trigger's max_size 1KiB") {
		t.Errorf("failure records = %q", failures)
	}

	// Dropped while the agent is stopped: processed at the next start.
	for i := range 3 {
		writeInbox(t, inbox, fmt.Sprintf("late%d.jpg", i), fmt.Sprint("late ", i))
	}
	p = startAgentProc(t, cfgPath)
	waitFor(t, func() bool { return p.fileWatch(t, data, inbox).Processed == 3 })
	p.Stop(t)
	recs = fileRecords(t, data, inbox)
	for i := range 3 {
		if got := recs[fmt.Sprintf("late%d.jpg", i)]; len(got) != 2 || got[1] != fmt.Sprint("late ", i) {
			t.Errorf("late%d.jpg: records %v", i, got)
		}
	}
	if got := dirNames(t, filepath.Join(inbox, edgefn.FileDoneDir)); len(got) != 5 {
		t.Errorf(".done = %v", got)
	}
}

// kill -9 while the function runs on a file (before its commit): the file
// is still in the inbox, processed again after the restart, and ends in
// .done exactly once.
func TestAgentFileTriggerCrashBeforeCommit(t *testing.T) {
	cfgPath, data, fns, inbox := fileAgentSetup(t)
	// v1 spins until its 20 s deadline: the agent is killed while it runs.
	writeFunction(t, fns, "cam", fmt.Sprintf("limits: {timeout: 20s, concurrency: 1}\ntriggers:\n  - files: %s\n", inbox), "loop.wasm")
	p := startAgentProc(t, cfgPath)
	writeInbox(t, inbox, "x.jpg", "exactly once in .done")
	waitFor(t, func() bool { _, state := p.invocations(t, data, "cam"); return state == "warm" })
	if n, _ := p.invocations(t, data, "cam"); n != 0 {
		t.Fatalf("the invocation finished before the kill: %d", n)
	}
	p.Kill()
	if got := dirNames(t, inbox); strings.Join(got, " ") != ".done .rejected x.jpg" {
		t.Fatalf("after kill -9: inbox = %v", got)
	}

	writeFunction(t, fns, "cam", fmt.Sprintf("triggers:\n  - files: %s\n", inbox), "filemeta.wasm")
	p = startAgentProc(t, cfgPath)
	waitFor(t, func() bool { return p.fileWatch(t, data, inbox).Processed == 1 })
	p.Stop(t)
	if got := dirNames(t, filepath.Join(inbox, edgefn.FileDoneDir)); strings.Join(got, " ") != "x.jpg" {
		t.Errorf(".done = %v, want x.jpg once", got)
	}
	if got := dirNames(t, inbox); strings.Join(got, " ") != ".done .rejected" {
		t.Errorf("inbox = %v", got)
	}
	if recs := fileRecords(t, data, inbox); fmt.Sprint(recs) != fmt.Sprint(map[string][]string{"x.jpg": {"21", "exactly once in .done"}}) {
		t.Errorf("records = %v", recs)
	}
}

// A deploy whose file trigger names a directory that is missing, not a
// directory, outside grants.max.files, not writable, or relative (through
// the API, where there is no manifest directory) is refused, naming the
// directory and the problem; nothing is deployed.
func TestAgentFileTriggerDeployErrors(t *testing.T) {
	cfgPath, data, _, inbox := fileAgentSetup(t)
	root := filepath.Dir(inbox)
	writeInbox(t, root, "plain", "a file")
	outside := t.TempDir()
	locked := filepath.Join(root, "locked")
	if err := os.Mkdir(locked, 0o755); err != nil {
		t.Fatal(err)
	}
	// Root writes anywhere but in an immutable directory.
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chattr", "+i", locked).CombinedOutput(); err != nil {
			t.Logf("chattr +i: %v %s: the unwritable case is not checked", err, out)
			locked = ""
		} else {
			t.Cleanup(func() { _ = exec.Command("chattr", "-i", filepath.Join(root, "locked")).Run() })
		}
	} else if err := os.Chmod(locked, 0o555); err != nil {
		t.Fatal(err)
	}
	p := startAgentProc(t, cfgPath)
	wasm := testutil.Testdata(t, "filemeta.wasm")
	cases := []struct{ dir, want string }{
		{filepath.Join(root, "missing"), "directory " + filepath.Join(root, "missing") + " does not exist on the agent"},
		{filepath.Join(root, "plain"), filepath.Join(root, "plain") + " is not a directory"},
		{outside, "directory " + outside + " is not within the agent config's grants.max.files"},
		{data, "is not within the agent config's grants.max.files"},
		{"inbox/cam", "a relative path resolves next to the manifest, which the agent has only for the manifests of its functions_dir"},
	}
	if locked != "" {
		cases = append(cases, struct{ dir, want string }{locked, "directory " + locked + " is not writable by the agent"})
	}
	for _, tc := range cases {
		man := fmt.Sprintf("name: cam\nwasm: cam.wasm\ntriggers:\n  - files: %s\n", tc.dir)
		err := apiDeploy(t, p, data, []byte(man), wasm)
		if err == nil || !strings.Contains(err.Error(), "triggers[0].files") || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("deploy with files: %s: error %v\nwant %q", tc.dir, err, tc.want)
		}
	}
	if fs := p.status(t, data).Functions; len(fs) != 0 {
		t.Errorf("functions after refused deploys: %+v", fs)
	}
	// The same inbox for two functions is refused too.
	man := fmt.Sprintf("name: cam\nwasm: cam.wasm\ntriggers:\n  - files: %s\n", inbox)
	if err := apiDeploy(t, p, data, []byte(man), wasm); err != nil {
		t.Fatal(err)
	}
	err := apiDeploy(t, p, data, []byte(strings.Replace(man, "name: cam", "name: cam2", 1)), wasm)
	if err == nil || !strings.Contains(err.Error(), `directory `+inbox+` is already watched by function "cam"`) {
		t.Errorf("second function on the same inbox: %v", err)
	}
}

// apiDeploy deploys through the running agent's admin API with the typed
// client.
func apiDeploy(t *testing.T, p *agentProc, data string, manifest, wasm []byte) error {
	t.Helper()
	tok, err := os.ReadFile(filepath.Join(data, "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	c := api.NewClient(p.AdminURL, strings.TrimSpace(string(tok)), "", nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err = c.Deploy(ctx, api.DeployRequest{File: "function.yaml", Manifest: manifest, WasmName: "cam.wasm", Wasm: wasm})
	return err
}
