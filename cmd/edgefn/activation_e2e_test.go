package main

// End-to-end tests of the trust boundaries around activations: function
// names on the admin routes, and signed deploy/rollback statements, against
// the real agent process and CLI binary.

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"mime/multipart"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/activation"
)

// apiDo calls the agent's admin API without the CLI and returns the status
// and body.
func apiDo(t *testing.T, a *agentProc, method, path string, body io.Reader, contentType string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	req, err := http.NewRequest(method, a.AdminURL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// plantFunction writes a stored function in the registry's layout
// (active + 1/{function.yaml,module.wasm,meta.json}) under dir, as an
// attacker would leave one anywhere the agent can read.
func plantFunction(t *testing.T, dir, name string, wasm []byte) {
	t.Helper()
	manifest := []byte(fmt.Sprintf("name: %s\nwasm: ./module.wasm\ntriggers:\n  - mqtt: e2e/%s\n", name, name))
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(manifest))
	h.Write(manifest)
	h.Write(wasm)
	meta, _ := json.Marshal(map[string]any{"name": name, "version": 1, "hash": hex.EncodeToString(h.Sum(nil)), "deployed": time.Now().UTC()})
	vdir := filepath.Join(dir, "1")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	for f, b := range map[string][]byte{"function.yaml": manifest, "module.wasm": wasm, "meta.json": meta, "../active": []byte("1\n")} {
		if err := os.WriteFile(filepath.Join(vdir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// treeState lists every file under root (but not under skip) with its size
// and modification time.
func treeState(t *testing.T, root, skip string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == skip {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out[p] = fmt.Sprintf("%v %d %d", fi.Mode(), fi.Size(), fi.ModTime().UnixNano())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Every {name} route answers a name that is not a valid function name with
// 400, and the agent touches nothing outside its functions directory: the
// reported `..%2F..%2Fx%2Fevil/rollback` no longer activates a function
// planted outside it.
func TestE2ENamesStayInFunctionsDir(t *testing.T) {
	dir := t.TempDir()
	a := startAgent(t, dir, newReceiver(t).srv.URL, agentOpts{})
	wasm, err := os.ReadFile(example(t, "wat-minimal"))
	if err != nil {
		t.Fatal(err)
	}
	// functions/../../x/evil and functions/../x/evil, plus one beside the
	// agent's functions directory.
	plantFunction(t, filepath.Join(dir, "x", "evil"), "evil", wasm)
	plantFunction(t, filepath.Join(dir, "data", "x", "evil"), "evil", wasm)
	plantFunction(t, filepath.Join(dir, "data", "evil2"), "evil2", wasm)
	before := treeState(t, dir, filepath.Join(dir, "data"))
	beforeData := treeState(t, filepath.Join(dir, "data", "x"), "")

	names := []string{
		"..%2F..%2Fx%2Fevil", "..%2f..%2fx%2fevil", "%2E%2E%2F%2E%2E%2Fx%2Fevil", "..%2Fx%2Fevil",
		"..%2Fevil2", "..", "%2E%2E", "...", ".", "%2Fetc%2Fpasswd", "a%5C..%5Cb", "a%00b",
		"Evil", "-x", "1x", "x%20y", "%FF", strings.Repeat("a", 64),
	}
	routes := []struct{ method, path string }{
		{"GET", "/v1/functions/%s"},
		{"DELETE", "/v1/functions/%s"},
		{"POST", "/v1/functions/%s/rollback?to=1"},
		{"POST", "/v1/functions/%s/rollback"},
		{"POST", "/v1/functions/%s/invoke"},
		{"GET", "/v1/functions/%s/logs"},
	}
	for _, rt := range routes {
		for _, n := range names {
			code, body := apiDo(t, a, rt.method, fmt.Sprintf(rt.path, n), strings.NewReader("{}"), "")
			if n == "." || n == ".." {
				// ServeMux cleans the path (a redirect) before any route.
				if code == http.StatusOK && rt.method != "GET" {
					t.Errorf("%s %s: %d %s", rt.method, fmt.Sprintf(rt.path, n), code, body)
				}
				continue
			}
			if code != http.StatusBadRequest || !strings.Contains(body, "invalid") {
				t.Errorf("%s %s: %d %s, want 400", rt.method, fmt.Sprintf(rt.path, n), code, body)
			}
		}
	}
	code, body := apiDo(t, a, "GET", "/v1/functions", nil, "")
	if code != 200 || strings.Contains(body, "evil") {
		t.Errorf("functions after the attempts: %d %s", code, body)
	}
	if after := treeState(t, dir, filepath.Join(dir, "data")); fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("files outside the data dir changed:\nbefore %v\nafter  %v", before, after)
	}
	if after := treeState(t, filepath.Join(dir, "data", "x"), ""); fmt.Sprint(after) != fmt.Sprint(beforeData) {
		t.Errorf("files beside the functions dir changed:\nbefore %v\nafter  %v", beforeData, after)
	}
	// The CLI refuses such names too, with the agent's message.
	c := cliFor(t, a)
	for _, args := range [][]string{{"rollback", "../../x/evil", "--to", "1"}, {"rm", "../evil2"}, {"invoke", "../evil2"}} {
		if _, errOut, code := c.run(args...); code == 0 || !strings.Contains(errOut, "invalid") {
			t.Errorf("edgefn %v: exit %d: %s", args, code, errOut)
		}
	}
}

// agentEnv points the CLI at a (restarted) agent without a new login.
func agentEnv(a *agentProc) []string {
	return []string{"EDGEFN_GATEWAY=" + a.AdminURL, "EDGEFN_TOKEN=" + a.token, "EDGEFN_FINGERPRINT=" + a.Fingerprint}
}

// postDeploy sends a deploy as the CLI does, with a given signed statement
// (JSON; empty for none), and returns the status and body.
func postDeploy(t *testing.T, a *agentProc, manifest, wasm []byte, statement string) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	if statement != "" {
		if err := mw.WriteField("activation", statement); err != nil {
			t.Fatal(err)
		}
	}
	for name, b := range map[string][]byte{"manifest": manifest, "wasm": wasm} {
		fw, err := mw.CreateFormFile(name, name)
		if err != nil {
			t.Fatal(err)
		}
		fw.Write(b)
	}
	mw.Close()
	return apiDo(t, a, "POST", "/v1/functions", &body, mw.FormDataContentType())
}

// With admin.trusted_keys, every activation needs a statement signed by a
// trusted key with a sequence higher than the last accepted one: versions
// deployed before the keys were set are not loaded at start, rollback
// needs --key, an older signed deploy replayed is refused (also after a
// restart and after rm: the high-water mark is on disk).
func TestE2ESignedActivations(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the agent: skipped with -short")
	}
	c := newCLI(t)
	kdir := t.TempDir()
	c.runIn(kdir, nil, "keygen")
	c.runIn(kdir, nil, "keygen", "other.key")
	key, other := filepath.Join(kdir, "edgefn-deploy.key"), filepath.Join(kdir, "other.key")
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	priv, err := readPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	cloud := newReceiver(t)
	dir := t.TempDir()
	fdir := filepath.Join(dir, "fn")
	mem := func(m string) string {
		return writeFunction(t, fdir, fmt.Sprintf(echoManifest, m), example(t, "wat-minimal"), "echo.wasm")
	}

	// Two versions deployed before the keys are set.
	a := startAgent(t, dir, cloud.srv.URL, agentOpts{})
	c.login(a)
	c.ok("deploy", mem("1MiB"))
	c.ok("deploy", mem("2MiB"))
	a.Stop(t)

	keyed := agentOpts{trustedKeys: []string{fmt.Sprintf("%q", strings.TrimSpace(string(pub)))}}
	a = startAgent(t, dir, cloud.srv.URL, keyed)
	env := agentEnv(a)
	waitFor(t, 10*time.Second, "the start log", func() bool { return strings.Contains(a.Stderr.String(), "function skipped") })
	if log := a.Stderr.String(); !strings.Contains(log, "function=echo") || !strings.Contains(log, "no signed activation statement") {
		t.Errorf("start log does not name the unsigned function:\n%s", log)
	}
	if out, _, _ := c.runIn("", env, "ls"); !strings.Contains(out, "not loaded") {
		t.Errorf("unsigned version loaded at start, or not listed: %s", out)
	}
	if _, errOut, code := c.runIn("", env, "invoke", "echo"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("invoke of the unloaded function: exit %d: %s", code, errOut)
	}

	// A signed rollback to the active version that was not loaded loads
	// it.
	if out, errOut, code := c.runIn("", env, "rollback", "echo", "--to", "2", "--key", key); code != 0 || !strings.Contains(out, "version 2 active") {
		t.Fatalf("signed rollback to the unloaded active version: exit %d: %s %s", code, out, errOut)
	}
	if out, _, code := c.runIn("", env, "invoke", "echo", "--data", "v2"); code != 0 || !strings.Contains(out, "version 2") {
		t.Errorf("invoke after the signed rollback to version 2: exit %d: %s", code, out)
	}

	// Rollback: unsigned, untrusted key, forged signature refused.
	if _, errOut, code := c.runIn("", env, "rollback", "echo", "--to", "1"); code != 1 || !strings.Contains(errOut, "unsigned rollback refused") {
		t.Errorf("unsigned rollback: exit %d: %s", code, errOut)
	}
	if _, errOut, code := c.runIn("", env, "rollback", "echo", "--to", "1", "--key", other); code != 1 || !strings.Contains(errOut, "does not trust") {
		t.Errorf("rollback signed by an untrusted key: exit %d: %s", code, errOut)
	}
	manifest1, _ := os.ReadFile(mem("1MiB"))
	wasm, _ := os.ReadFile(example(t, "wat-minimal"))
	forged := activation.Sign(activation.New(activation.Rollback, "echo", manifest1, wasm, uint64(time.Now().UnixMilli())), priv)
	forged.Statement = strings.Replace(forged.Statement, "sequence: ", "sequence: 1", 1)
	fb, _ := json.Marshal(forged)
	if code, body := apiDo(t, a, "POST", "/v1/functions/echo/rollback?to=1", bytes.NewReader(fb), "application/json"); code != 403 || !strings.Contains(body, "does not verify") {
		t.Errorf("rollback with a forged signature: %d %s", code, body)
	}
	wrong := activation.Sign(activation.New(activation.Rollback, "echo", []byte("other"), wasm, uint64(time.Now().UnixMilli())), priv)
	wb, _ := json.Marshal(wrong)
	if code, body := apiDo(t, a, "POST", "/v1/functions/echo/rollback?to=1", bytes.NewReader(wb), "application/json"); code != 403 || !strings.Contains(body, "other content") {
		t.Errorf("rollback statement for other content: %d %s", code, body)
	}
	if out, errOut, code := c.runIn("", env, "rollback", "echo", "--to", "1", "--key", key); code != 0 || !strings.Contains(out, "version 1 active") || !strings.Contains(out, "signed") {
		t.Fatalf("signed rollback: exit %d: %s %s", code, out, errOut)
	}
	if out, _, code := c.runIn("", env, "invoke", "echo", "--data", "v1"); code != 0 || !strings.Contains(out, "version 1") {
		t.Errorf("invoke after the signed rollback: exit %d: %s", code, out)
	}

	// A signed deploy captured on the wire, then a newer one: replaying
	// the first is refused and changes nothing.
	manifest3, _ := os.ReadFile(mem("3MiB"))
	captured, _ := json.Marshal(activation.Sign(activation.New(activation.Deploy, "echo", manifest3, wasm, uint64(time.Now().UnixMilli())), priv))
	if code, body := postDeploy(t, a, manifest3, wasm, string(captured)); code != 200 || !strings.Contains(body, `"version": 3`) {
		t.Fatalf("signed deploy: %d %s", code, body)
	}
	if out := c.runOK(env, "deploy", "--key", key, mem("4MiB")); !strings.Contains(out, "version 4") || !strings.Contains(out, "signed") {
		t.Fatalf("signed deploy from the CLI: %s", out)
	}
	replay := func(when string) {
		t.Helper()
		if code, body := postDeploy(t, a, manifest3, wasm, string(captured)); code != 403 || !strings.Contains(body, "not newer") {
			t.Errorf("replayed deploy %s: %d %s", when, code, body)
		}
	}
	replay("")
	if code, body := postDeploy(t, a, manifest3, wasm, ""); code != 403 || !strings.Contains(body, "unsigned deploy refused") {
		t.Errorf("unsigned deploy: %d %s", code, body)
	}
	var fi struct {
		Version  int
		Sequence uint64
	}
	_, body := apiDo(t, a, "GET", "/v1/functions/echo", nil, "")
	if json.Unmarshal([]byte(body), &fi); fi.Version != 4 || fi.Sequence == 0 {
		t.Fatalf("after the replay: %s", body)
	}

	// A restart loads the signed version and keeps the high-water mark.
	a.Stop(t)
	a = startAgent(t, dir, cloud.srv.URL, keyed)
	env = agentEnv(a)
	var after struct {
		Version  int
		Sequence uint64
		State    string
	}
	_, body = apiDo(t, a, "GET", "/v1/functions/echo", nil, "")
	if json.Unmarshal([]byte(body), &after); after.Version != 4 || after.Sequence != fi.Sequence || after.State == "not loaded" {
		t.Errorf("after a restart: %s, want version 4 loaded with sequence %d", body, fi.Sequence)
	}
	replay("after a restart")
	// Removing the function does not forget its mark.
	c.runOK(env, "rm", "echo")
	replay("after rm")
	if out := c.runOK(env, "deploy", "--key", key, mem("5MiB")); !strings.Contains(out, "deployed echo version 1") {
		t.Errorf("signed deploy after rm: %s", out)
	}
}

// runOK runs the CLI with extra environment and fails the test unless it
// exits 0.
func (c *cliEnv) runOK(env []string, args ...string) string {
	c.t.Helper()
	out, errOut, code := c.runIn("", env, args...)
	if code != 0 {
		c.t.Fatalf("edgefn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}
