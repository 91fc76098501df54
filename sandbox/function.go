package sandbox

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox/internal/wasmbin"
	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"
	"github.com/tetratelabs/wazero/sys"
)

// Result is the outcome of one invocation. Effects are in call order and
// are nil when the invocation failed; Logs are kept either way.
type Result struct {
	// Err is nil on success, else a *edgefn.Failure (check with errors.As).
	Err         error
	Effects     []edgefn.Effect
	Logs        []edgefn.LogLine
	LogsDropped int
	// Duration is the time the guest ran, including a cold start.
	Duration time.Duration
	// MemoryBytes is the instance's linear memory size at the end of the
	// invocation, which is its peak (memory never shrinks).
	MemoryBytes uint64
	// Cold reports a new instance was made for this invocation.
	Cold bool
	// Reload is the time spent reloading the function's compiled code from
	// the disk cache before the invocation (zero when it was in memory):
	// code idle past limits.keep_warm is unloaded. It is not part of
	// Duration, and the deadline starts after it.
	Reload time.Duration
	// ExitCode is edgefn_handle's return value for a reactor, the exit code
	// for a command.
	ExitCode int
}

// Failure returns the result's failure, or nil on success.
func (r *Result) Failure() *edgefn.Failure {
	if r.Err == nil {
		return nil
	}
	var f *edgefn.Failure
	if errors.As(r.Err, &f) {
		return f
	}
	return nil
}

// Stats are a function's counters since it was loaded.
type Stats struct {
	Invocations uint64
	Cold, Warm  uint64
	Failures    map[edgefn.Reason]uint64
	// Alive counts instances alive (busy, idle or spare); Idle the warm
	// ones waiting; Spare the fresh ones made (or being made) ahead of
	// their event.
	Alive, Idle, Spare int
	// CompileTime is how long Load took to compile (or fetch from cache).
	CompileTime time.Duration
	// Loaded says the compiled code is in memory; Unloads and Reloads count
	// how often it was dropped after limits.keep_warm without an event and
	// brought back from the disk cache, LastReload took how long.
	Loaded           bool
	Unloads, Reloads uint64
	LastReload       time.Duration
}

// Function is one loaded function version. Invoke is safe for concurrent
// use; at most Limits.Concurrency invocations (and instances) are alive at
// once, further calls wait.
type Function struct {
	r       *Runtime
	spec    Spec
	shape   Shape
	hasInit bool
	fresh   bool
	hash    string
	// key names the load cache entry the compiled code is reloaded from
	// after an unload; empty: never unloaded (no disk cache).
	key         string
	compileTime time.Duration
	fromCache   bool // Load took the prepared module from the load cache
	sem         chan struct{}
	inflight    sync.WaitGroup
	timeoutMsg  string
	// memPeak is the largest memory an instance ended with: new instances
	// reserve that much capacity up front.
	memPeak atomic.Uint64

	// loadMu serializes reloads of the compiled code.
	loadMu sync.Mutex

	mu sync.Mutex
	// compiled is nil while unloaded (see unload.go).
	compiled wazero.CompiledModule
	idle     []*instance // most recently used last
	alive    int
	// active counts invocations between their admission and settle; peak
	// is the most at once since the last reap (spare.go sizes the spares
	// by it).
	active, peak int
	// spare holds fresh reactor instances made ahead of their event, never
	// run; creating counts those being made.
	spare            []*instance
	creating         int
	refilling        bool
	lastEnd          time.Time // the last invocation ended (or Load)
	closed           bool
	reaper           *time.Timer
	invoked          uint64
	cold             uint64
	failures         map[edgefn.Reason]uint64
	unloads, reloads uint64
	lastReload       time.Duration
}

func newFunction(r *Runtime, spec Spec, shape Shape, hasInit bool, cm wazero.CompiledModule, hash string) *Function {
	return &Function{
		r: r, spec: spec, shape: shape, hasInit: hasInit, compiled: cm, hash: hash,
		fresh:      shape == ShapeCommand || spec.Isolation == edgefn.IsolationFresh,
		lastEnd:    time.Now(),
		sem:        make(chan struct{}, spec.Limits.Concurrency),
		timeoutMsg: fmt.Sprintf("deadline of %s exceeded", spec.Limits.Timeout),
		failures:   map[edgefn.Reason]uint64{},
	}
}

// Shape says whether the function is a reactor or a command.
func (f *Function) Shape() Shape { return f.shape }

// Spec returns the spec the function was loaded with.
func (f *Function) Spec() Spec { return f.spec }

// Hash identifies the compiled module (sha256 of the instrumented bytes).
func (f *Function) Hash() string { return f.hash }

// Stats returns the function's counters.
func (f *Function) Stats() Stats {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Stats{
		Invocations: f.invoked, Cold: f.cold, Warm: f.invoked - f.cold,
		Failures: make(map[edgefn.Reason]uint64, len(f.failures)),
		Alive:    f.alive, Idle: len(f.idle), Spare: len(f.spare) + f.creating, CompileTime: f.compileTime,
		Loaded: f.compiled != nil, Unloads: f.unloads, Reloads: f.reloads, LastReload: f.lastReload,
	}
	for k, v := range f.failures {
		s.Failures[k] = v
	}
	return s
}

// Close stops new invocations, waits for those in flight (bounded by their
// deadlines), closes every instance and frees the compiled module. The disk
// cache entry stays until Runtime.Prune.
func (f *Function) Close(ctx context.Context) error {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return nil
	}
	f.closed = true
	if f.reaper != nil {
		f.reaper.Stop()
		f.reaper = nil
	}
	f.mu.Unlock()
	f.inflight.Wait()
	f.mu.Lock()
	idle := append(f.idle, f.spare...)
	f.idle, f.spare = nil, nil
	f.alive -= len(idle)
	cm := f.compiled
	f.compiled = nil
	f.mu.Unlock()
	for _, inst := range idle {
		inst.close()
	}
	f.r.forget(f)
	if cm == nil {
		return nil
	}
	return cm.Close(ctx)
}

// Invoke runs ev through the function and returns its outcome. It never
// panics on a guest's behaviour: every failure is a *edgefn.Failure in
// Result.Err. If ctx ends while waiting for a free instance the result is a
// timeout; if it is cancelled while the guest runs, the guest is stopped.
func (f *Function) Invoke(ctx context.Context, ev edgefn.Event) *Result {
	// The Result and the event copy live in the invocation: one allocation
	// per warm invocation.
	inv := &invocation{f: f, ev: ev, parent: ctx}
	res := &inv.res
	select {
	case f.sem <- struct{}{}:
	default:
		select {
		case f.sem <- struct{}{}:
		case <-ctx.Done():
			res.Err = &edgefn.Failure{Reason: edgefn.ReasonTimeout, Message: "no free instance before the context ended", Err: ctx.Err()}
			f.settle(res, nil, false, false, time.Time{})
			return res
		}
	}
	defer func() { <-f.sem }()
	// The closed check, the in-flight count and taking an idle instance
	// share one critical section.
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		res.Err = edgefn.Fail(edgefn.ReasonInternal, "function %s v%d is closed", f.spec.Name, f.spec.Version)
		return res
	}
	f.inflight.Add(1)
	f.active++
	f.peak = max(f.peak, f.active)
	var inst *instance
	spare := false
	if !f.fresh {
		if n := len(f.idle); n > 0 {
			inst = f.idle[n-1]
			f.idle[n-1] = nil
			f.idle = f.idle[:n-1]
		}
	} else if n := len(f.spare); n > 0 {
		inst, spare = f.spare[n-1], true
		f.spare[n-1] = nil
		f.spare = f.spare[:n-1]
	}
	unloaded := f.compiled == nil
	f.mu.Unlock()
	defer f.inflight.Done()
	if unloaded && inst == nil {
		if err := f.reload(res); err != nil {
			res.Err = &edgefn.Failure{Reason: edgefn.ReasonInternal, Message: "reload compiled code", Err: err}
			f.settle(res, nil, false, true, time.Now())
			return res
		}
	}

	start := time.Now()
	inv.deadline = start.Add(f.spec.Limits.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(inv.deadline) {
		inv.deadline = d
	}
	keep := false
	if f.shape == ShapeCommand {
		inst = f.runCommand(inv, res)
	} else {
		inst, keep = f.runReactor(inv, res, inst, spare)
	}
	inv.finish(res)
	end := time.Now()
	res.Duration = end.Sub(start)
	f.settle(res, inst, keep, true, end)
	return res
}

// settle counts the invocation and, in the same critical section, returns
// inst to the idle list (keep) or forgets it (closed after unlocking).
// active says the invocation was admitted (counted in f.active).
func (f *Function) settle(res *Result, inst *instance, keep, active bool, now time.Time) {
	var fl *edgefn.Failure
	if res.Err != nil {
		fl = res.Failure()
	}
	f.mu.Lock()
	if active {
		f.active--
		f.lastEnd = now
	}
	f.invoked++
	if res.Cold {
		f.cold++
	}
	if fl != nil {
		f.failures[fl.Reason]++
	}
	if inst != nil {
		if keep && !f.closed {
			inst.lastUsed = now
			f.idle = append(f.idle, inst)
			inst = nil
		} else {
			f.alive--
		}
	}
	f.armReaperLocked()
	// Spares are made after the event's instance is closed, so that the two
	// do not contend (wazero's store lock).
	refill := active && f.claimRefillLocked()
	f.mu.Unlock()
	if inst != nil {
		inst.close()
	}
	if refill {
		go f.refill()
	}
}

// armReaperLocked starts the reaper if something will need reaping: idle
// or spare instances, or compiled code to unload. f.mu must be held.
func (f *Function) armReaperLocked() {
	if f.reaper == nil && !f.closed && (len(f.idle) > 0 || len(f.spare) > 0 || f.unloadable()) {
		f.reaper = time.AfterFunc(f.spec.Limits.KeepWarm, f.reap)
	}
}

// runReactor runs the invocation on inst, or on a new instance when inst is
// nil; spare says inst was made ahead and never ran. It returns the instance
// used (nil if none could be made) and whether it may serve another
// invocation.
func (f *Function) runReactor(inv *invocation, res *Result, inst *instance, spare bool) (*instance, bool) {
	if inst == nil || spare {
		res.Cold = true
		if inst == nil {
			var err error
			inst, err = f.newInstance(f.r.base)
			if err != nil {
				res.Err = &edgefn.Failure{Reason: edgefn.ReasonInternal, Message: "instantiate", Err: err}
				return nil, false
			}
		}
		if f.hasInit {
			inst.inv = inv
			intr, err := inst.call(inst.init, inv, nil)
			if fl := inst.classify(err, intr, false, res); fl != nil || intr {
				res.MemoryBytes = inst.memSize()
				inst.stderr.flush()
				if fl == nil {
					fl = edgefn.Fail(edgefn.ReasonTimeout, "%s", inst.why)
				}
				fl.Message = "_initialize: " + fl.Message
				res.Err = fl
				inst.inv = nil
				return inst, false
			}
		}
	}
	inst.inv = inv
	inst.stack[0] = uint64(len(inv.ev.Payload))
	intr, err := inst.call(inst.handle, inv, inst.stack[:])
	res.MemoryBytes = inst.memSize()
	rc := int32(uint32(inst.stack[0]))
	if err == nil {
		res.ExitCode = int(rc)
	}
	inst.stdout.flush()
	inst.stderr.flush()
	fl := inst.classify(err, intr, err == nil && rc != 0, res)
	if fl == nil && err == nil && rc != 0 {
		fl = edgefn.Fail(edgefn.ReasonExit, "edgefn_handle returned %d%s", rc, inv.stderrNote())
	}
	inst.inv = nil
	if fl != nil {
		res.Err = fl
	}
	return inst, fl == nil && !intr && !f.fresh
}

// reap closes instances idle for KeepWarm or more (scale to zero), drops
// the spares and unloads the compiled code of a function without an event
// for KeepWarm, and re-arms itself for the next of these.
func (f *Function) reap() {
	now := time.Now()
	keep := f.spec.Limits.KeepWarm
	var old []*instance
	var cm wazero.CompiledModule
	canReload := f.canReload()
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	live := f.idle[:0]
	for _, inst := range f.idle {
		if now.Sub(inst.lastUsed) >= keep {
			old = append(old, inst)
		} else {
			live = append(live, inst)
		}
	}
	for i := len(live); i < len(f.idle); i++ {
		f.idle[i] = nil
	}
	f.idle = live
	quiet := f.active == 0 && now.Sub(f.lastEnd) >= keep
	if quiet {
		old = append(old, f.spare...)
		f.spare = nil
		f.peak = 0
	}
	f.alive -= len(old)
	if quiet && f.unloadable() && f.alive == 0 && f.creating == 0 && canReload {
		cm, f.compiled = f.compiled, nil
		f.unloads++
	}
	var next time.Duration
	switch {
	case len(f.idle) > 0:
		next = f.idle[0].lastUsed.Add(keep).Sub(now)
	case len(f.spare) > 0 || f.unloadable():
		next = max(f.lastEnd.Add(keep).Sub(now), keep/8)
	}
	if next > 0 {
		f.reaper = time.AfterFunc(next, f.reap)
	} else {
		f.reaper = nil
	}
	f.mu.Unlock()
	for _, inst := range old {
		inst.close()
	}
	if cm != nil {
		f.unload(cm)
	}
}

// errNotStarted is call's error when the deadline passed before fn could
// start: fn's results were never written.
var errNotStarted = errors.New("deadline passed before the call")

// Instance states, for the race between the end of a call and the timer.
const (
	stIdle int32 = iota
	stRunning
	stInterrupting
	stInterrupted
)

type instKey struct{}

// instance is one instantiated module with its control globals.
type instance struct {
	f            *Function
	mod          api.Module
	handle, init api.Function // looked up once per instance
	// The globals added by instrumentation (nil if absent).
	stop, depth, growFailed api.MutableGlobal
	ctx                     context.Context
	mem                     *linearMemory
	inv                     *invocation
	stack                   [1]uint64
	state                   atomic.Int32
	why                     string
	lastUsed                time.Time
	stdout, stderr          guestWriter

	// The deadline timer is armed lazily: a call re-arms it only when it is
	// not armed or armed for later than the call's deadline, and nothing
	// stops it when the call ends. When it fires it interrupts the running
	// call if that call's deadline has passed, re-arms itself for a later
	// deadline, and otherwise disarms. A warm call thus costs no timer
	// operation while calls keep coming. tmu guards timerAt and cur, and
	// makes "is cur running past its deadline? then interrupt" atomic with
	// the start of the next call.
	tmu     sync.Mutex
	timer   *time.Timer
	timerAt time.Time   // when the timer fires; zero: not armed
	cur     *invocation // of the latest call
}

// newInstance instantiates the compiled module without running anything.
func (f *Function) newInstance(cfg wazero.ModuleConfig) (*instance, error) {
	f.mu.Lock()
	cm := f.compiled
	if cm == nil {
		f.mu.Unlock()
		return nil, errUnloaded
	}
	f.alive++
	f.mu.Unlock()
	return f.instantiate(cm, cfg)
}

// instantiate instantiates cm for an instance already counted in f.alive
// (uncounted again if it fails).
func (f *Function) instantiate(cm wazero.CompiledModule, cfg wazero.ModuleConfig) (*instance, error) {
	inst := &instance{f: f}
	inst.ctx = context.WithValue(context.Background(), instKey{}, inst)
	inst.stdout = guestWriter{inst: inst, stdout: true}
	inst.stderr = guestWriter{inst: inst}
	cfg = cfg.WithNanosleep(inst.nanosleep).WithStderr(&inst.stderr)
	if f.shape == ShapeReactor {
		cfg = cfg.WithStdout(&inst.stdout)
	}
	mod, err := f.r.rt.InstantiateModule(experimental.WithMemoryAllocator(inst.ctx, inst), cm, cfg)
	if err != nil {
		f.mu.Lock()
		f.alive--
		f.mu.Unlock()
		return nil, err
	}
	inst.mod = mod
	inst.handle = mod.ExportedFunction(exportHandle)
	if f.hasInit {
		inst.init = mod.ExportedFunction(exportInit)
	}
	inst.stop, _ = mod.ExportedGlobal(wasmbin.GlobalStop).(api.MutableGlobal)
	inst.depth, _ = mod.ExportedGlobal(wasmbin.GlobalDepth).(api.MutableGlobal)
	inst.growFailed, _ = mod.ExportedGlobal(wasmbin.GlobalGrowFailed).(api.MutableGlobal)
	if inst.mem != nil {
		inst.mem.tables = mod.ExportedGlobal(wasmbin.GlobalTableElems)
	}
	inst.timer = time.AfterFunc(time.Hour, inst.onDeadline)
	inst.timer.Stop()
	return inst, nil
}

// Allocate implements experimental.MemoryAllocator: the instance's memory
// comes from the runtime's pool and is capped at the function's limit.
func (inst *instance) Allocate(capBytes, maxBytes uint64) experimental.LinearMemory {
	limit := uint64(inst.f.spec.Limits.Memory)
	if maxBytes < limit {
		limit = maxBytes
	}
	// Start at the size earlier instances ended with, so a guest that
	// always grows its memory the same way (a Go runtime starting up) does
	// not copy it at every doubling.
	if peak := inst.f.memPeak.Load(); capBytes < peak {
		capBytes = peak
	}
	if capBytes > limit {
		capBytes = limit
	}
	inst.mem = &linearMemory{pool: inst.f.r.mem, limit: limit, buf: inst.f.r.mem.get(0, capBytes)}
	return inst.mem
}

func (inst *instance) memSize() uint64 {
	if m := inst.mod.Memory(); m != nil {
		return uint64(m.Size())
	}
	return 0
}

// nanosleep bounds WASI sleeps (poll_oneoff on a clock) by the deadline, so a
// sleeping guest reaches its next stop check in time.
func (inst *instance) nanosleep(ns int64) {
	d := time.Duration(ns)
	if inv := inst.inv; inv != nil {
		if rem := time.Until(inv.deadline); rem < d {
			d = rem
		}
	}
	if d > 0 {
		time.Sleep(d)
	}
}

// onDeadline runs when the timer fires: see instance.tmu.
func (inst *instance) onDeadline() {
	inst.tmu.Lock()
	defer inst.tmu.Unlock()
	inst.timerAt = time.Time{}
	if inst.state.Load() != stRunning {
		return
	}
	if rem := time.Until(inst.cur.deadline); rem > 0 {
		inst.timer.Reset(rem)
		inst.timerAt = inst.cur.deadline
		return
	}
	inst.interrupt(inst.f.timeoutMsg)
}

// interrupt raises the stop flag of a running call; the guest traps at its
// next check (a function entry or a loop header).
func (inst *instance) interrupt(why string) {
	if !inst.state.CompareAndSwap(stRunning, stInterrupting) {
		return
	}
	inst.why = why
	if inst.stop != nil {
		inst.stop.Set(1)
	}
	inst.state.Store(stInterrupted)
}

// call runs fn under the invocation's deadline. interrupted reports that the
// stop flag was raised (the instance must then be discarded).
func (inst *instance) call(fn api.Function, inv *invocation, stack []uint64) (interrupted bool, err error) {
	if inst.depth != nil {
		inst.depth.Set(uint64(inst.f.spec.Limits.MaxDepth))
	}
	rem := time.Until(inv.deadline)
	if rem <= 0 {
		inst.why = inst.f.timeoutMsg
		return true, errNotStarted
	}
	inst.tmu.Lock()
	inst.cur = inv
	inst.state.Store(stRunning)
	if inst.timerAt.IsZero() || inst.timerAt.After(inv.deadline) {
		inst.timer.Reset(rem)
		inst.timerAt = inv.deadline
	}
	inst.tmu.Unlock()
	var stopAfter func() bool
	if inv.parent.Done() != nil {
		stopAfter = context.AfterFunc(inv.parent, func() {
			inst.tmu.Lock()
			defer inst.tmu.Unlock()
			if inst.cur == inv { // not a later call of this instance
				inst.interrupt("cancelled: " + context.Cause(inv.parent).Error())
			}
		})
	}
	err = fn.CallWithStack(inst.ctx, stack)
	if stopAfter != nil {
		stopAfter()
	}
	if inst.state.CompareAndSwap(stRunning, stIdle) {
		return false, err
	}
	for inst.state.Load() != stInterrupted {
		runtime.Gosched()
	}
	return true, err
}

// memFailed reports whether a memory.grow failed during this call.
func (inst *instance) memFailed() bool {
	return (inst.mem != nil && inst.mem.growFailed) || (inst.growFailed != nil && inst.growFailed.Get() != 0)
}

// classify turns a call's error into a failure (nil: no failure from the
// call itself). failedRC reports a non-zero return, for which a failed
// memory.grow is the likelier cause.
func (inst *instance) classify(err error, interrupted, failedRC bool, res *Result) *edgefn.Failure {
	inv := inst.inv
	if interrupted {
		if err == nil {
			return nil // finished just as the deadline hit; the instance is discarded
		}
		return &edgefn.Failure{Reason: edgefn.ReasonTimeout, Message: inst.why}
	}
	if (err != nil || failedRC) && inst.memFailed() {
		what := "memory.grow"
		if inst.growFailed != nil && inst.growFailed.Get() == 2 {
			what = "table.grow"
		}
		return &edgefn.Failure{Reason: edgefn.ReasonMemory,
			Message: fmt.Sprintf("%s failed at the cap of %s%s%s", what, human(inst.f.spec.Limits.Memory), inst.mem.tableNote(), inv.stderrNote()), Err: err}
	}
	if inv != nil && inv.overLimit != "" {
		return &edgefn.Failure{Reason: edgefn.ReasonOutputLimit, Message: inv.overLimit}
	}
	if err == nil {
		return nil
	}
	var ht *hostTrap
	if errors.As(err, &ht) {
		return &edgefn.Failure{Reason: edgefn.ReasonTrap, Message: ht.msg}
	}
	var ee *sys.ExitError
	if errors.As(err, &ee) {
		res.ExitCode = int(ee.ExitCode())
		if ee.ExitCode() == 0 && inst.f.shape == ShapeCommand {
			return nil
		}
		return &edgefn.Failure{Reason: edgefn.ReasonExit,
			Message: fmt.Sprintf("exit code %d%s", ee.ExitCode(), inv.stderrNote())}
	}
	if inst.depth != nil && inst.depth.Get() == 0 {
		return &edgefn.Failure{Reason: edgefn.ReasonTrap,
			Message: fmt.Sprintf("call depth exceeded (limits.max_depth %d)", inst.f.spec.Limits.MaxDepth), Err: err}
	}
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	msg = strings.TrimPrefix(msg, "wasm error: ")
	return &edgefn.Failure{Reason: edgefn.ReasonTrap, Message: msg + inv.stderrNote(), Err: err}
}

func (inst *instance) close() {
	if inst.mem != nil {
		n := uint64(len(inst.mem.buf))
		for {
			old := inst.f.memPeak.Load()
			if n <= old || inst.f.memPeak.CompareAndSwap(old, n) {
				break
			}
		}
	}
	inst.timer.Stop()
	_ = inst.mod.Close(context.Background())
}
