package gateway

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/manifest"
)

// registry keeps deployed function versions on disk so they survive a
// restart:
//
//	<data>/functions/<name>/<version>/function.yaml
//	<data>/functions/<name>/<version>/module.wasm
//	<data>/functions/<name>/<version>/meta.json
//	<data>/functions/<name>/active        (the active version number)
//
// A version directory is written under a temporary name and renamed into
// place, and the active pointer is replaced with a rename, so a crash never
// leaves a half-written version active.
//
// With admin.trusted_keys set, the last signed statement accepted for each
// function is kept apart, so that removing a function does not forget how
// far its sequence went:
//
//	<data>/activations/<name>.json
type registry struct {
	dir    string
	actDir string
}

// versionMeta describes one stored version.
type versionMeta struct {
	Name     string    `json:"name"`
	Version  int       `json:"version"`
	Hash     string    `json:"hash"` // sha256 of manifest + module
	Deployed time.Time `json:"deployed"`
	// Signer is the base64 public key that signed the deploy, if any.
	Signer string `json:"signer,omitempty"`
	// Origin is "api" or the manifest path it was loaded from.
	Origin string `json:"origin,omitempty"`
}

// storedVersion is a version read back from disk.
type storedVersion struct {
	Meta     versionMeta
	Manifest []byte
	Wasm     []byte
}

func newRegistry(dataDir string) (*registry, error) {
	dir, err := filepath.Abs(filepath.Join(dataDir, "functions"))
	if err != nil {
		return nil, fmt.Errorf("function registry: %w", err)
	}
	actDir := filepath.Join(filepath.Dir(dir), "activations")
	for _, d := range []string{dir, actDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, fmt.Errorf("function registry: %w", err)
		}
	}
	return &registry{dir: dir, actDir: actDir}, nil
}

// NameError says a function name is not one edgefn.ValidName accepts; the
// admin API answers it with 400.
type NameError struct{ Name string }

func (e *NameError) Error() string {
	n := e.Name
	if len(n) > 64 {
		n = n[:64] + "..."
	}
	return fmt.Sprintf("function name %q: invalid: a name is a lower-case letter, then up to 62 lower-case letters, digits, '-' or '_'", n)
}

// checkName returns a *NameError unless name is a valid function name.
func checkName(name string) error {
	if !edgefn.ValidName(name) {
		return &NameError{Name: name}
	}
	return nil
}

// fnDir is the directory of a function. Every path the registry touches
// goes through it: the name must be valid and, in depth, the joined path
// must be a direct child of the registry's directory.
func (r *registry) fnDir(name string) (string, error) {
	if err := checkName(name); err != nil {
		return "", err
	}
	p := filepath.Join(r.dir, name)
	if filepath.Dir(p) != r.dir || filepath.Base(p) != name {
		return "", &NameError{Name: name}
	}
	return p, nil
}

// contentHash identifies a deploy's content.
func contentHash(manifest, wasm []byte) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n", len(manifest))
	h.Write(manifest)
	h.Write(wasm)
	return hex.EncodeToString(h.Sum(nil))
}

// versions lists a function's stored versions, oldest first.
func (r *registry) versions(name string) ([]int, error) {
	fdir, err := r.fnDir(name)
	if err != nil {
		return nil, err
	}
	ents, err := os.ReadDir(fdir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var vs []int
	for _, e := range ents {
		if v, err := strconv.Atoi(e.Name()); err == nil && e.IsDir() {
			vs = append(vs, v)
		}
	}
	sort.Ints(vs)
	return vs, nil
}

// store writes a new version and returns its number. It does not activate
// it.
func (r *registry) store(name string, manifest, wasm []byte, meta versionMeta) (versionMeta, error) {
	vs, err := r.versions(name)
	if err != nil {
		return meta, err
	}
	next := 1
	if len(vs) > 0 {
		next = vs[len(vs)-1] + 1
	}
	meta.Name, meta.Version = name, next
	meta.Hash = contentHash(manifest, wasm)
	if meta.Deployed.IsZero() {
		meta.Deployed = time.Now().UTC()
	}
	fdir, err := r.fnDir(name)
	if err != nil {
		return meta, err
	}
	if err := os.MkdirAll(fdir, 0o700); err != nil {
		return meta, err
	}
	tmp, err := os.MkdirTemp(fdir, ".tmp-")
	if err != nil {
		return meta, err
	}
	defer os.RemoveAll(tmp)
	mj, _ := json.MarshalIndent(meta, "", "  ")
	for f, b := range map[string][]byte{"function.yaml": manifest, "module.wasm": wasm, "meta.json": mj} {
		if err := writeFileSync(filepath.Join(tmp, f), b); err != nil {
			return meta, err
		}
	}
	if err := os.Rename(tmp, filepath.Join(fdir, strconv.Itoa(next))); err != nil {
		return meta, err
	}
	return meta, syncDir(fdir)
}

// meta reads the metadata of one stored version.
func (r *registry) meta(name string, version int) (versionMeta, error) {
	var m versionMeta
	fdir, err := r.fnDir(name)
	if err != nil {
		return m, err
	}
	p := filepath.Join(fdir, strconv.Itoa(version), "meta.json")
	mj, err := os.ReadFile(p)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(mj, &m); err != nil {
		return m, fmt.Errorf("%s: %w", p, err)
	}
	return m, nil
}

// load reads one stored version.
func (r *registry) load(name string, version int) (*storedVersion, error) {
	fdir, err := r.fnDir(name)
	if err != nil {
		return nil, err
	}
	vdir := filepath.Join(fdir, strconv.Itoa(version))
	sv := &storedVersion{}
	if sv.Meta, err = r.meta(name, version); err != nil {
		return nil, err
	}
	if sv.Manifest, err = os.ReadFile(filepath.Join(vdir, "function.yaml")); err != nil {
		return nil, err
	}
	if sv.Wasm, err = os.ReadFile(filepath.Join(vdir, "module.wasm")); err != nil {
		return nil, err
	}
	if h := contentHash(sv.Manifest, sv.Wasm); h != sv.Meta.Hash {
		return nil, fmt.Errorf("%s: content does not match its hash (disk corruption?)", vdir)
	}
	return sv, nil
}

// active returns the active version of a function, 0 if none.
func (r *registry) active(name string) (int, error) {
	fdir, err := r.fnDir(name)
	if err != nil {
		return 0, err
	}
	b, err := os.ReadFile(filepath.Join(fdir, "active"))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(string(b)))
}

// activate makes version the active one.
func (r *registry) activate(name string, version int) error {
	fdir, err := r.fnDir(name)
	if err != nil {
		return err
	}
	tmp := filepath.Join(fdir, ".active.tmp")
	if err := writeFileSync(tmp, []byte(strconv.Itoa(version)+"\n")); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(fdir, "active")); err != nil {
		return err
	}
	return syncDir(fdir)
}

// remove deletes a function and all its versions.
func (r *registry) remove(name string) error {
	fdir, err := r.fnDir(name)
	if err != nil {
		return err
	}
	return os.RemoveAll(fdir)
}

// prune keeps the newest keep versions (and the active one), deleting the
// rest; it returns the deleted version numbers.
func (r *registry) prune(name string, keep int) ([]int, error) {
	vs, err := r.versions(name)
	if err != nil || len(vs) <= keep {
		return nil, err
	}
	act, err := r.active(name)
	if err != nil {
		return nil, err
	}
	fdir, err := r.fnDir(name)
	if err != nil {
		return nil, err
	}
	var gone []int
	for _, v := range vs[:len(vs)-keep] {
		if v == act {
			continue
		}
		if err := os.RemoveAll(filepath.Join(fdir, strconv.Itoa(v))); err != nil {
			return gone, err
		}
		gone = append(gone, v)
	}
	return gone, nil
}

// names lists functions that have an active version.
func (r *registry) names() ([]string, error) {
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if !e.IsDir() || !edgefn.ValidName(e.Name()) {
			continue
		}
		if v, err := r.active(e.Name()); err == nil && v > 0 {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// lastActivation returns the last signed statement accepted for a
// function, nil if there is none.
func (r *registry) lastActivation(name string) (*activation.Signed, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(r.actDir, name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var sg activation.Signed
	if err := json.Unmarshal(b, &sg); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(r.actDir, name+".json"), err)
	}
	return &sg, nil
}

// recordActivation durably replaces a function's last accepted statement
// (write, fsync, rename, fsync the directory): once it returns, a restart
// refuses every statement that is not newer.
func (r *registry) recordActivation(name string, sg activation.Signed) error {
	if err := checkName(name); err != nil {
		return err
	}
	b, err := json.MarshalIndent(sg, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.actDir, "."+name+".tmp")
	if err := writeFileSync(tmp, b); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(r.actDir, name+".json")); err != nil {
		return err
	}
	return syncDir(r.actDir)
}

func writeFileSync(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// manifestFiles finds the manifests of a functions directory: *.yaml files
// in it and function.yaml files one level down (an examples/ tree).
func manifestFiles(dir string) ([]string, error) {
	var out []string
	for _, pat := range []string{"*.yaml", "*.yml", "*/function.yaml", "*/function.yml"} {
		m, err := filepath.Glob(filepath.Join(dir, pat))
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	sort.Strings(out)
	return out, nil
}

// readManifestFile reads a manifest and its module from disk, resolving a
// relative wasm path next to the manifest.
func readManifestFile(path string) (*edgefn.Manifest, []byte, []byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, nil, nil, err
	}
	m, err := manifest.Parse(path, data)
	if err != nil {
		return nil, nil, nil, err
	}
	wp := m.Wasm
	if !filepath.IsAbs(wp) {
		wp = filepath.Join(filepath.Dir(path), wp)
	}
	wasm, err := os.ReadFile(wp)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%s: wasm: %w", path, err)
	}
	return m, data, wasm, nil
}
