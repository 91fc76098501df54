package sandbox

// The disk cache. wazero's compilation cache stores one file per compiled
// module under CacheDir/wazero-<version>-<arch>-<os>/, named by a key wazero
// derives from the module and the CPU; it never deletes anything. To clean up
// after removed versions, the sandbox keeps an index beside it:
// CacheDir/edgefn-index/<sha256 of the compiled bytes> lists the cache files
// that compiling those bytes added (compiles are serialized, so the files that
// appear during one compile are its own). Prune deletes every cache file that
// no kept function's index entry names, and the index entries of the others.
// A cache file whose index entry was lost is deleted by the next Prune and
// recompiled on next use: a slower start, never a wrong one.

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/tetratelabs/wazero"
)

const indexDir = "edgefn-index"

// cacheFiles lists the regular files of every wazero-* directory under the
// cache dir, as paths relative to it.
func (r *Runtime) cacheFiles() (map[string]struct{}, error) {
	out := map[string]struct{}{}
	dirs, err := filepath.Glob(filepath.Join(r.cfg.CacheDir, "wazero-*"))
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.Type().IsRegular() {
				out[filepath.Join(filepath.Base(d), e.Name())] = struct{}{}
			}
		}
	}
	return out, nil
}

// compile compiles bin, recording in the index which cache files it added.
func (r *Runtime) compile(ctx context.Context, bin []byte, hash string) (wazero.CompiledModule, error) {
	r.compileMu.Lock()
	defer r.compileMu.Unlock()
	if r.cfg.CacheDir == "" {
		return r.rt.CompileModule(ctx, bin)
	}
	before, err := r.cacheFiles()
	if err != nil {
		r.log.Warn("sandbox: list compilation cache", "err", err)
	}
	cm, err := r.rt.CompileModule(ctx, bin)
	if err != nil {
		return nil, err
	}
	after, err := r.cacheFiles()
	if err != nil {
		r.log.Warn("sandbox: list compilation cache", "err", err)
		return cm, nil
	}
	var added []string
	for p := range after {
		if _, ok := before[p]; !ok {
			added = append(added, p)
		}
	}
	if len(added) == 0 {
		return cm, nil // a cache hit: the index entry was written by the compile that missed
	}
	idx := filepath.Join(r.cfg.CacheDir, indexDir)
	if err := os.MkdirAll(idx, 0o700); err != nil {
		r.log.Warn("sandbox: cache index", "err", err)
		return cm, nil
	}
	// Append: the same bytes compiled under a new wazero version add a file.
	f, err := os.OpenFile(filepath.Join(idx, hash), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err == nil {
		_, err = f.WriteString(strings.Join(added, "\n") + "\n")
		err = errors.Join(err, f.Close())
	}
	if err != nil {
		r.log.Warn("sandbox: cache index", "err", err)
	}
	return cm, nil
}

// Prune deletes the disk cache entries (compiled code and load cache) of
// every module except those of keep (typically the function versions still
// deployed, after closing the removed ones) and returns how many files of
// compiled code it removed. Call it after every
// version to keep has been loaded: an entry of a version not in keep is
// deleted and that version will compile again when next loaded. Without a
// CacheDir it does nothing.
func (r *Runtime) Prune(keep ...*Function) (removed int, err error) {
	if r.cfg.CacheDir == "" {
		return 0, nil
	}
	r.compileMu.Lock()
	defer r.compileMu.Unlock()
	keepHash := map[string]bool{}
	for _, f := range keep {
		keepHash[f.hash] = true
	}
	idx := filepath.Join(r.cfg.CacheDir, indexDir)
	keepFile := map[string]bool{}
	ents, err := os.ReadDir(idx)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("sandbox: prune: %w", err)
	}
	var errs []error
	for _, e := range ents {
		p := filepath.Join(idx, e.Name())
		if !keepHash[e.Name()] {
			if err := os.Remove(p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			if l != "" {
				keepFile[l] = true
			}
		}
	}
	// Load cache entries (prepare.go) of modules not kept, and temporary
	// files left by a crash while writing one.
	ldir := filepath.Join(r.cfg.CacheDir, loadDir)
	lents, err := os.ReadDir(ldir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range lents {
		p := filepath.Join(ldir, e.Name())
		if !strings.Contains(e.Name(), ".tmp") {
			if h, err := preparedHash(p); err == nil && keepHash[h] {
				continue
			}
		}
		if err := os.Remove(p); err != nil {
			errs = append(errs, err)
		}
	}
	files, err := r.cacheFiles()
	if err != nil {
		return 0, fmt.Errorf("sandbox: prune: %w", err)
	}
	for p := range files {
		if keepFile[p] {
			continue
		}
		if err := os.Remove(filepath.Join(r.cfg.CacheDir, p)); err != nil {
			errs = append(errs, err)
			continue
		}
		removed++
	}
	if err := errors.Join(errs...); err != nil {
		return removed, fmt.Errorf("sandbox: prune: %w", err)
	}
	return removed, nil
}
