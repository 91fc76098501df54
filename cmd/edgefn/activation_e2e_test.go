package main

// End-to-end tests of the trust boundaries around activations: function
// names on the admin routes, and signed deploy/rollback statements, against
// the real agent process and CLI binary.

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// apiDo calls the agent's admin API without the CLI and returns the status
// and body.
func apiDo(t *testing.T, a *agentProc, method, path string, body io.Reader, contentType string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 30 * time.Second}
	req, err := http.NewRequest(method, a.url+path, body)
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
	c := newCLI(t)
	c.login(a)
	for _, args := range [][]string{{"rollback", "../../x/evil", "--to", "1"}, {"rm", "../evil2"}, {"invoke", "../evil2"}} {
		if _, errOut, code := c.run(args...); code == 0 || !strings.Contains(errOut, "invalid") {
			t.Errorf("edgefn %v: exit %d: %s", args, code, errOut)
		}
	}
}
