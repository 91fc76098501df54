package sandbox

// Unloading idle compiled code. A function without an event for
// limits.keep_warm has no instance left (the reaper closed them); its
// compiled code (13 MiB of machine code for a Go guest) and wazero's decoded
// module are then dropped too, and brought back from the disk caches at the
// next event: the load cache holds the validated, rewritten module and
// wazero's compilation cache its machine code, so the reload skips
// validation, instrumentation and compilation (tens of milliseconds for a Go
// guest, well under one for a small module; docs/performance.md). Only a
// function with a load cache entry on disk is unloaded: without a CacheDir
// nothing is.

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/experimental"
)

// errUnloaded is newInstance's error when the compiled code is unloaded
// (Invoke reloads it first, so it is not seen outside the package).
var errUnloaded = errors.New("compiled code unloaded")

// unloadable reports whether the compiled code is in memory and could be
// reloaded from the disk cache. f.mu must be held.
func (f *Function) unloadable() bool { return f.key != "" && f.compiled != nil }

// canReload reports whether the load cache entry to reload from is on disk.
func (f *Function) canReload() bool {
	if f.key == "" {
		return false
	}
	_, err := os.Stat(filepath.Join(f.r.cfg.CacheDir, loadDir, f.key))
	return err == nil
}

// unload closes the compiled code the reaper took from f.
func (f *Function) unload(cm wazero.CompiledModule) {
	_ = cm.Close(context.Background())
	f.r.log.Debug("sandbox: unloaded idle function", "function", f.spec.Name, "version", f.spec.Version,
		"idle", f.spec.Limits.KeepWarm)
	f.r.releaseSoon()
}

// reload brings the compiled code back from the disk caches, once for
// concurrent callers; it records the time taken in res.Reload.
func (f *Function) reload(res *Result) error {
	f.loadMu.Lock()
	defer f.loadMu.Unlock()
	f.mu.Lock()
	loaded := f.compiled != nil
	f.mu.Unlock()
	if loaded {
		return nil
	}
	start := time.Now()
	p := f.r.readPrepared(f.key)
	if p == nil || p.hash != f.hash {
		return fmt.Errorf("the load cache entry %s is missing or damaged: deploy the function again or restart the agent",
			filepath.Join(f.r.cfg.CacheDir, loadDir, f.key))
	}
	ctx, cancel := context.WithTimeoutCause(context.Background(), f.r.cfg.CompileTimeout, errCompileTimeout)
	cm, err := f.r.compile(experimental.WithCompilationWorkers(ctx, compileWorkers), p.bin, p.hash)
	cancel()
	if err != nil {
		return err
	}
	d := time.Since(start)
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		_ = cm.Close(context.Background())
		return fmt.Errorf("function %s v%d is closed", f.spec.Name, f.spec.Version)
	}
	f.compiled = cm
	f.reloads++
	f.lastReload = d
	f.mu.Unlock()
	res.Reload = d
	f.r.log.Debug("sandbox: reloaded function", "function", f.spec.Name, "version", f.spec.Version, "took", d)
	return nil
}

// releaseSoon returns the memory of unloaded code to the OS shortly after
// (one collection for unloads that come together): a device idles after
// them, when the heap would not be collected for minutes. wazero unmaps the
// machine code from a finalizer, which the collection runs.
func (r *Runtime) releaseSoon() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.releasing || r.closed {
		return
	}
	r.releasing = true
	time.AfterFunc(100*time.Millisecond, func() {
		r.mu.Lock()
		r.releasing = false
		r.mu.Unlock()
		debug.FreeOSMemory()
	})
}
