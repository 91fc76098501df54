package sandbox

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// KV is the per-function durable key-value store as the sandbox reads it.
// Writes are not made here: they are returned as effects. The gateway
// satisfies it with the outbox.
type KV interface {
	// Get returns the committed value of key for function; ok is false when
	// there is none. ctx carries the invocation's deadline.
	Get(ctx context.Context, function, key string) (value []byte, ok bool, err error)
}

// GPIO reads pins for gpio_read and says which pins exist. Writes are
// returned as effects.
type GPIO interface {
	// Read returns the level of pin. ctx carries the invocation's deadline.
	Read(ctx context.Context, pin string) (high bool, err error)
	// Has reports whether the device has pin.
	Has(pin string) bool
}

// Config configures a Runtime.
type Config struct {
	// CacheDir holds compiled code across restarts (one subdirectory per
	// wazero version, plus an index used by Prune). Empty: no disk cache.
	CacheDir string
	// Logger receives the runtime's own messages (not the functions' logs,
	// which are returned in each Result). Nil: discarded.
	Logger *slog.Logger
	// KV backs kv_get; nil makes kv_get return -5 (not available).
	KV KV
	// GPIO backs gpio_read and says which pins exist for gpio_write; nil
	// makes both return -5.
	GPIO GPIO
	// MaxCopy bounds any single copy out of guest memory (a record, a
	// message, a kv value, a log line). Zero: 1 MiB.
	MaxCopy edgefn.Size
	// MaxMemory is the agent-wide ceiling on any function's memory limit, and
	// wazero's global memory limit. Zero: 1 GiB.
	MaxMemory edgefn.Size
	// MemoryPool bounds the bytes of freed guest memory kept for reuse by
	// new instances. Zero: 32 MiB; negative: no pooling.
	MemoryPool edgefn.Size
	// Bounds are the most a module may declare; Load refuses a module over
	// one before compiling it. Zero fields take DefaultBounds'.
	Bounds Bounds
	// CompileTimeout bounds compiling one module (wazero's compiler stops
	// between two functions). Zero: DefaultCompileTimeout.
	CompileTimeout time.Duration
}

// Bounds are the most a module may declare. They keep what a module costs
// before it runs (parsing, compiling, instantiating) within what a small
// device can spare, whatever its limits.memory.
type Bounds struct {
	// Functions bounds the defined functions and CodeBytes the size of their
	// code: compile time and memory grow with both.
	Functions int
	CodeBytes edgefn.Size
	// Tables, Globals, ElementSegments, DataSegments, Types, Imports and
	// Exports bound the entries of those sections; Elements the references
	// of every element segment together.
	Tables, Globals, ElementSegments, DataSegments int
	Elements, Types, Imports, Exports              int
}

// DefaultBounds are generous for every toolchain edgefn supports: a Go
// wasip1 reactor declares about 2,000 functions, 2 MiB of code, 1 table, 8
// globals, 1 element segment of 2,000 references and 37,000 data segments.
var DefaultBounds = Bounds{
	Functions:       20_000,
	CodeBytes:       16 * edgefn.MiB,
	Tables:          8,
	Globals:         10_000,
	ElementSegments: 1_000,
	DataSegments:    100_000,
	Elements:        100_000,
	Types:           10_000,
	Imports:         1_000,
	Exports:         10_000,
}

// DefaultCompileTimeout is Config.CompileTimeout's default.
const DefaultCompileTimeout = time.Minute

// Defaults for Config fields left zero.
const (
	DefaultMaxCopy    = 1 * edgefn.MiB
	DefaultMaxMemory  = 1 * edgefn.GiB
	DefaultMemoryPool = 32 * edgefn.MiB
)

// Runtime is the one wazero runtime of an agent: it compiles function
// versions (with the disk cache) and owns the host modules they import.
// It is safe for concurrent use.
type Runtime struct {
	cfg   Config
	log   *slog.Logger
	rt    wazero.Runtime
	cache wazero.CompilationCache
	mem   *memPool
	// base is the module config every instance starts from.
	base wazero.ModuleConfig

	compileMu sync.Mutex // serializes compiles so the cache index can see which files each adds

	mu        sync.Mutex
	loaded    map[*Function]struct{}
	closed    bool
	releasing bool // a FreeOSMemory after unloads is scheduled (unload.go)
}

// New starts the agent's wazero runtime and instantiates the host modules
// (edgefn, wasi_snapshot_preview1 and env.abort for AssemblyScript). It fails
// if the cache directory cannot be created.
func New(ctx context.Context, cfg Config) (*Runtime, error) {
	if cfg.MaxCopy <= 0 {
		cfg.MaxCopy = DefaultMaxCopy
	}
	if cfg.MaxMemory <= 0 {
		cfg.MaxMemory = DefaultMaxMemory
	}
	if cfg.MaxMemory > 4*edgefn.GiB {
		cfg.MaxMemory = 4 * edgefn.GiB
	}
	if cfg.MemoryPool == 0 {
		cfg.MemoryPool = DefaultMemoryPool
	}
	cfg.Bounds = cfg.Bounds.withDefaults()
	if cfg.CompileTimeout <= 0 {
		cfg.CompileTimeout = DefaultCompileTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Runtime{cfg: cfg, log: log, loaded: map[*Function]struct{}{}}
	if cfg.MemoryPool > 0 {
		r.mem = newMemPool(int(cfg.MemoryPool), int(cfg.MemoryPool/2))
	} else {
		r.mem = newMemPool(0, 0)
	}
	rc := wazero.NewRuntimeConfig().
		WithCloseOnContextDone(false). // deadlines are enforced by instrumentation
		WithMemoryLimitPages(uint32(cfg.MaxMemory / pageSize))
	if cfg.CacheDir != "" {
		c, err := wazero.NewCompilationCacheWithDir(cfg.CacheDir)
		if err != nil {
			return nil, fmt.Errorf("sandbox: compilation cache %s: %w", cfg.CacheDir, err)
		}
		r.cache = c
		rc = rc.WithCompilationCache(c)
	}
	r.rt = wazero.NewRuntimeWithConfig(ctx, rc)
	if err := r.instantiateHost(ctx); err != nil {
		_ = r.rt.Close(ctx)
		if r.cache != nil {
			_ = r.cache.Close(ctx)
		}
		return nil, err
	}
	r.base = wazero.NewModuleConfig().
		WithName("").
		WithStartFunctions().
		WithRandSource(rand.Reader).
		WithSysWalltime().
		WithSysNanotime()
	return r, nil
}

const pageSize = 64 * edgefn.KiB

func (b Bounds) withDefaults() Bounds {
	d := DefaultBounds
	for _, f := range []struct{ v, def *int }{
		{&b.Functions, &d.Functions}, {&b.Tables, &d.Tables}, {&b.Globals, &d.Globals},
		{&b.ElementSegments, &d.ElementSegments}, {&b.DataSegments, &d.DataSegments},
		{&b.Elements, &d.Elements}, {&b.Types, &d.Types}, {&b.Imports, &d.Imports}, {&b.Exports, &d.Exports},
	} {
		if *f.v <= 0 {
			*f.v = *f.def
		}
	}
	if b.CodeBytes <= 0 {
		b.CodeBytes = d.CodeBytes
	}
	return b
}

func (b Bounds) wasmbin() wasmbin.Bounds {
	return wasmbin.Bounds{Functions: b.Functions, CodeBytes: int(b.CodeBytes), Tables: b.Tables,
		Globals: b.Globals, ElementSegments: b.ElementSegments, DataSegments: b.DataSegments,
		Elements: b.Elements, Types: b.Types, Imports: b.Imports, Exports: b.Exports}
}

func (r *Runtime) instantiateHost(ctx context.Context) error {
	if _, err := wasi_snapshot_preview1.Instantiate(ctx, r.rt); err != nil {
		return fmt.Errorf("sandbox: instantiate wasi_snapshot_preview1: %w", err)
	}
	b := r.rt.NewHostModuleBuilder(moduleEdgefn)
	for _, h := range r.hostFuncs() {
		b.NewFunctionBuilder().
			WithGoModuleFunction(h.fn, h.params, h.results).
			WithParameterNames(h.names...).
			Export(h.name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		return fmt.Errorf("sandbox: instantiate host module %q: %w", moduleEdgefn, err)
	}
	i32 := api.ValueTypeI32
	_, err := r.rt.NewHostModuleBuilder("env").
		NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(r.abort), []api.ValueType{i32, i32, i32, i32}, nil).
		WithParameterNames("message", "file", "line", "column").
		Export("abort").
		Instantiate(ctx)
	if err != nil {
		return fmt.Errorf("sandbox: instantiate host module env: %w", err)
	}
	return r.instantiateYield(ctx)
}

// Close closes every function still loaded and the wazero runtime. Compiled
// code stays in the disk cache.
func (r *Runtime) Close(ctx context.Context) error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	fs := make([]*Function, 0, len(r.loaded))
	for f := range r.loaded {
		fs = append(fs, f)
	}
	r.mu.Unlock()
	var errs []error
	for _, f := range fs {
		errs = append(errs, f.Close(ctx))
	}
	errs = append(errs, r.rt.Close(ctx))
	if r.cache != nil {
		errs = append(errs, r.cache.Close(ctx))
	}
	return errors.Join(errs...)
}

func (r *Runtime) forget(f *Function) {
	r.mu.Lock()
	delete(r.loaded, f)
	r.mu.Unlock()
}
