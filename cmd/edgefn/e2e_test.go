package main

// End-to-end tests of the workstation CLI: the real edgefn binary, run as
// the agent (a child process on free loopback ports, embedded broker, HTTP
// uplink to an httptest receiver) and as the CLI against it.

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
)

// e2eBin is the edgefn binary built once by TestMain for the end-to-end
// tests.
var e2eBin string

func TestMain(m *testing.M) {
	bin, remove, err := testutil.BuildEdgefn(".")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	e2eBin = bin
	code := m.Run()
	remove()
	os.Exit(code)
}

// cloudRecord is one line of the uplink's NDJSON.
type cloudRecord struct {
	ID       string          `json:"id"`
	Function string          `json:"function"`
	Version  int             `json:"version"`
	Subject  string          `json:"subject"`
	Payload  json.RawMessage `json:"payload"`
	B64      string          `json:"payload_b64"`
}

// receiver is the cloud: it stores every record the uplink posts, by id.
type receiver struct {
	srv  *httptest.Server
	mu   sync.Mutex
	recs map[string]cloudRecord
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	rc := &receiver{recs: map[string]cloudRecord{}}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			zr, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			body = zr
		}
		sc := bufio.NewScanner(body)
		sc.Buffer(nil, 16<<20)
		var got []cloudRecord
		for sc.Scan() {
			var rec cloudRecord
			if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			got = append(got, rec)
		}
		rc.mu.Lock()
		for _, rec := range got {
			rc.recs[rec.ID] = rec
		}
		rc.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) snapshot() []cloudRecord {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	out := make([]cloudRecord, 0, len(rc.recs))
	for _, r := range rc.recs {
		out = append(out, r)
	}
	return out
}

// payload returns the record's payload as text.
func (r cloudRecord) payload() string {
	if r.B64 != "" {
		var b []byte
		b, _ = decodeB64(r.B64)
		return string(b)
	}
	var s string
	if json.Unmarshal(r.Payload, &s) == nil {
		return s
	}
	return string(r.Payload)
}

// agentProc is a running `edgefn agent` (testutil.Agent) with its test
// dir, config file, API token and the cloud receiver its uplink posts to.
type agentProc struct {
	*testutil.Agent
	dir      string // test dir: config, data
	config   string
	token    string
	cloudURL string
}

type agentOpts struct {
	trustedKeys []string
	extra       string // more top-level YAML
	limits      string // the limits section, default {max: {memory: 64MiB}}
	noUplink    bool   // no uplinks section: records stay in the outbox
}

// startAgent writes a config in dir (reused across restarts) and starts the
// agent, waiting for its ready banner.
func startAgent(t *testing.T, dir, cloudURL string, o agentOpts) *agentProc {
	t.Helper()
	if o.limits == "" {
		o.limits = "{max: {memory: 64MiB}}"
	}
	uplinks := fmt.Sprintf("uplinks:\n  - http: {url: %q}", cloudURL)
	if o.noUplink {
		uplinks = ""
	}
	cfg := fmt.Sprintf(`gateway_id: gw-e2e
data_dir: %s
gpio: {backend: simulated}
broker: {embedded: {listen: "127.0.0.1:0"}}
admin:
  listen: "127.0.0.1:0"
  trusted_keys: [%s]
limits: %s
shutdown_grace: 5s
%s
%s`, filepath.Join(dir, "data"), strings.Join(o.trustedKeys, ", "), o.limits, uplinks, o.extra)
	path := filepath.Join(dir, "agent.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	a := &agentProc{Agent: testutil.StartAgent(t, e2eBin, path), dir: dir, config: path, cloudURL: cloudURL}
	if a.AdminURL == "" || a.Broker == "" || a.Fingerprint == "" {
		t.Fatalf("the agent's banner lacks its admin URL, broker or certificate:\n%s", a.Stderr)
	}
	tok, err := os.ReadFile(filepath.Join(dir, "data", "api.token"))
	if err != nil {
		t.Fatal(err)
	}
	a.token = strings.TrimSpace(string(tok))
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// cliEnv is a workstation: its own config dir for the credentials file.
type cliEnv struct {
	t       *testing.T
	home    string
	env     []string
	timeout time.Duration // of one command; 0 is 60s
}

// cliFor is a CLI environment logged in to a.
func cliFor(t *testing.T, a *agentProc) *cliEnv {
	t.Helper()
	c := newCLI(t)
	c.login(a)
	return c
}

func newCLI(t *testing.T) *cliEnv {
	home := t.TempDir()
	env := []string{"HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "PATH=" + os.Getenv("PATH")}
	return &cliEnv{t: t, home: home, env: env}
}

// run runs the CLI and returns stdout, stderr and the exit code.
func (c *cliEnv) run(args ...string) (string, string, int) {
	c.t.Helper()
	return c.runIn("", nil, args...)
}

func (c *cliEnv) runIn(dir string, env []string, args ...string) (string, string, int) {
	c.t.Helper()
	timeout := c.timeout
	if timeout == 0 {
		timeout = 60 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, e2eBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append([]string{}, c.env...), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatalf("edgefn %v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

// background starts the CLI without waiting for it (tail, logs -f): its
// stdout and stderr go to the buffer returned; it is killed at the end of
// the test.
func (c *cliEnv) background(args ...string) *testutil.Buffer {
	c.t.Helper()
	out := &testutil.Buffer{}
	cmd := exec.Command(e2eBin, args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return out
}

// ok runs the CLI and fails the test unless it exits 0.
// functions is ls --json: the deployed functions and their active versions.
func (c *cliEnv) functions() []struct {
	Name    string
	Version int
} {
	c.t.Helper()
	var fns []struct {
		Name    string
		Version int
	}
	if err := json.Unmarshal([]byte(c.ok("ls", "--json")), &fns); err != nil {
		c.t.Fatalf("ls --json: %v", err)
	}
	return fns
}

func (c *cliEnv) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("edgefn %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// loggedIn starts a cloud receiver and an agent in a temporary data dir,
// and returns them with a CLI logged in to the agent.
func loggedIn(t *testing.T) (*receiver, *agentProc, *cliEnv) {
	t.Helper()
	cloud := newReceiver(t)
	a := startAgent(t, t.TempDir(), cloud.srv.URL, agentOpts{})
	return cloud, a, cliFor(t, a)
}

func (c *cliEnv) login(a *agentProc) {
	c.t.Helper()
	c.ok("login", a.AdminURL, "--token", a.token, "--fingerprint", a.Fingerprint)
}

// example returns the path of a built example module.
func example(t *testing.T, name string) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "examples", name, name+".wasm"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s: %v (run `make wasm` first)", p, err)
	}
	return p
}

// writeFunction writes a manifest and copies the module next to it, so
// the manifest's relative wasm path is resolved against its directory.
func writeFunction(t *testing.T, dir, manifest, wasmSrc, wasmName string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if wasmSrc != "" {
		b, err := os.ReadFile(wasmSrc)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, wasmName), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := filepath.Join(dir, "function.yaml")
	if err := os.WriteFile(p, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	testutil.Eventually(t, d, what, cond)
}

// publish sends each line as one QoS 1 message with mosquitto_pub.
func publish(t *testing.T, broker, topic string, lines []string) {
	t.Helper()
	testutil.MosquittoPub(t, broker, topic, lines...)
}

// insecureGet calls the admin API without the CLI, with any token.
func insecureGet(t *testing.T, url, token string) int {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}, Timeout: 10 * time.Second}
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func decodeB64(s string) ([]byte, error) {
	var b []byte
	err := json.Unmarshal([]byte(`"`+s+`"`), &b)
	return b, err
}

const echoManifest = `name: echo
wasm: ./echo.wasm
triggers:
  - mqtt: e2e/echo
    qos: 1
limits: {memory: %s, concurrency: 2}
`

func TestE2ELogin(t *testing.T) {
	cloud := newReceiver(t)
	a := startAgent(t, t.TempDir(), cloud.srv.URL, agentOpts{})
	c := newCLI(t)

	// Trust on first use: without --fingerprint, off a terminal, login shows
	// what it sees and refuses.
	_, errOut, code := c.run("login", a.AdminURL, "--token", a.token)
	if code != 1 || !strings.Contains(errOut, a.Fingerprint) || !strings.Contains(errOut, "--accept-fingerprint") {
		t.Errorf("login without fingerprint: exit %d: %s", code, errOut)
	}
	wrongPin := "sha256:" + strings.Repeat("ab", 32)
	_, errOut, code = c.run("login", a.AdminURL, "--token", a.token, "--fingerprint", wrongPin)
	if code != 1 || !strings.Contains(errOut, "does not match the pinned fingerprint") || !strings.Contains(errOut, a.Fingerprint) {
		t.Errorf("login with a wrong fingerprint: exit %d: %s", code, errOut)
	}
	_, errOut, code = c.run("login", a.AdminURL, "--token", "efn_not-the-token", "--fingerprint", a.Fingerprint)
	if code != 1 || !strings.Contains(errOut, "token refused by "+a.AdminURL) {
		t.Errorf("login with a wrong token: exit %d: %s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(c.home, ".config", "edgefn", "credentials.json")); err == nil {
		t.Errorf("failed logins stored credentials")
	}
	out := c.ok("login", a.AdminURL, "--token", a.token, "--accept-fingerprint")
	if !strings.Contains(out, a.Fingerprint) || !strings.Contains(out, "gw-e2e") {
		t.Errorf("login: %s", out)
	}
	credPath := filepath.Join(c.home, ".config", "edgefn", "credentials.json")
	fi, err := os.Stat(credPath)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v, mode %v", err, fi.Mode())
	}
	c.ok("ls")

	// A later different certificate is refused: the pin in the file no
	// longer matches what the agent presents.
	b, _ := os.ReadFile(credPath)
	if err := os.WriteFile(credPath, bytes.ReplaceAll(b, []byte(a.Fingerprint), []byte(wrongPin)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code = c.run("ls")
	if code != 1 || !strings.Contains(errOut, "does not match the pinned fingerprint") || !strings.Contains(errOut, "edgefn login") {
		t.Errorf("ls against a changed certificate: exit %d: %s", code, errOut)
	}
	// ... and login does not silently replace the pin either.
	_, errOut, code = c.run("login", a.AdminURL, "--token", a.token, "--accept-fingerprint")
	if code != 1 || !strings.Contains(errOut, "does not match") {
		t.Errorf("re-login with a changed certificate: exit %d: %s", code, errOut)
	}
	c.login(a) // an explicit --fingerprint replaces the pin
	c.ok("status")

	// Wrong token from the environment: 401, a clear error, exit 1.
	_, errOut, code = c.runIn("", []string{"EDGEFN_TOKEN=efn_forged"}, "ls")
	if code != 1 || !strings.Contains(errOut, "token refused by "+a.AdminURL+": run edgefn login") {
		t.Errorf("ls with a forged token: exit %d: %s", code, errOut)
	}
	// Environment only, no credentials file: EDGEFN_GATEWAY/TOKEN/FINGERPRINT.
	other := newCLI(t)
	_, errOut, code = other.run("ls")
	if code != 2 || !strings.Contains(errOut, "edgefn login") {
		t.Errorf("ls with no agent: exit %d: %s", code, errOut)
	}
	out, errOut, code = other.runIn("", []string{"EDGEFN_GATEWAY=" + a.AdminURL, "EDGEFN_TOKEN=" + a.token, "EDGEFN_FINGERPRINT=" + a.Fingerprint}, "ls", "--json")
	if code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("ls from the environment: exit %d: %s %s", code, out, errOut)
	}

	// Unauthenticated and forged-token calls to the API itself.
	for _, tok := range []string{"", "efn_forged", a.token + "x"} {
		for _, p := range []string{"/v1/functions", "/v1/status", "/v1/usage", "/v1/outbox", "/v1/functions/x/logs", "/metrics"} {
			if got := insecureGet(t, a.AdminURL+p, tok); got != http.StatusUnauthorized {
				t.Errorf("GET %s with token %q: %d, want 401", p, tok, got)
			}
		}
	}
	if got := insecureGet(t, a.AdminURL+"/v1/usage", a.token); got != http.StatusOK {
		t.Errorf("GET /v1/usage with the token: %d", got)
	}
}

func TestE2EDeployEventsRedeployRollbackRemove(t *testing.T) {
	if testing.Short() {
		t.Skip("end to end with event flow: skipped with -short")
	}
	cloud, a, c := loggedIn(t)
	fdir := filepath.Join(t.TempDir(), "echo")
	manifest := writeFunction(t, fdir, fmt.Sprintf(echoManifest, "1MiB"), example(t, "wat-minimal"), "echo.wasm")

	out := c.ok("deploy", manifest)
	if !strings.Contains(out, "deployed echo version 1") {
		t.Fatalf("deploy: %s", out)
	}
	// Deploy from the manifest's directory with the default file name.
	out, errOut, code := c.runIn(fdir, nil, "deploy", "--json")
	var meta struct {
		Name    string
		Version int
		Hash    string
	}
	if code != 0 || json.Unmarshal([]byte(out), &meta) != nil || meta.Version != 1 || len(meta.Hash) != 64 {
		t.Fatalf("redeploy of the same content: exit %d: %s %s", code, out, errOut)
	}

	publish(t, a.Broker, "e2e/echo", []string{"first"})
	waitFor(t, 10*time.Second, "the first record at the cloud", func() bool { return len(cloud.snapshot()) == 1 })
	if r := cloud.snapshot()[0]; r.payload() != "first" || r.Function != "echo" || r.Version != 1 || r.Subject != "e2e/echo" {
		t.Fatalf("cloud record %+v", r)
	}

	// Redeploy twice while events flow (a publisher paced by a ticker):
	// none lost, each record on a version that was deployed.
	const n = 600
	msgs := make([]string, n)
	for i := range msgs {
		msgs[i] = fmt.Sprintf("m%04d", i)
	}
	host, port, _ := strings.Cut(a.Broker, ":")
	pub := exec.Command("mosquitto_pub", "-h", host, "-p", port, "-q", "1", "-t", "e2e/echo", "-l", "-i", "e2e-flow")
	stdin, err := pub.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var pubOut bytes.Buffer
	pub.Stdout, pub.Stderr = &pubOut, &pubOut
	if err := pub.Start(); err != nil {
		t.Fatal(err)
	}
	pubDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for _, m := range msgs {
			<-tick.C
			if _, err := io.WriteString(stdin, m+"\n"); err != nil {
				pubDone <- err
				return
			}
		}
		stdin.Close()
		pubDone <- pub.Wait()
	}()
	for i, mem := range []string{"2MiB", "4MiB"} {
		waitFor(t, 20*time.Second, "records flowing", func() bool { return len(cloud.snapshot()) > 100+200*i })
		writeFunction(t, fdir, fmt.Sprintf(echoManifest, mem), "", "")
		if out := c.ok("deploy", manifest); !strings.Contains(out, fmt.Sprintf("deployed echo version %d", i+2)) {
			t.Fatalf("deploy: %s", out)
		}
	}
	if err := <-pubDone; err != nil {
		t.Fatalf("mosquitto_pub: %v: %s", err, pubOut.String())
	}
	waitFor(t, 30*time.Second, fmt.Sprintf("%d records at the cloud", n+1), func() bool { return len(cloud.snapshot()) >= n+1 })
	seen := map[string]bool{}
	versions := map[int]int{}
	for _, r := range cloud.snapshot() {
		seen[r.payload()] = true
		versions[r.Version]++
		if r.Version < 1 || r.Version > 3 {
			t.Errorf("record %s on version %d, deployed were 1..3", r.ID, r.Version)
		}
	}
	for _, m := range msgs {
		if !seen[m] {
			t.Errorf("message %s lost", m)
		}
	}
	if got := len(cloud.snapshot()); got != n+1 {
		t.Errorf("%d records at the cloud, want %d", got, n+1)
	}
	t.Logf("records per version: %v", versions)

	if fns := c.functions(); len(fns) != 1 || fns[0].Version != 3 {
		t.Fatalf("ls after redeploys: %+v", fns)
	}
	table := c.ok("ls")
	if !strings.Contains(table, "NAME") || !strings.Contains(table, "mqtt:e2e/echo (qos 1)") {
		t.Errorf("ls table:\n%s", table)
	}

	// Rollback: to the previous, then to a given version; errors exit 1.
	if out := c.ok("rollback", "echo"); !strings.Contains(out, "version 2 active") {
		t.Errorf("rollback: %s", out)
	}
	if out := c.ok("rollback", "echo", "--to", "1"); !strings.Contains(out, "version 1 active") {
		t.Errorf("rollback --to 1: %s", out)
	}
	if _, errOut, code := c.run("rollback", "echo", "--to", "9"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("rollback to a missing version: exit %d: %s", code, errOut)
	}
	if _, errOut, code := c.run("rollback", "echo", "--to", "0"); code != 2 {
		t.Errorf("rollback --to 0: exit %d: %s", code, errOut)
	}
	before := len(cloud.snapshot())
	publish(t, a.Broker, "e2e/echo", []string{"after-rollback"})
	waitFor(t, 10*time.Second, "the record after rollback", func() bool { return len(cloud.snapshot()) == before+1 })
	for _, r := range cloud.snapshot() {
		if r.payload() == "after-rollback" && r.Version != 1 {
			t.Errorf("event after rollback ran on version %d, want 1", r.Version)
		}
	}

	// rm: gone from ls, invoke says not found.
	if out := c.ok("rm", "echo"); !strings.Contains(out, "removed echo") {
		t.Errorf("rm: %s", out)
	}
	if out := c.ok("ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("ls after rm: %s", out)
	}
	if _, errOut, code := c.run("invoke", "echo", "--data", "x"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("invoke after rm: exit %d: %s", code, errOut)
	}
	if _, errOut, code := c.run("rm", "echo"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("rm twice: exit %d: %s", code, errOut)
	}
}

func TestE2ERestartKeepsFunctions(t *testing.T) {
	if testing.Short() {
		t.Skip("restarts the agent: skipped with -short")
	}
	cloud := newReceiver(t)
	dir := t.TempDir()
	a := startAgent(t, dir, cloud.srv.URL, agentOpts{})
	c := cliFor(t, a)
	c.ok("deploy", writeFunction(t, filepath.Join(dir, "fn"), fmt.Sprintf(echoManifest, "1MiB"), example(t, "wat-minimal"), "echo.wasm"))
	writeFunction(t, filepath.Join(dir, "fn"), fmt.Sprintf(echoManifest, "2MiB"), "", "")
	c.ok("deploy", filepath.Join(dir, "fn", "function.yaml"))
	c.ok("invoke", "echo", "--data", "before restart")
	a.Stop(t)

	b := startAgent(t, dir, cloud.srv.URL, agentOpts{})
	if b.Fingerprint != a.Fingerprint {
		t.Errorf("certificate changed across a restart: %s then %s", a.Fingerprint, b.Fingerprint)
	}
	// The admin port is new (127.0.0.1:0); the certificate is the same.
	env := []string{"EDGEFN_GATEWAY=" + b.AdminURL, "EDGEFN_TOKEN=" + b.token, "EDGEFN_FINGERPRINT=" + b.Fingerprint}
	out, errOut, code := c.runIn("", env, "ls", "--json")
	var fns []struct {
		Name     string
		Version  int
		Triggers []string
	}
	if code != 0 || json.Unmarshal([]byte(out), &fns) != nil || len(fns) != 1 || fns[0].Name != "echo" || fns[0].Version != 2 {
		t.Fatalf("ls after restart: exit %d: %s %s", code, out, errOut)
	}
	out, _, code = c.runIn("", env, "invoke", "echo", "--data", "after restart")
	if code != 0 || !strings.Contains(out, "after restart") || !strings.Contains(out, "version 2") {
		t.Errorf("invoke after restart: exit %d: %s", code, out)
	}
	// Rollback still knows version 1.
	if out, _, code := c.runIn("", env, "rollback", "echo"); code != 0 || !strings.Contains(out, "version 1 active") {
		t.Errorf("rollback after restart: exit %d: %s", code, out)
	}
}

func TestE2EInvalidManifests(t *testing.T) {
	_, _, c := loggedIn(t)
	root := t.TempDir()
	echo := example(t, "wat-minimal")
	bad, err := filepath.Abs(filepath.Join("..", "..", "sandbox", "testdata", "bad.wasm"))
	if err != nil {
		t.Fatal(err)
	}
	const head = "name: bad\nwasm: ./f.wasm\n"
	for i, tc := range []struct {
		name, manifest, wasm string
		want                 []string
	}{
		{"unknown key", head + "limitz: {}\n", echo, []string{`function.yaml:3: limitz: unknown key "limitz", did you mean "limits"?`}},
		{"missing name", "wasm: ./f.wasm\n", echo, []string{"name: missing"}},
		{"missing wasm", "name: bad\n", "", []string{"wasm: missing"}},
		{"wasm file not there", "name: bad\nwasm: ./nowhere.wasm\n", "", []string{`wasm: "./nowhere.wasm"`, "no such file"}},
		{"bad name", "name: Temp Alert\nwasm: ./f.wasm\n", echo, []string{`function.yaml:1: name: "Temp Alert": use a lower-case letter`}},
		{"decimal unit", head + "limits:\n  memory: 64MB\n", echo, []string{`function.yaml:4: limits.memory: "64MB": unknown unit "MB"`}},
		{"bad duration", head + "limits:\n  timeout: 50\n", echo, []string{`function.yaml:4: limits.timeout: "50": not a duration`}},
		{"zero concurrency", head + "limits:\n  concurrency: 0\n", echo, []string{"limits.concurrency: 0: out of range"}},
		{"qos 2", head + "triggers:\n  - mqtt: a/b\n    qos: 2\n", echo, []string{"function.yaml:5: triggers[0].qos: QoS 2 is not supported"}},
		{"bad filter", head + "triggers:\n  - mqtt: a/#/b\n", echo, []string{`function.yaml:4: triggers[0].mqtt: "a/#/b": not a valid MQTT topic filter`}},
		{"two kinds", head + "triggers:\n  - mqtt: a/b\n    every: 1s\n", echo, []string{"function.yaml:4: triggers[0]: one trigger per list item"}},
		{"bad edge", head + "triggers:\n  - gpio: GPIO17\n    edge: down\n", echo, []string{`function.yaml:5: triggers[0].edge: "down": use rising, falling or both`}},
		{"bad cron", head + "triggers:\n  - cron: \"61 * * * *\"\n", echo, []string{`function.yaml:4: triggers[0].cron: "61 * * * *"`}},
		{"bad publish grant", head + "allow:\n  publish: [\"a/#/c\"]\n", echo, []string{`allow.publish[0]: "a/#/c": not a valid MQTT topic filter`}},
		{"reserved env", head + "env:\n  EDGEFN_SOURCE: x\n", echo, []string{"env.EDGEFN_SOURCE: names starting with EDGEFN_ are set by the agent"}},
		{"duplicate key", "name: a\nname: b\nwasm: ./f.wasm\n", echo, []string{`function.yaml:2: name: duplicate key "name"`}},
		{"not yaml", "name: [a\n", echo, []string{"function.yaml:", "invalid YAML"}},
		{"over the agent's max memory", head + "limits:\n  memory: 128MiB\n", echo, []string{"function.yaml:4: limits.memory: 128MiB: over the agent's maximum 64MiB (limits.max.memory in the agent config)"}},
		{"max_output and max_log over the default ceilings", head + "limits:\n  max_output: 4GiB\n  max_log: 4GiB\n", echo, []string{
			"function.yaml:4: limits.max_output: 4GiB: over the agent's maximum 4MiB",
			"function.yaml:5: limits.max_log: 4GiB: over the agent's maximum 64KiB"}},
		{"publish grants beyond the ceiling", head + "allow:\n  publish: [\"#\", \"$SYS/#\", \"actuators/fan\"]\n", echo, []string{
			`function.yaml:4: allow.publish[0]: "#": not within what the agent allows functions to publish to (grants.max.publish: ["+/#"]`,
			`function.yaml:4: allow.publish[1]: "$SYS/#": not within`}},
		{"pin not on this device", head + "triggers:\n  - gpio: GPIO99\n", echo, []string{`"GPIO99"`, "this device"}},
		{"module breaks the ABI", head, bad, []string{"foo.bar"}},
		{"every problem at once", "name: A\nwasm: ./f.wasm\nlimits:\n  memory: 8MB\n  timeout: soon\n", echo,
			[]string{"function.yaml:1: name", "function.yaml:4: limits.memory", "function.yaml:5: limits.timeout"}},
		{"every ceiling problem at once", head + "limits:\n  max_output: 4GiB\nallow:\n  publish: [\"#\"]\ntriggers:\n  - gpio: GPIO99\n", echo,
			[]string{"function.yaml:4: limits.max_output", "function.yaml:6: allow.publish[0]", `"GPIO99"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := writeFunction(t, filepath.Join(root, fmt.Sprint(i)), tc.manifest, tc.wasm, "f.wasm")
			out, errOut, code := c.run("deploy", p)
			if code != 1 {
				t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr does not say %q:\n%s", w, errOut)
				}
			}
		})
	}
	if out := c.ok("ls", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("refused deploys left functions: %s", out)
	}
	// Usage errors: exit 2.
	for _, args := range [][]string{{"deploy", "a.yaml", "b.yaml"}, {"deploy", filepath.Join(root, "none.yaml")}, {"rollback"}, {"invoke"}, {"logs"}, {"gpio", "set", "GPIO1", "sideways"}} {
		if _, errOut, code := c.run(args...); code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	// No function.yaml in the current directory.
	if _, errOut, code := c.runIn(root, nil, "deploy"); code != 2 || !strings.Contains(errOut, "no function.yaml here") {
		t.Errorf("deploy with no manifest: exit %d: %s", code, errOut)
	}
}

func TestE2ESignedDeploys(t *testing.T) {
	c := newCLI(t)
	kdir := t.TempDir()
	c.runIn(kdir, nil, "keygen")
	out, errOut, code := c.runIn(kdir, nil, "keygen", "other.key")
	if code != 0 || !strings.Contains(out, "trusted_keys") {
		t.Fatalf("keygen: exit %d: %s %s", code, out, errOut)
	}
	if _, errOut, code := c.runIn(kdir, nil, "keygen"); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("keygen over an existing key: exit %d: %s", code, errOut)
	}
	if fi, err := os.Stat(filepath.Join(kdir, "edgefn-deploy.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key: %v %v", err, fi)
	}
	pub, err := os.ReadFile(filepath.Join(kdir, "edgefn-deploy.key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	cloud := newReceiver(t)
	a := startAgent(t, t.TempDir(), cloud.srv.URL, agentOpts{trustedKeys: []string{fmt.Sprintf("%q", strings.TrimSpace(string(pub)))}})
	c.login(a)
	m := writeFunction(t, t.TempDir(), fmt.Sprintf(echoManifest, "1MiB"), example(t, "wat-minimal"), "echo.wasm")

	if _, errOut, code := c.run("deploy", m); code != 1 || !strings.Contains(errOut, "unsigned deploy refused") {
		t.Errorf("unsigned deploy: exit %d: %s", code, errOut)
	}
	if _, errOut, code := c.run("deploy", m, "--key", filepath.Join(kdir, "other.key")); code != 1 || !strings.Contains(errOut, "does not trust") {
		t.Errorf("deploy signed by an untrusted key: exit %d: %s", code, errOut)
	}
	if out := c.ok("deploy", "--key", filepath.Join(kdir, "edgefn-deploy.key"), m); !strings.Contains(out, "deployed echo version 1") || !strings.Contains(out, "signed") {
		t.Errorf("signed deploy: %s", out)
	}
	if err := os.Chmod(filepath.Join(kdir, "other.key"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := c.run("deploy", m, "--key", filepath.Join(kdir, "other.key")); code != 2 || !strings.Contains(errOut, "chmod 600") {
		t.Errorf("deploy with a world-readable key: exit %d: %s", code, errOut)
	}
}

func TestE2ELogsFollowAndUsage(t *testing.T) {
	cloud, a, c := loggedIn(t)
	c.ok("deploy", writeFunction(t, t.TempDir(), "name: conv\nwasm: ./c.wasm\ntriggers:\n  - mqtt: e2e/celsius\n    qos: 1\nlimits: {memory: 2MiB, timeout: 2s}\n", example(t, "c-command"), "c.wasm"))

	// Follow the log, then make the function log a line.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	follow := exec.CommandContext(ctx, e2eBin, "logs", "conv", "-f")
	follow.Env = c.env
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var followErr bytes.Buffer
	follow.Stderr = &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "21.50 C = 70.70 F") {
				found <- sc.Text()
				return
			}
		}
	}()
	publish(t, a.Broker, "e2e/celsius", []string{"21.5"})
	select {
	case l := <-found:
		t.Logf("logs -f: %s", l)
	case <-time.After(10 * time.Second):
		t.Fatalf("logs -f did not show the guest's log line within 10s; stderr: %s", followErr.String())
	}
	cancel()
	_ = follow.Wait()

	// Invocations of known outcome: 4 ok, 3 failing (not a number).
	for i := range 4 {
		c.ok("invoke", "conv", "--data", fmt.Sprint(i))
	}
	for range 3 {
		out, errOut, code := c.run("invoke", "conv", "--data", "warm")
		if code != 1 || !strings.Contains(out, "exit") || !strings.Contains(errOut, "the function failed") {
			t.Fatalf("failing invoke: exit %d: %s %s", code, out, errOut)
		}
	}
	var u struct {
		Functions []struct {
			Function       string
			Invocations    int64
			Errors         int64
			ErrorsByReason map[string]int64 `json:"errors_by_reason"`
			Cold, Warm     int64
			GBSeconds      float64 `json:"gb_seconds"`
		}
	}
	if err := json.Unmarshal([]byte(c.ok("usage", "--json")), &u); err != nil {
		t.Fatal(err)
	}
	if len(u.Functions) != 1 {
		t.Fatalf("usage: %+v", u)
	}
	f := u.Functions[0]
	if f.Function != "conv" || f.Invocations != 8 || f.Errors != 3 || f.ErrorsByReason["exit"] != 3 || f.Cold+f.Warm != 8 || f.GBSeconds <= 0 {
		t.Errorf("usage %+v, want 8 invocations (1 MQTT + 7 invoke), 3 exit errors", f)
	}
	table := c.ok("usage", "--since", "1h")
	if !strings.Contains(table, "GB-SECONDS") || !strings.Contains(table, "3 (exit 3)") {
		t.Errorf("usage table:\n%s", table)
	}
	logs := c.ok("logs", "conv", "--since", "1h")
	if strings.Count(logs, "FAIL") != 3 {
		t.Errorf("logs: want 3 failure records:\n%s", logs)
	}
	// The agent stores the reason and the message apart; the CLI joins
	// them once.
	if strings.Count(logs, "FAIL   exit: ") != 3 || strings.Contains(logs, "exit: exit: ") {
		t.Errorf("logs: want each failure as 'exit: ...' once:\n%s", logs)
	}
	// So does the web console's function page: the reason, then the
	// message without it.
	if page := adminGet(t, a, "/functions/conv"); strings.Count(page, `<td class="bad">exit</td><td class="msg">exit code 1; stderr: `) != 3 {
		t.Errorf("console: want 3 failures, reason and message apart:\n%s", page)
	}
	if out := c.ok("logs", "conv", "-n", "2", "--json"); strings.Count(out, "\n") != 2 {
		t.Errorf("logs -n 2 --json: %s", out)
	}

	// status and outbox agree with what happened.
	st := c.ok("status")
	for _, w := range []string{"uplink", "broker", "outbox", "conv", "P99"} {
		if !strings.Contains(st, w) {
			t.Errorf("status lacks %q:\n%s", w, st)
		}
	}
	waitFor(t, 10*time.Second, "the uplink to drain", func() bool {
		var o struct{ Depth int64 }
		return json.Unmarshal([]byte(c.ok("outbox", "--json")), &o) == nil && o.Depth == 0
	})
	if out := c.ok("outbox"); !strings.Contains(out, "dead letters") || !strings.Contains(out, "drops") {
		t.Errorf("outbox:\n%s", out)
	}
	if n := len(cloud.snapshot()); n != 5 {
		t.Errorf("%d records at the cloud, want 5 (the successful invocations)", n)
	}

	// GPIO on the simulated chip.
	c.ok("gpio", "set", "GPIO5", "high")
	if out := c.ok("gpio", "ls"); !strings.Contains(out, "GPIO5   high") {
		t.Errorf("gpio ls after set:\n%s", out)
	}
	c.ok("gpio", "pulse", "GPIO6", "--width", "1ms")
	if _, errOut, code := c.run("gpio", "pulse", "NOPE"); code != 1 || !strings.Contains(errOut, "NOPE") {
		t.Errorf("pulse an unknown pin: exit %d: %s", code, errOut)
	}
}

// A deploy whose body is cut off is refused and the active version stays.
func TestE2ETruncatedUpload(t *testing.T) {
	_, a, c := loggedIn(t)
	dir := t.TempDir()
	c.ok("deploy", writeFunction(t, dir, fmt.Sprintf(echoManifest, "1MiB"), example(t, "wat-minimal"), "echo.wasm"))

	manifest := []byte(fmt.Sprintf(echoManifest, "2MiB"))
	wasm, err := os.ReadFile(example(t, "c-command"))
	if err != nil {
		t.Fatal(err)
	}
	var body bytes.Buffer
	boundary := "e2e-boundary-0123456789"
	fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"function.yaml\"\r\n\r\n%s\r\n", boundary, manifest)
	fmt.Fprintf(&body, "--%s\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"f.wasm\"\r\nContent-Type: application/octet-stream\r\n\r\n", boundary)
	body.Write(wasm)
	fmt.Fprintf(&body, "\r\n--%s--\r\n", boundary)
	full := body.Bytes()

	raw := func(t *testing.T, payload []byte, contentLength int) string {
		t.Helper()
		host := strings.TrimPrefix(a.AdminURL, "https://")
		conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/functions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: multipart/form-data; boundary=%s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
			host, a.token, boundary, contentLength)
		conn.Write(payload)
		// Half-close: the agent sees the body end early.
		_ = conn.CloseWrite()
		_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		resp, _ := io.ReadAll(conn)
		return string(resp)
	}
	// Cut in the middle of the module, Content-Length promising the rest.
	resp := raw(t, full[:len(full)/2], len(full))
	if !strings.Contains(resp, "400 Bad Request") || !strings.Contains(resp, "nothing was changed") {
		t.Errorf("truncated body: %s", resp)
	}
	// A well-formed multipart whose module was cut: the hash the client
	// meant to send does not match.
	var cut bytes.Buffer
	sum := sha256sum(wasm)
	fmt.Fprintf(&cut, "--%s\r\nContent-Disposition: form-data; name=\"wasm_sha256\"\r\n\r\n%s\r\n", boundary, sum)
	fmt.Fprintf(&cut, "--%s\r\nContent-Disposition: form-data; name=\"manifest\"; filename=\"function.yaml\"\r\n\r\n%s\r\n", boundary, manifest)
	fmt.Fprintf(&cut, "--%s\r\nContent-Disposition: form-data; name=\"wasm\"; filename=\"f.wasm\"\r\n\r\n", boundary)
	cut.Write(wasm[:len(wasm)/3])
	fmt.Fprintf(&cut, "\r\n--%s--\r\n", boundary)
	resp = raw(t, cut.Bytes(), cut.Len())
	if !strings.Contains(resp, "400 Bad Request") || !strings.Contains(resp, "hash does not match") {
		t.Errorf("cut module with its hash: %s", resp)
	}

	if fns := c.functions(); len(fns) != 1 || fns[0].Version != 1 {
		t.Fatalf("ls after truncated uploads: %+v", fns)
	}
	if out := c.ok("invoke", "echo", "--data", "still v1"); !strings.Contains(out, "version 1: ok") || !strings.Contains(out, "still v1") {
		t.Errorf("invoke after truncated uploads: %s", out)
	}
}

// A module over 1 MiB shows upload progress on stderr.
func TestE2EDeployProgress(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a Go module: skipped with -short")
	}
	_, _, c := loggedIn(t)
	src, err := os.ReadFile(filepath.Join("..", "..", "examples", "go-temp-alert", "function.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	m := writeFunction(t, t.TempDir(), string(src), example(t, "go-temp-alert"), "go-temp-alert.wasm")
	out, errOut, code := c.run("deploy", m)
	if code != 0 || !strings.Contains(out, "deployed go-temp-alert version 1") {
		t.Fatalf("deploy: exit %d: %s %s", code, out, errOut)
	}
	for _, w := range []string{"uploading go-temp-alert.wasm", "(100%)", "uploaded 3.2 MiB"} {
		if !strings.Contains(errOut, w) {
			t.Errorf("progress on stderr lacks %q:\n%s", w, errOut)
		}
	}
	// A small module shows none (stderr is not a terminal).
	_, errOut, _ = c.run("deploy", writeFunction(t, t.TempDir(), fmt.Sprintf(echoManifest, "1MiB"), example(t, "wat-minimal"), "echo.wasm"))
	if errOut != "" {
		t.Errorf("small deploy wrote to stderr: %s", errOut)
	}
}

func sha256sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
