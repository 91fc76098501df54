package sandbox

// The load cache. Before wazero compiles a module, Load validates it against
// ABI v1, rewrites it (wasmbin: instrumentation, memory cap, merged data
// segments) and instantiates it once to check its imports. For a 1.9 MB Go
// module that is several hundred milliseconds, so with a CacheDir the
// result is kept in CacheDir/edgefn-load/<key>, one file per key:
//
//	edgefn-load-2 <shape> <has _initialize: 0|1> <sha256 of the module>\n
//	<the rewritten module>
//
// The key is the sha256 of the input module's sha256, the rewrite options,
// limits.memory (validation reads it), the runtime's Bounds, a fingerprint of the host modules
// (the trial instantiation depends on them) and loadFormat. An entry is
// written only after the trial instantiation passed, so a hit skips
// validation, the rewrite and the trial. A torn or corrupted entry fails the
// checksum and is a miss: the module is prepared again and the entry
// rewritten. Entries are written to a temporary file and renamed into place.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
)

const (
	// loadFormat names the entry layout and the validation rules; change it
	// when either changes, so older entries are not trusted.
	loadFormat = "edgefn-load-2"
	loadDir    = "edgefn-load"
)

// prepared is a module validated and rewritten for one function's limits.
type prepared struct {
	bin     []byte
	hash    string // hex sha256 of bin
	shape   Shape
	hasInit bool
	key     string // load cache key; empty without a CacheDir
	cached  bool   // read from the load cache: it passed the trial instantiation before
}

// rewriteOptions are the wasmbin options Load applies for limits l (New
// serves the yield import, see yield.go).
func rewriteOptions(l edgefn.Limits) wasmbin.Options {
	return wasmbin.Options{
		Instrument:     true,
		Yield:          true,
		CheckInterval:  checkInterval,
		InitialDepth:   uint32(l.MaxDepth),
		TrackGrow:      true,
		MaxMemoryPages: uint32(l.Memory / pageSize),
		MergeData:      true,
		StripDebug:     true,
		MemoryBudget:   uint64(l.Memory),
	}
}

// prepare validates and rewrites wasm for spec, or takes the result from the
// load cache. Its errors are Load's (malformed module, ABI violations,
// instrumentation).
func (r *Runtime) prepare(ctx context.Context, spec Spec, wasm []byte) (*prepared, error) {
	opts := rewriteOptions(spec.Limits)
	key := ""
	if r.cfg.CacheDir != "" {
		key = r.loadKey(ctx, wasm, spec.Limits, opts)
		if p := r.readPrepared(key); p != nil {
			return p, nil
		}
	}
	info, err := wasmbin.InspectWithin(wasm, r.cfg.Bounds.wasmbin())
	var be *wasmbin.BoundError
	if errors.As(err, &be) {
		return nil, &BoundError{What: be.What, Count: be.Count, Max: be.Max}
	}
	if err != nil {
		return nil, fmt.Errorf("malformed module: %w", err)
	}
	shape, hasInit, err := validate(info, spec.Limits)
	if err != nil {
		return nil, err
	}
	bin, err := wasmbin.Rewrite(wasm, opts)
	if err != nil {
		return nil, fmt.Errorf("instrument: %w", err)
	}
	sum := sha256.Sum256(bin)
	return &prepared{bin: bin, hash: hex.EncodeToString(sum[:]), shape: shape, hasInit: hasInit, key: key}, nil
}

// loadKey names the load cache entry of wasm prepared with opts.
func (r *Runtime) loadKey(ctx context.Context, wasm []byte, l edgefn.Limits, opts wasmbin.Options) string {
	in := sha256.Sum256(wasm)
	h := sha256.New()
	fmt.Fprintf(h, "%s\x00%x\x00%+v\x00%d\x00%+v\x00", loadFormat, in, opts, l.Memory, r.cfg.Bounds)
	r.hostFingerprint(ctx, h)
	return hex.EncodeToString(h.Sum(nil))
}

// hostFingerprint writes the signature of every function of the host
// modules a guest may import, so a change to them invalidates the entries
// whose trial instantiation they decided.
func (r *Runtime) hostFingerprint(_ context.Context, w io.Writer) {
	for _, name := range []string{moduleEdgefn, moduleWASI, "env", wasmbin.YieldModule} {
		m := r.rt.Module(name)
		if m == nil {
			fmt.Fprintf(w, "%s:none\x00", name)
			continue
		}
		defs := m.ExportedFunctionDefinitions()
		names := make([]string, 0, len(defs))
		for n := range defs {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			d := defs[n]
			fmt.Fprintf(w, "%s.%s%v%v\x00", name, n, d.ParamTypes(), d.ResultTypes())
		}
	}
}

// readPrepared returns the entry for key, or nil if there is none or it is
// damaged.
func (r *Runtime) readPrepared(key string) *prepared {
	b, err := os.ReadFile(filepath.Join(r.cfg.CacheDir, loadDir, key))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			r.log.Warn("sandbox: load cache", "err", err)
		}
		return nil
	}
	p, err := parsePrepared(b)
	if err != nil {
		r.log.Warn("sandbox: load cache entry ignored", "key", key, "err", err)
		return nil
	}
	p.key = key
	return p
}

func parsePrepared(b []byte) (*prepared, error) {
	nl := bytes.IndexByte(b, '\n')
	if nl < 0 {
		return nil, errors.New("no header")
	}
	f := strings.Fields(string(b[:nl]))
	if len(f) != 4 || f[0] != loadFormat {
		return nil, fmt.Errorf("header %q: want %s <shape> <init> <sha256>", b[:nl], loadFormat)
	}
	shape, err := strconv.Atoi(f[1])
	if err != nil || (Shape(shape) != ShapeReactor && Shape(shape) != ShapeCommand) {
		return nil, fmt.Errorf("header: shape %q", f[1])
	}
	if f[2] != "0" && f[2] != "1" {
		return nil, fmt.Errorf("header: init %q", f[2])
	}
	bin := b[nl+1:]
	sum := sha256.Sum256(bin)
	if hex.EncodeToString(sum[:]) != f[3] {
		return nil, errors.New("checksum mismatch (torn or corrupted entry)")
	}
	return &prepared{bin: bin, hash: f[3], shape: Shape(shape), hasInit: f[2] == "1", cached: true}, nil
}

// writePrepared stores p under its key; failures are logged, never fatal.
func (r *Runtime) writePrepared(p *prepared) {
	dir := filepath.Join(r.cfg.CacheDir, loadDir)
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		err = writeAtomic(dir, p.key, func(w io.Writer) error {
			init := 0
			if p.hasInit {
				init = 1
			}
			if _, err := fmt.Fprintf(w, "%s %d %d %s\n", loadFormat, p.shape, init, p.hash); err != nil {
				return err
			}
			_, err := w.Write(p.bin)
			return err
		})
	}
	if err != nil {
		r.log.Warn("sandbox: load cache", "err", err)
	}
}

// writeAtomic writes dir/name through a temporary file renamed into place.
func writeAtomic(dir, name string, write func(io.Writer) error) error {
	f, err := os.CreateTemp(dir, name+".tmp*")
	if err != nil {
		return err
	}
	err = write(f)
	err = errors.Join(err, f.Close())
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		_ = os.Remove(f.Name())
	}
	return err
}

// preparedHash reads the module hash from the header of the entry at path.
func preparedHash(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	head := make([]byte, 256)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
		return "", err
	}
	head = head[:n]
	if nl := bytes.IndexByte(head, '\n'); nl >= 0 {
		if fs := strings.Fields(string(head[:nl])); len(fs) == 4 {
			return fs[3], nil
		}
	}
	return "", errors.New("no header")
}
