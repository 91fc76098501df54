package devices

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"

	"github.com/edgefn/edgefn"
)

// The GPIO backends Open knows.
const (
	// BackendPeriph drives the host's real pins through periph.io/x/host.
	BackendPeriph = "periph"
	// BackendSimulated is a chip of fake pins whose inputs are driven with
	// Inject and Pulse.
	BackendSimulated = "simulated"
	// BackendNone has no pins: every pin is unknown.
	BackendNone = "none"
)

// backends lists the valid Config.Backend values.
var backends = []string{BackendPeriph, BackendSimulated, BackendNone}

// Errors wrapped in a *PinError; test with errors.Is.
var (
	// ErrUnknownPin: the backend has no pin of that name.
	ErrUnknownPin = errors.New("no such pin")
	// ErrBusy: the pin is in use in a way that excludes the operation (a
	// watched input cannot be written, an output cannot be watched, a pin
	// is watched once at a time).
	ErrBusy = errors.New("pin busy")
	// ErrClosed: the GPIO was closed.
	ErrClosed = errors.New("gpio closed")
	// ErrNotSimulated: Inject and Pulse need the simulated backend.
	ErrNotSimulated = errors.New("not a simulated chip")
	// ErrOverrun: a simulated pin's edge queue is full because its watcher
	// does not keep up.
	ErrOverrun = errors.New("edge queue full")
)

// PinError is an operation on one pin that failed.
type PinError struct {
	Op      string // "read", "write", "watch", "inject", "pulse"
	Pin     string
	Backend string
	Err     error
}

func (e *PinError) Error() string {
	return fmt.Sprintf("gpio %s %q (backend %s): %v", e.Op, e.Pin, e.Backend, e.Err)
}

// Unwrap returns the cause.
func (e *PinError) Unwrap() error { return e.Err }

// DefaultSimulatedPins is the simulated chip's pin count when Config.Pins
// is empty: GPIO0 through GPIO27, as on a Raspberry Pi header.
const DefaultSimulatedPins = 28

// Config selects and configures a backend.
type Config struct {
	// Backend is periph, simulated or none; empty means none.
	Backend string
	// Pins names the simulated chip's pins (default GPIO0..GPIO27). Only
	// for the simulated backend.
	Pins []string
	// Logger receives warnings and debug messages; nil discards them.
	Logger *slog.Logger
	// Now is the clock for edge times and debounce; nil means time.Now.
	Now func() time.Time
}

// Mode is how a pin is being used.
type Mode string

// Pin modes.
const (
	ModeUnused  Mode = ""
	ModeInput   Mode = "input"   // read, not watched
	ModeWatched Mode = "watched" // an input with edge detection
	ModeOutput  Mode = "output"
)

// PinState is one pin's name, mode and level, for status displays.
type PinState struct {
	Name string `json:"name"`
	Mode Mode   `json:"mode,omitempty"`
	// High is the last written level of an output, the read level of an
	// input, and false for an unused pin of the periph backend (reading
	// would reconfigure it).
	High bool `json:"high"`
}

// chip is where the gpio.PinIO values come from: the only part that
// differs between backends.
type chip interface {
	// lookup returns the pin called name and its canonical name.
	lookup(name string) (gpio.PinIO, string, bool)
	// names lists every pin's canonical name.
	names() []string
}

// pollEvery bounds how long a watcher waits in WaitForEdge before checking
// its context; Halt usually wakes it sooner.
const pollEvery = 100 * time.Millisecond

// GPIO is a set of pins on one backend. Its methods are safe for
// concurrent use. Create it with Open; Close releases the pins.
type GPIO struct {
	backend string
	chip    chip
	sim     *simChip // nil unless simulated
	log     *slog.Logger
	now     func() time.Time

	done     context.Context // ends at Close: its Err says the GPIO is closed
	closeNow context.CancelFunc
	watchers sync.WaitGroup

	mu   sync.Mutex
	pins map[string]*pinUse // canonical name -> use, for pins touched
}

type pinUse struct {
	io    gpio.PinIO
	mode  Mode
	level bool // last written, for outputs
}

// Open returns the GPIO of cfg.Backend. It fails for an unknown backend,
// for a simulated chip with duplicate or empty pin names, and for periph
// when the host drivers fail to load or find no GPIO pin.
func Open(cfg Config) (*GPIO, error) {
	g := &GPIO{backend: cfg.Backend, log: cfg.Logger, now: cfg.Now, pins: map[string]*pinUse{}}
	if g.backend == "" {
		g.backend = BackendNone
	}
	if g.log == nil {
		g.log = slog.New(slog.DiscardHandler)
	}
	if g.now == nil {
		g.now = time.Now
	}
	if len(cfg.Pins) > 0 && g.backend != BackendSimulated {
		return nil, fmt.Errorf("gpio: pins are only configurable for the simulated backend, not %q", g.backend)
	}
	switch g.backend {
	case BackendNone:
		g.chip = noChip{}
	case BackendSimulated:
		sc, err := newSimChip(cfg.Pins)
		if err != nil {
			return nil, err
		}
		g.chip, g.sim = sc, sc
	case BackendPeriph:
		pc, err := openPeriph()
		if err != nil {
			return nil, err
		}
		g.chip = pc
	default:
		return nil, fmt.Errorf("gpio: unknown backend %q: use %s", cfg.Backend, strings.Join(backends, ", "))
	}
	g.done, g.closeNow = context.WithCancel(context.Background())
	return g, nil
}

// Backend returns the backend's name.
func (g *GPIO) Backend() string { return g.backend }

// Has reports whether the backend has a pin called name (case-insensitive
// for the simulated chip; periph also accepts its aliases).
func (g *GPIO) Has(name string) bool {
	_, _, ok := g.chip.lookup(name)
	return ok
}

// Names lists the backend's pins.
func (g *GPIO) Names() []string { return g.chip.names() }

// use returns the pin called name, registered in g.pins, or a *PinError.
// g.mu must be held.
func (g *GPIO) use(op, name string) (*pinUse, string, error) {
	if g.done.Err() != nil {
		return nil, "", g.pinErr(op, name, ErrClosed)
	}
	io, canon, ok := g.chip.lookup(name)
	if !ok {
		return nil, "", g.pinErr(op, name, ErrUnknownPin)
	}
	u := g.pins[canon]
	if u == nil {
		u = &pinUse{io: io}
		g.pins[canon] = u
	}
	return u, canon, nil
}

func (g *GPIO) pinErr(op, name string, err error) *PinError {
	return &PinError{Op: op, Pin: name, Backend: g.backend, Err: err}
}

// Read returns the level of pin name: the last written level of an
// output, else the input's level. Reading an unused pin makes it an input
// without changing its pull. Errors: ErrUnknownPin, ErrClosed, ctx's.
func (g *GPIO) Read(ctx context.Context, name string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	u, _, err := g.use("read", name)
	if err != nil {
		return false, err
	}
	switch u.mode {
	case ModeOutput:
		// Some drivers (gpioioctl) turn an output into an input on Read.
		return u.level, nil
	case ModeUnused:
		if err := u.io.In(gpio.PullNoChange, gpio.NoEdge); err != nil {
			return false, g.pinErr("read", name, err)
		}
		u.mode = ModeInput
	}
	return bool(u.io.Read()), nil
}

// Write drives pin name high or low, making it an output. Errors:
// ErrUnknownPin, ErrBusy when the pin is watched for edges, ErrClosed,
// the driver's.
func (g *GPIO) Write(name string, high bool) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	u, _, err := g.use("write", name)
	if err != nil {
		return err
	}
	if u.mode == ModeWatched {
		return g.pinErr("write", name, fmt.Errorf("%w: watched for edges, cannot drive it", ErrBusy))
	}
	if err := u.io.Out(gpio.Level(high)); err != nil {
		return g.pinErr("write", name, err)
	}
	u.mode, u.level = ModeOutput, high
	return nil
}

// Pins lists every pin of the backend with its mode and level.
func (g *GPIO) Pins() []PinState {
	names := g.chip.names()
	out := make([]PinState, 0, len(names))
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, n := range names {
		st := PinState{Name: n}
		if u := g.pins[n]; u != nil {
			st.Mode = u.mode
			switch u.mode {
			case ModeOutput:
				st.High = u.level
			case ModeInput, ModeWatched:
				st.High = bool(u.io.Read())
			}
		}
		if st.Mode == ModeUnused && g.sim != nil {
			st.High = g.sim.wireLevel(n)
		}
		out = append(out, st)
	}
	return out
}

func toEdge(e edgefn.Edge) (gpio.Edge, error) {
	switch e {
	case edgefn.EdgeRising:
		return gpio.RisingEdge, nil
	case edgefn.EdgeFalling:
		return gpio.FallingEdge, nil
	case edgefn.EdgeBoth, "":
		return gpio.BothEdges, nil
	}
	return gpio.NoEdge, fmt.Errorf("unknown edge %q: use rising, falling or both", e)
}

func toPull(p edgefn.Pull) (gpio.Pull, error) {
	switch p {
	case edgefn.PullUp:
		return gpio.PullUp, nil
	case edgefn.PullDown:
		return gpio.PullDown, nil
	case edgefn.PullNone:
		return gpio.Float, nil
	case "":
		return gpio.PullNoChange, nil
	}
	return gpio.PullNoChange, fmt.Errorf("unknown pull %q: use up, down or none", p)
}

// Watch configures pin name as an input with pull and reports its edges
// to fn until ctx ends (then it returns nil) or the GPIO is closed (then
// ErrClosed). fn receives each accepted edge: rising or falling, the level
// the pin went to, and when the watcher saw it. edge selects rising,
// falling or both (empty means both); pull is up, down, none, or empty to
// leave the pin's pull as it is. Edge detection is the driver's, so on
// hardware the kernel filters. For a rising or falling watch fn gets that
// edge and the level it implies; for both, the edge is derived from the
// level read right after the edge.
//
// Debounce is a lockout: an accepted edge starts a window of debounce
// during which further edges are ignored, so the first edge of a bounce
// burst is reported at once and the rest dropped. fn runs on the watcher's
// goroutine; a slow fn delays later edges (the driver queues them). When
// Watch returns the pin is an input without edge detection.
//
// Errors before watching: ErrUnknownPin, ErrBusy (the pin is an output or
// already watched), ErrClosed, an invalid edge, pull or debounce, the
// driver's.
func (g *GPIO) Watch(ctx context.Context, name string, edge edgefn.Edge, pull edgefn.Pull, debounce time.Duration, fn func(edge edgefn.Edge, high bool, at time.Time)) error {
	ge, err := toEdge(edge)
	if err != nil {
		return g.pinErr("watch", name, err)
	}
	gp, err := toPull(pull)
	if err != nil {
		return g.pinErr("watch", name, err)
	}
	if debounce < 0 {
		return g.pinErr("watch", name, fmt.Errorf("negative debounce %s", debounce))
	}
	g.mu.Lock()
	u, _, err := g.use("watch", name)
	if err == nil {
		switch u.mode {
		case ModeOutput:
			err = g.pinErr("watch", name, fmt.Errorf("%w: it is an output", ErrBusy))
		case ModeWatched:
			err = g.pinErr("watch", name, fmt.Errorf("%w: already watched", ErrBusy))
		}
	}
	if err == nil {
		if ierr := u.io.In(gp, ge); ierr != nil {
			err = g.pinErr("watch", name, ierr)
		}
	}
	if err != nil {
		g.mu.Unlock()
		return err
	}
	u.mode = ModeWatched
	g.watchers.Add(1)
	g.mu.Unlock()
	defer g.watchers.Done()
	defer func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if u.mode == ModeWatched {
			u.mode = ModeInput
			// Stop edge detection so edges do not pile up unwatched.
			if err := u.io.In(gpio.PullNoChange, gpio.NoEdge); err != nil {
				g.log.Warn("gpio unwatch", "pin", name, "err", err)
			}
		}
	}()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stopClose := context.AfterFunc(g.done, cancel)
	defer stopClose()
	stopHalt := context.AfterFunc(ctx, func() { _ = u.io.Halt() })
	defer stopHalt()

	g.log.Debug("gpio watch", "pin", name, "edge", edge, "pull", pull, "debounce", debounce)
	var last time.Time
	accepted := false
	for ctx.Err() == nil {
		if !u.io.WaitForEdge(pollEvery) {
			continue
		}
		at := g.now()
		var e edgefn.Edge
		var high bool
		switch ge {
		case gpio.RisingEdge:
			e, high = edgefn.EdgeRising, true
		case gpio.FallingEdge:
			e, high = edgefn.EdgeFalling, false
		default:
			high = bool(u.io.Read())
			e = edgefn.EdgeFalling
			if high {
				e = edgefn.EdgeRising
			}
		}
		if accepted && debounce > 0 && at.Sub(last) < debounce {
			continue
		}
		accepted, last = true, at
		fn(e, high, at)
	}
	if g.done.Err() != nil {
		return g.pinErr("watch", name, ErrClosed)
	}
	return nil
}

// Close stops every watcher, waits for them to return and halts the pins
// it used. Later calls return nil; other methods then fail with ErrClosed.
func (g *GPIO) Close() error {
	g.mu.Lock()
	already := g.done.Err() != nil
	g.closeNow() // under g.mu: a Watch not yet counted in g.watchers now fails with ErrClosed
	g.mu.Unlock()
	if already {
		return nil
	}
	g.watchers.Wait()
	g.mu.Lock()
	defer g.mu.Unlock()
	var errs []error
	names := make([]string, 0, len(g.pins))
	for n := range g.pins {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := g.pins[n].io.Halt(); err != nil {
			errs = append(errs, fmt.Errorf("gpio close %q: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

// noChip is the none backend.
type noChip struct{}

func (noChip) lookup(string) (gpio.PinIO, string, bool) { return nil, "", false }
func (noChip) names() []string                          { return nil }
