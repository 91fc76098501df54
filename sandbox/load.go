package sandbox

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero/experimental"
)

// Spec is what the sandbox needs to know about one function version.
type Spec struct {
	Name    string
	Version int
	// Limits must already have the agent's defaults applied
	// (edgefn.Limits.WithDefaults); a zero or negative limit is an error.
	Limits    edgefn.Limits
	Grants    edgefn.Grants
	Env       map[string]string
	Isolation edgefn.Isolation
}

// Shape is the kind of module a function is.
type Shape uint8

// The two module shapes of ABI v1.
const (
	// ShapeReactor exports memory and edgefn_handle(i32) -> i32.
	ShapeReactor Shape = iota + 1
	// ShapeCommand is a WASI preview 1 program exporting _start.
	ShapeCommand
)

func (s Shape) String() string {
	switch s {
	case ShapeReactor:
		return "reactor"
	case ShapeCommand:
		return "command"
	}
	return "unknown"
}

// Names in ABI v1.
const (
	moduleEdgefn = "edgefn"
	moduleWASI   = "wasi_snapshot_preview1"
	exportHandle = "edgefn_handle"
	exportStart  = "_start"
	exportInit   = "_initialize"
	exportMemory = "memory"
)

// compileWorkers is how many goroutines compile one module.
const compileWorkers = 2

// errCompileTimeout is the cause of the context a compile runs under.
var errCompileTimeout = errors.New("compile timeout")

// checkInterval is how many loop iterations instrumented code runs between
// two reads of the stop flag.
const checkInterval = 1024

// Load validates wasm against ABI v1 and spec's limits, instruments it
// (deadline checks, call-depth budget, memory cap, merged data segments),
// compiles it (or takes it from the disk cache) and returns the function
// ready to invoke. A module that is malformed or breaks the ABI gets an
// error naming every problem (missing export, unknown import, memory minimum
// over the cap), joined with errors.Join.
func (r *Runtime) Load(ctx context.Context, spec Spec, wasm []byte) (*Function, error) {
	what := fmt.Sprintf("load %s v%d", spec.Name, spec.Version)
	if err := r.checkSpec(spec); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	p, err := r.prepare(ctx, spec, wasm)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}

	start := time.Now()
	cctx, cancel := context.WithTimeoutCause(ctx, r.cfg.CompileTimeout, errCompileTimeout)
	// wazero's compiler checks the context between two functions only when
	// it compiles with several workers.
	cm, err := r.compile(experimental.WithCompilationWorkers(cctx, compileWorkers), p.bin, p.hash)
	cancel()
	if err != nil {
		if errors.Is(err, errCompileTimeout) {
			err = fmt.Errorf("not done after %s, the agent's compile timeout: the module is too large or complex for this device (%d bytes); split the function or trim the module", r.cfg.CompileTimeout, len(wasm))
		}
		return nil, fmt.Errorf("%s: compile: %w", what, err)
	}
	f := newFunction(r, spec, p.shape, p.hasInit, cm, p.hash)
	f.compileTime = time.Since(start)
	f.fromCache = p.cached
	f.key = p.key

	if !p.cached {
		// Instantiate once without running anything: this resolves every
		// import against the host modules, so a wrong signature is a load
		// error, not a failure of the first event. A load cache entry is
		// only written once this passed.
		mod, err := r.rt.InstantiateModule(ctx, cm, r.base)
		if err != nil {
			_ = cm.Close(ctx)
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		_ = mod.Close(ctx)
		if p.key != "" {
			r.writePrepared(p)
		}
	}

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		_ = cm.Close(ctx)
		return nil, fmt.Errorf("%s: runtime closed", what)
	}
	r.loaded[f] = struct{}{}
	r.mu.Unlock()
	// A function never invoked is unloaded after keep_warm too.
	f.mu.Lock()
	f.armReaperLocked()
	f.mu.Unlock()
	r.log.Debug("sandbox: loaded", "function", spec.Name, "version", spec.Version,
		"shape", p.shape, "compile", f.compileTime, "load_cache", p.cached)
	return f, nil
}

func (r *Runtime) checkSpec(spec Spec) error {
	var errs []error
	l := spec.Limits
	if spec.Name == "" {
		errs = append(errs, errors.New("spec: empty function name"))
	}
	if l.Memory < pageSize {
		errs = append(errs, fmt.Errorf("limits.memory %s: at least 64KiB", l.Memory))
	}
	if l.Memory > r.cfg.MaxMemory {
		errs = append(errs, fmt.Errorf("limits.memory %s: over the agent's maximum %s", l.Memory, r.cfg.MaxMemory))
	}
	// Once the defaults are applied every limit is positive, but for
	// max_publishes, whose 0 means no publishes.
	for _, f := range edgefn.LimitFields {
		switch v := f.Get(l); {
		case f.Key == "memory": // checked above, against a page and the agent's maximum
		case f.Key == "max_publishes" && v < 0:
			errs = append(errs, fmt.Errorf("limits.%s %s: must not be negative", f.Key, f.Format(v)))
		case f.Key != "max_publishes" && v <= 0:
			errs = append(errs, fmt.Errorf("limits.%s %s: must be positive", f.Key, f.Format(v)))
		}
	}
	switch spec.Isolation {
	case "", edgefn.IsolationWarm, edgefn.IsolationFresh:
	default:
		errs = append(errs, fmt.Errorf("isolation %q: use warm or fresh", spec.Isolation))
	}
	return errors.Join(errs...)
}

// isHostImport reports whether name is a function of the edgefn module.
func isHostImport(name string) bool {
	switch name {
	case "input", "meta", "emit", "publish", "log",
		"gpio_write", "gpio_read", "kv_get", "kv_set", "kv_delete":
		return true
	}
	return false
}

// validate checks a module's shape, imports and memory against ABI v1 and
// the limits, returning every problem at once.
func validate(info *wasmbin.Info, l edgefn.Limits) (Shape, bool, error) {
	var errs []error
	exports := map[string]wasmbin.Export{}
	for _, e := range info.Exports {
		exports[e.Name] = e
	}
	for _, im := range info.Imports {
		name := im.Module + "." + im.Name
		switch {
		case im.Module == moduleEdgefn && im.Kind == wasmbin.ExternFunc && isHostImport(im.Name):
		case im.Module == moduleWASI && im.Kind == wasmbin.ExternFunc:
		case im.Module == "env" && im.Name == "abort" && im.Kind == wasmbin.ExternFunc:
		case im.Kind == wasmbin.ExternMemory:
			errs = append(errs, fmt.Errorf("import %s: imported memory is not supported, define and export %q", name, exportMemory))
		case im.Kind != wasmbin.ExternFunc:
			errs = append(errs, fmt.Errorf("import %s: unknown import of a %s (only functions of edgefn, %s and env.abort)", name, im.Kind, moduleWASI))
		default:
			errs = append(errs, fmt.Errorf("unknown import %s (only functions of edgefn, %s and env.abort)", name, moduleWASI))
		}
	}

	i32 := []wasmbin.ValType{wasmbin.I32}
	shape := Shape(0)
	if e, ok := exports[exportHandle]; ok {
		shape = ShapeReactor
		if e.Kind != wasmbin.ExternFunc {
			errs = append(errs, fmt.Errorf("export %s is a %s, want func (payload_len i32) -> i32", exportHandle, e.Kind))
		} else if p, res, _ := info.ExportFuncType(exportHandle); !sameTypes(p, i32) || !sameTypes(res, i32) {
			errs = append(errs, fmt.Errorf("export %s has type %s, want (i32) -> (i32)", exportHandle, sig(p, res)))
		}
		if m, ok := exports[exportMemory]; !ok || m.Kind != wasmbin.ExternMemory {
			errs = append(errs, fmt.Errorf("missing export %q (memory): a reactor must export its memory", exportMemory))
		}
	} else if e, ok := exports[exportStart]; ok {
		shape = ShapeCommand
		if e.Kind != wasmbin.ExternFunc {
			errs = append(errs, fmt.Errorf("export %s is a %s, want func () -> ()", exportStart, e.Kind))
		} else if p, res, _ := info.ExportFuncType(exportStart); len(p) != 0 || len(res) != 0 {
			errs = append(errs, fmt.Errorf("export %s has type %s, want () -> ()", exportStart, sig(p, res)))
		}
	} else {
		errs = append(errs, fmt.Errorf("missing export %q (a reactor: func (i32) -> i32 and memory) or %q (a WASI command)", exportHandle, exportStart))
	}
	if info.HasStart {
		errs = append(errs, errors.New("module has a start section, which would run before any deadline can stop it: export _initialize instead (AssemblyScript: --exportStart _initialize)"))
	}
	hasInit := false
	if e, ok := exports[exportInit]; ok && shape == ShapeReactor {
		hasInit = true
		if e.Kind != wasmbin.ExternFunc {
			errs = append(errs, fmt.Errorf("export %s is a %s, want func () -> ()", exportInit, e.Kind))
		} else if p, res, _ := info.ExportFuncType(exportInit); len(p) != 0 || len(res) != 0 {
			errs = append(errs, fmt.Errorf("export %s has type %s, want () -> ()", exportInit, sig(p, res)))
		}
	}
	var minBytes, tableElems uint64
	if info.HasMemory {
		minBytes = uint64(info.MemoryMin) * uint64(pageSize)
		if minBytes > uint64(l.Memory) {
			errs = append(errs, fmt.Errorf("memory minimum %s over cap %s (limits.memory): raise the limit or shrink the module's initial memory",
				human(edgefn.Size(minBytes)), human(l.Memory)))
		}
	}
	for _, t := range info.Tables {
		tableElems += uint64(t.Min)
	}
	// Table elements count against limits.memory (wasmbin.Options.MemoryBudget).
	if tableBytes := tableElems * wasmbin.TableElemBytes; tableElems > 0 && minBytes+tableBytes > uint64(l.Memory) {
		errs = append(errs, fmt.Errorf("tables need at least %d elements (%s at %d bytes each) which, with the memory minimum %s, is over cap %s (limits.memory): raise the limit or shrink the module's tables",
			tableElems, humanBytes(tableBytes), wasmbin.TableElemBytes, human(edgefn.Size(minBytes)), human(l.Memory)))
	}
	// Sort for a stable message.
	sort.SliceStable(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	return shape, hasInit, errors.Join(errs...)
}

// BoundError is Load's error for a module that declares more of something
// than Config.Bounds allow; it is returned before the module is compiled.
type BoundError struct {
	// What is counted: "functions", "bytes of code", "tables", "globals",
	// "element segments", "element references", "data segments", "types",
	// "imports" or "exports".
	What       string
	Count, Max int
}

func (e *BoundError) Error() string {
	return fmt.Sprintf("module declares %d %s, over the agent's bound of %d: split the function or trim the module", e.Count, e.What, e.Max)
}

// human formats a size for people: "64 MiB".
func human(s edgefn.Size) string {
	t := s.String()
	for _, u := range []string{"GiB", "MiB", "KiB"} {
		if len(t) > len(u) && t[len(t)-len(u):] == u {
			return t[:len(t)-len(u)] + " " + u
		}
	}
	return t[:len(t)-1] + " B"
}

// humanBytes is human for a count that may not fit an edgefn.Size.
func humanBytes(n uint64) string {
	switch {
	case n >= uint64(edgefn.MiB) && n%uint64(edgefn.MiB) != 0:
		return fmt.Sprintf("%.1f MiB", float64(n)/float64(edgefn.MiB))
	case n >= uint64(edgefn.KiB) && n < uint64(edgefn.MiB) && n%uint64(edgefn.KiB) != 0:
		return fmt.Sprintf("%.1f KiB", float64(n)/float64(edgefn.KiB))
	}
	if n > 1<<62 {
		return fmt.Sprintf("%d B", n)
	}
	return human(edgefn.Size(n))
}

func sameTypes(a, b []wasmbin.ValType) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func sig(p, r []wasmbin.ValType) string {
	f := func(ts []wasmbin.ValType) string {
		s := "("
		for i, t := range ts {
			if i > 0 {
				s += ", "
			}
			s += t.String()
		}
		return s + ")"
	}
	return f(p) + " -> " + f(r)
}
