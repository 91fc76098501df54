package fleettest

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/sync/fleet"
)

// Fleet is a set of gateway processes sharing one cloud broker and one
// signing key.
type Fleet struct {
	t      testing.TB
	bin    string
	broker string
	root   string
	// KeyFile is the ed25519 private key (edgefn keygen's format) every
	// gateway trusts; PublicKey its base64 public key; Priv the key.
	KeyFile   string
	PublicKey string
	Priv      ed25519.PrivateKey
	// Config is appended to every gateway config written after it is set
	// (YAML lines at the top level).
	Config string
	// Watch follows every gateway's retained status document.
	Watch *Watcher

	mu  sync.Mutex
	gws []*Gateway
}

// New makes a fleet of bin's agents on the cloud broker at brokerURL, with
// a fresh signing key, and starts its status watcher. Every gateway still
// running when the test ends is killed.
func New(t testing.TB, bin, brokerURL string) *Fleet {
	t.Helper()
	f := &Fleet{t: t, bin: bin, broker: brokerURL, root: t.TempDir()}
	f.KeyFile, f.PublicKey, f.Priv = KeyPair(t)
	f.Watch = NewWatcher(t, brokerURL)
	t.Cleanup(func() {
		for _, g := range f.Gateways() {
			g.Kill()
		}
	})
	return f
}

// KeyPair writes a fresh ed25519 private key as edgefn keygen does and
// returns its path, the public key in base64 and the key.
func KeyPair(t testing.TB) (string, string, ed25519.PrivateKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fleet.key")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, base64.StdEncoding.EncodeToString(pub), priv
}

// Broker is the cloud broker's URL.
func (f *Fleet) Broker() string { return f.broker }

// Gateways lists the gateways added so far, in order.
func (f *Fleet) Gateways() []*Gateway {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.gws)
}

// Gateway is one agent process of the fleet.
type Gateway struct {
	f      *Fleet
	ID     string
	Groups []string
	// Dir is the data dir; the config is Dir/edgefn.yaml, the agent's
	// stdout and stderr go to Dir/agent.log.
	Dir string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Add writes the config of gateway id in groups; Start starts it.
func (f *Fleet) Add(id string, groups ...string) *Gateway {
	f.t.Helper()
	g := &Gateway{f: f, ID: id, Groups: groups, Dir: filepath.Join(f.root, id)}
	if err := os.MkdirAll(g.Dir, 0o700); err != nil {
		f.t.Fatal(err)
	}
	cfg := fmt.Sprintf("gateway_id: %s\ndata_dir: %s\nlog_level: info\noutbox: {durability: normal}\n"+
		"admin: {listen: \"127.0.0.1:0\", trusted_keys: [%q]}\n"+
		"broker: {embedded: {listen: \"127.0.0.1:0\"}}\n"+
		"fleet:\n  broker: %s\n  groups: [%s]\n%s", id, g.Dir, f.PublicKey, f.broker, strings.Join(groups, ", "), f.Config)
	if err := os.WriteFile(g.ConfigPath(), []byte(cfg), 0o600); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.gws = append(f.gws, g)
	f.mu.Unlock()
	return g
}

// ConfigPath is the gateway's config file.
func (g *Gateway) ConfigPath() string { return filepath.Join(g.Dir, "edgefn.yaml") }

// LogPath is the file the agent's output is appended to.
func (g *Gateway) LogPath() string { return filepath.Join(g.Dir, "agent.log") }

// Log is what the agent wrote so far, over all its runs.
func (g *Gateway) Log() string {
	b, _ := os.ReadFile(g.LogPath())
	return string(b)
}

// Start starts the agent process and returns at once; Fleet.WaitOnline
// waits for its status.
func (g *Gateway) Start() {
	t := g.f.t
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.cmd != nil {
		t.Fatalf("fleettest: %s already running", g.ID)
	}
	out, err := os.OpenFile(g.LogPath(), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(g.f.bin, "agent", "--config", g.ConfigPath())
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("fleettest: start %s: %v", g.ID, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); out.Close(); close(done) }()
	g.cmd, g.done = cmd, done
}

// running returns the process and its done channel, nil if stopped.
func (g *Gateway) running() (*exec.Cmd, chan struct{}) {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.cmd, g.done
}

// Running reports whether the process was started and has not exited.
func (g *Gateway) Running() bool {
	cmd, done := g.running()
	if cmd == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Stop sends SIGTERM and waits for a clean exit (code 0), failing the test
// otherwise.
func (g *Gateway) Stop() {
	t := g.f.t
	t.Helper()
	cmd, done := g.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		g.Kill()
		t.Fatalf("fleettest: %s did not stop on SIGTERM within 60s:\n%s", g.ID, g.Log())
	}
	if code := cmd.ProcessState.ExitCode(); code != 0 {
		t.Errorf("fleettest: %s exit code %d after SIGTERM:\n%s", g.ID, code, g.Log())
	}
	g.mu.Lock()
	g.cmd = nil
	g.mu.Unlock()
}

// Kill kills the process (SIGKILL), as a power cut would, and waits for
// it to be gone.
func (g *Gateway) Kill() {
	cmd, done := g.running()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
	g.mu.Lock()
	g.cmd = nil
	g.mu.Unlock()
}

// RSS is the resident set of the running process, in bytes.
func (g *Gateway) RSS() (int64, error) {
	cmd, _ := g.running()
	if cmd == nil {
		return 0, fmt.Errorf("%s is not running", g.ID)
	}
	return procstat.Status(cmd.Process.Pid, "VmRSS")
}

// StartAll starts gws (every gateway when none is given), at most batch at
// a time (0: all at once), each batch waiting until its gateways report
// online, so a big fleet does not start 200 processes on two cores at once.
func (f *Fleet) StartAll(timeout time.Duration, batch int, gws ...*Gateway) {
	f.t.Helper()
	if len(gws) == 0 {
		gws = f.Gateways()
	}
	if batch <= 0 {
		batch = len(gws)
	}
	for len(gws) > 0 {
		n := min(batch, len(gws))
		for _, g := range gws[:n] {
			g.Start()
		}
		f.WaitOnline(timeout, gws[:n]...)
		gws = gws[n:]
	}
}

// WaitOnline waits until each of gws has a status online that is newer
// than its start... in practice: online and its process running.
func (f *Fleet) WaitOnline(timeout time.Duration, gws ...*Gateway) {
	f.t.Helper()
	f.Watch.Wait(timeout, fmt.Sprintf("%d gateways online", len(gws)), func(sts map[string]fleet.StatusDoc) bool {
		for _, g := range gws {
			if st, ok := sts[g.ID]; !ok || !st.Online || !g.Running() {
				return false
			}
		}
		return true
	})
}

// CLI runs `edgefn fleet ARGS...` and returns its stdout, stderr and exit
// code.
func (f *Fleet) CLI(args ...string) (stdout, stderr string, code int) {
	f.t.Helper()
	cmd := exec.Command(f.bin, append([]string{"fleet"}, args...)...)
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		f.t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// DeployResult is the part of `edgefn fleet deploy --json`'s output the
// tests read.
type DeployResult struct {
	Converged []string          `json:"converged"`
	Failed    map[string]string `json:"failed"`
	Pending   []string          `json:"pending"`
	Module    string            `json:"module_sha256"`
	ElapsedMS float64           `json:"elapsed_ms"`
}

// Deploy runs `edgefn fleet deploy MANIFEST --group G --key <the fleet's
// key> --json EXTRA...` against the fleet's broker and fails the test
// unless it exits 0.
func (f *Fleet) Deploy(manifest, group string, extra ...string) DeployResult {
	f.t.Helper()
	args := append([]string{"deploy", manifest, "--broker", f.broker, "--group", group, "--key", f.KeyFile, "--json"}, extra...)
	out, errOut, code := f.CLI(args...)
	if code != 0 {
		f.t.Fatalf("fleet deploy --group %s: exit %d\n%s\n%s", group, code, out, errOut)
	}
	var res DeployResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		f.t.Fatalf("fleet deploy --json: %v\n%s", err, out)
	}
	return res
}

// Runs reports whether st shows function name with module sha active,
// placed by the fleet.
func Runs(st fleet.StatusDoc, name, sha string) bool {
	return slices.ContainsFunc(st.Functions, func(f fleet.StatusFunction) bool {
		return f.Name == name && f.Hash == sha && f.Origin == fleet.OriginFleet
	})
}

// WaitRunning waits until every one of gws reports function name with
// module sha active and returns how long that took from start.
func (f *Fleet) WaitRunning(timeout time.Duration, start time.Time, name, sha string, gws ...*Gateway) time.Duration {
	f.t.Helper()
	f.Watch.Wait(timeout, fmt.Sprintf("%d gateways running %s %.12s", len(gws), name, sha), func(sts map[string]fleet.StatusDoc) bool {
		for _, g := range gws {
			if !Runs(sts[g.ID], name, sha) {
				return false
			}
		}
		return true
	})
	return time.Since(start)
}

// Watcher keeps the newest retained status document of every gateway,
// over a connection that reconnects (and resubscribes) after the broker
// restarts.
type Watcher struct {
	t       testing.TB
	cn      *fleet.Conn
	mu      sync.Mutex
	changed chan struct{} // closed and replaced on every update
	last    map[string]fleet.StatusDoc
	// seen records every module hash each gateway ever reported for each
	// function, in the order seen.
	seen map[string]map[string][]string
	recv Count // status messages received (payload bytes)
	tb   int64 // and their topics' bytes
}

// NewWatcher subscribes to every status document under the default
// prefix on brokerURL until the test ends.
func NewWatcher(t testing.TB, brokerURL string) *Watcher {
	t.Helper()
	w := &Watcher{t: t, changed: make(chan struct{}), last: map[string]fleet.StatusDoc{}, seen: map[string]map[string][]string{}}
	topics := fleet.Topics{}
	d := fleet.Dial{Broker: brokerURL, AutoReconnect: true, OnConnect: func(cn *fleet.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cn.Subscribe(ctx, topics.AllStatus(), func(topic string, p []byte, _ bool) { w.update(topic, p) })
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cn, err := fleet.Connect(ctx, d, topics)
	if err != nil {
		t.Fatalf("fleettest: watcher: %v", err)
	}
	w.cn = cn
	t.Cleanup(cn.Close)
	return w
}

func (w *Watcher) update(topic string, p []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.recv.Messages++
	w.recv.Bytes += int64(len(p))
	w.tb += int64(len(topic))
	var st fleet.StatusDoc
	if json.Unmarshal(p, &st) != nil || st.Gateway == "" {
		return
	}
	w.last[st.Gateway] = st
	if w.seen[st.Gateway] == nil {
		w.seen[st.Gateway] = map[string][]string{}
	}
	for _, fn := range st.Functions {
		hs := w.seen[st.Gateway][fn.Name]
		if len(hs) == 0 || hs[len(hs)-1] != fn.Hash {
			w.seen[st.Gateway][fn.Name] = append(hs, fn.Hash)
		}
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

// Statuses is a copy of the newest status of every gateway seen.
func (w *Watcher) Statuses() map[string]fleet.StatusDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[string]fleet.StatusDoc, len(w.last))
	for k, v := range w.last {
		out[k] = v
	}
	return out
}

// Status is the newest status of one gateway.
func (w *Watcher) Status(id string) fleet.StatusDoc {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last[id]
}

// Seen is every module hash gateway id reported for function name, in
// order, without repeats.
func (w *Watcher) Seen(id, name string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.seen[id][name])
}

// Received is how many status messages (and payload bytes, and topic
// bytes) the watcher got: the broker sent them to the measurement, not to
// the fleet.
func (w *Watcher) Received() (Count, int64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.recv, w.tb
}

// Wait waits until cond holds for the statuses, failing the test after
// timeout with what and the statuses.
func (w *Watcher) Wait(timeout time.Duration, what string, cond func(map[string]fleet.StatusDoc) bool) {
	w.t.Helper()
	deadline := time.After(timeout)
	// Conditions may also depend on processes: look again every 50 ms.
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		sts := w.Statuses()
		if cond(sts) {
			return
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline:
			var b strings.Builder
			for _, id := range slices.Sorted(maps.Keys(sts)) {
				js, _ := json.Marshal(sts[id])
				fmt.Fprintf(&b, "%s\n", js)
			}
			w.t.Fatalf("fleettest: timed out after %v waiting for %s; statuses:\n%s", timeout, what, b.String())
		}
	}
}

// Run is a fleet CLI command running in the background.
type Run struct {
	t      testing.TB
	cmd    *exec.Cmd
	out    strings.Builder
	mu     sync.Mutex
	errOut strings.Builder
	lines  chan string
	done   chan struct{}
}

// Background starts `edgefn fleet ARGS...` and returns at once; its stderr
// lines can be waited for with WaitLine.
func (f *Fleet) Background(args ...string) *Run {
	f.t.Helper()
	r := &Run{t: f.t, cmd: exec.Command(f.bin, append([]string{"fleet"}, args...)...), lines: make(chan string, 1024), done: make(chan struct{})}
	r.cmd.Stdout = &r.out
	stderr, err := r.cmd.StderrPipe()
	if err != nil {
		f.t.Fatal(err)
	}
	if err := r.cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			r.mu.Lock()
			r.errOut.WriteString(sc.Text() + "\n")
			r.mu.Unlock()
			select {
			case r.lines <- sc.Text():
			default:
			}
		}
		_ = r.cmd.Wait()
		close(r.done)
	}()
	f.t.Cleanup(func() {
		_ = r.cmd.Process.Kill()
		<-r.done
	})
	return r
}

// Interrupt sends the command SIGINT (Ctrl-C).
func (r *Run) Interrupt() {
	r.t.Helper()
	if err := r.cmd.Process.Signal(os.Interrupt); err != nil {
		r.t.Fatal(err)
	}
}

// WaitLine waits for a stderr line containing s.
func (r *Run) WaitLine(timeout time.Duration, s string) {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case l := <-r.lines:
			if strings.Contains(l, s) {
				return
			}
		case <-r.done:
			r.t.Fatalf("fleettest: %v exited before printing %q:\n%s", r.cmd.Args, s, r.stderr())
		case <-deadline:
			r.t.Fatalf("fleettest: %v did not print %q in %v:\n%s", r.cmd.Args, s, timeout, r.stderr())
		}
	}
}

func (r *Run) stderr() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.errOut.String()
}

// Wait waits for the command to exit and returns its stdout, stderr and
// exit code.
func (r *Run) Wait(timeout time.Duration) (stdout, stderr string, code int) {
	r.t.Helper()
	select {
	case <-r.done:
	case <-time.After(timeout):
		_ = r.cmd.Process.Kill()
		<-r.done
		r.t.Fatalf("fleettest: %v still running after %v:\n%s", r.cmd.Args, timeout, r.stderr())
	}
	return r.out.String(), r.stderr(), r.cmd.ProcessState.ExitCode()
}
