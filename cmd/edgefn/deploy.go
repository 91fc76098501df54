package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/manifest"
	"github.com/edgefn/edgefn/internal/strictyaml"
)

func deployAction(c *cli.Context) error {
	path := argOr(c, "function.yaml")
	manifest, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) && c.NArg() == 0 {
			return usagef("deploy: no function.yaml here: pass the manifest's path (edgefn deploy path/to/function.yaml)")
		}
		return usagef("deploy: %v", err)
	}
	var priv ed25519.PrivateKey
	if k := c.String("key"); k != "" {
		if priv, err = readPrivateKey(k); err != nil {
			return usagef("deploy: --key: %v", err)
		}
	}
	wasmPath, wasm, err := readModule(path, manifest)
	if err != nil {
		return err
	}
	r, err := connect(c)
	if err != nil {
		return err
	}

	req := api.DeployRequest{File: filepath.Base(path), Manifest: manifest, WasmName: filepath.Base(wasmPath), Wasm: wasm}
	// A manifest that does not parse has no name to sign for: it goes
	// unsigned, and the agent lists its problems.
	if name := manifestName(path, manifest); priv != nil && name != "" {
		fs, err := fetchFunction(c, r, name)
		if err != nil {
			return fmt.Errorf("deploy %s: %w", path, err)
		}
		sg := activation.Sign(activation.New(activation.Deploy, name, manifest, wasm, nextSequence(fs.Sequence)), priv)
		if req.Signed, err = json.Marshal(sg); err != nil {
			return err
		}
	}
	prog := newProgress(c.App.ErrWriter, req.WasmName, int64(len(wasm)))
	req.Progress = prog.set
	meta, err := r.Deploy(c.Context, req)
	prog.done(err == nil)
	if err != nil {
		return fmt.Errorf("deploy %s: %w", path, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, meta)
	}
	signed := ""
	if meta.Signer != "" {
		signed = ", signed"
	}
	fmt.Fprintf(c.App.Writer, "deployed %s version %d (sha256 %s%s)\n", meta.Name, meta.Version, meta.Hash, signed)
	return nil
}

// fetchFunction asks the agent about a function (what a signer needs: the
// active version, the hashes of every stored version and the sequence of
// the last signed statement it accepted); one it does not have is the
// zero Function.
func fetchFunction(c *cli.Context, r *api.Client, name string) (api.Function, error) {
	fs, err := r.Function(c.Context, name)
	if api.IsNotFound(err) {
		return api.Function{}, nil
	}
	return fs, err
}

// nextSequence is the sequence of a new signed statement: the time in
// milliseconds since 1970, or one more than the last sequence the agent
// accepted for the function when that is higher (a signer whose clock ran
// ahead). A timestamp needs no counter shared by every signer and device
// (a statement can be signed once for a whole fleet); the agent's mark
// keeps a signer with a slow clock from being refused.
func nextSequence(last uint64) uint64 {
	return max(uint64(time.Now().UnixMilli()), last+1)
}

// signRollback signs a rollback statement for version to (0: the one
// before the active one) of a function, with the hashes the agent reports
// for that version, and returns the version and the statement as JSON.
func signRollback(c *cli.Context, r *api.Client, name string, to int, priv ed25519.PrivateKey) (int, []byte, error) {
	fs, err := fetchFunction(c, r, name)
	if err != nil {
		return 0, nil, err
	}
	if fs.Version == 0 {
		return 0, nil, fmt.Errorf("function %q not found", name)
	}
	var have []int
	prev := 0
	for _, vi := range fs.Versions {
		have = append(have, vi.Version)
		if vi.Version < fs.Version {
			prev = max(prev, vi.Version)
		}
	}
	if to == 0 {
		to = prev
	}
	st := activation.Statement{Action: activation.Rollback, Function: name, Sequence: nextSequence(fs.Sequence)}
	for _, vi := range fs.Versions {
		if vi.Version != to {
			continue
		}
		_, err1 := hex.Decode(st.Manifest[:], []byte(vi.ManifestSHA256))
		_, err2 := hex.Decode(st.Module[:], []byte(vi.ModuleSHA256))
		if err1 != nil || err2 != nil {
			return 0, nil, fmt.Errorf("the agent reports malformed hashes for version %d", to)
		}
		b, err := json.Marshal(activation.Sign(st, priv))
		return to, b, err
	}
	if to == 0 {
		return 0, nil, fmt.Errorf("no version before %d (stored: %v)", fs.Version, have)
	}
	return 0, nil, &api.StatusError{Status: http.StatusNotFound, Message: fmt.Sprintf("function %q version %d not found (stored: %v)", name, to, have)}
}

// manifestName is the name of a manifest that parses, "" otherwise.
func manifestName(path string, src []byte) string {
	m, err := manifest.Parse(filepath.Base(path), src)
	if err != nil {
		return ""
	}
	return m.Name
}

// readModule finds the module the manifest names, next to the manifest
// when relative. A manifest whose wasm field cannot be found is checked
// locally with the agent's parser so every problem is listed at once.
func readModule(path string, src []byte) (string, []byte, error) {
	var m struct {
		Wasm string `yaml:"wasm"`
	}
	// Only wasm is wanted here: the other keys' problems are listed below.
	_ = strictyaml.Decode(path, src, &m)
	var problem string
	if m.Wasm == "" {
		problem = "wasm: missing: name the module file, such as wasm: ./my-function.wasm"
	} else {
		p := m.Wasm
		if !filepath.IsAbs(p) {
			p = filepath.Join(filepath.Dir(path), p)
		}
		wasm, err := os.ReadFile(p)
		if err == nil {
			return p, wasm, nil
		}
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		problem = fmt.Sprintf("wasm: %q: %s: %v (build the module first, or fix the path: it is relative to the manifest)", m.Wasm, p, err)
	}
	probs := []string{}
	if _, err := manifest.Parse(filepath.Base(path), src); err != nil {
		if u, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range u.Unwrap() {
				probs = append(probs, e.Error())
			}
		} else {
			probs = append(probs, err.Error())
		}
	}
	if m.Wasm != "" || len(probs) == 0 {
		probs = append(probs, problem)
	}
	return "", nil, &api.StatusError{Message: fmt.Sprintf("deploy %s: nothing was uploaded", path), Problems: probs}
}

// progress prints an upload progress line on stderr when it is a terminal
// (rewritten in place) or the module is over 1 MiB (a line per quarter).
type progress struct {
	w          io.Writer
	name       string
	total, n   int64
	tty, show  bool
	lastPct    int64
	started    time.Time
	lastUpdate time.Time
	sent       time.Time
}

func newProgress(w io.Writer, name string, total int64) *progress {
	tty := isTerminal(w)
	return &progress{w: w, name: name, total: total, tty: tty, show: tty || total > 1<<20, lastPct: -1, started: time.Now()}
}

// set records that n bytes of the module were sent.
func (p *progress) set(n int64) {
	p.n = n
	if p.n >= p.total {
		p.sent = time.Now()
	}
	if !p.show || p.total == 0 {
		return
	}
	pct := p.n * 100 / p.total
	if p.tty {
		if time.Since(p.lastUpdate) < 100*time.Millisecond && p.n < p.total {
			return
		}
		p.lastUpdate = time.Now()
		fmt.Fprintf(p.w, "\ruploading %s: %s / %s (%d%%)", p.name, humanSize(p.n), humanSize(p.total), pct)
		return
	}
	if q := pct / 25 * 25; q > p.lastPct {
		p.lastPct = q
		fmt.Fprintf(p.w, "uploading %s: %s / %s (%d%%)\n", p.name, humanSize(p.n), humanSize(p.total), q)
	}
}

func (p *progress) done(ok bool) {
	if !p.show {
		return
	}
	if p.tty {
		fmt.Fprintln(p.w)
	}
	if ok {
		fmt.Fprintf(p.w, "uploaded %s in %s; the agent checked, compiled and activated it in %s\n",
			humanSize(p.total), roundDur(p.sent.Sub(p.started)), roundDur(time.Since(p.sent)))
	}
}

func rollbackAction(c *cli.Context) error {
	to := c.Int("to")
	if c.IsSet("to") && to < 1 {
		return usagef("rollback: --to %d: versions start at 1", to)
	}
	var priv ed25519.PrivateKey
	if k := c.String("key"); k != "" {
		var err error
		if priv, err = readPrivateKey(k); err != nil {
			return usagef("rollback: --key: %v", err)
		}
	}
	r, err := connect(c)
	if err != nil {
		return err
	}
	name := c.Args().First()
	var statement []byte
	signed := ""
	if priv != nil && edgefn.ValidName(name) {
		if to, statement, err = signRollback(c, r, name, to, priv); err != nil {
			return fmt.Errorf("rollback %s: %w", name, err)
		}
		signed = ", signed"
	}
	meta, err := r.Rollback(c.Context, name, to, statement)
	if err != nil {
		return fmt.Errorf("rollback %s: %w", name, err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, meta)
	}
	fmt.Fprintf(c.App.Writer, "%s: version %d active (sha256 %s%s)\n", meta.Name, meta.Version, meta.Hash, signed)
	return nil
}

func rmAction(c *cli.Context) error {
	r, err := connect(c)
	if err != nil {
		return err
	}
	out, err := r.Remove(c.Context, c.Args().First())
	if err != nil {
		return fmt.Errorf("rm %s: %w", c.Args().First(), err)
	}
	if c.Bool("json") {
		return printJSON(c.App.Writer, out)
	}
	fmt.Fprintf(c.App.Writer, "removed %s\n", c.Args().First())
	return nil
}

func keygenAction(c *cli.Context) error {
	path := argOr(c, "edgefn-deploy.key")
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("keygen: %s exists: keeping it (choose another KEYFILE, or delete it first)", path)
		}
		return fmt.Errorf("keygen: %w", err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("keygen: write %s: %w", path, err)
	}
	pubB64 := base64.StdEncoding.EncodeToString(pub)
	if err := os.WriteFile(path+".pub", []byte(pubB64+"\n"), 0o644); err != nil {
		return fmt.Errorf("keygen: %w", err)
	}
	w := c.App.Writer
	fmt.Fprintf(w, "private key: %s (mode 0600: keep it secret)\n", path)
	fmt.Fprintf(w, "public key:  %s.pub\n%s\n", path, pubB64)
	fmt.Fprintf(w, "trust it on the agent (config file):\n  admin:\n    trusted_keys: [%q]\n", pubB64)
	fmt.Fprintf(w, "deploy with: edgefn deploy --key %s (and edgefn rollback --key %s)\n", path, path)
	return nil
}

// readPrivateKey reads a key written by keygen.
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: not a PEM private key (make one with edgefn keygen)", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %v", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: a %T, want an ed25519 key (edgefn keygen)", path, k)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: readable by others (mode %v): chmod 600 it", path, fi.Mode().Perm())
	}
	return priv, nil
}

// signKeyFlag is --key, the private key that signs what a command sends.
func signKeyFlag() cli.Flag {
	return &cli.StringFlag{Name: "key", Usage: "sign with this ed25519 private key file (from edgefn keygen)"}
}
