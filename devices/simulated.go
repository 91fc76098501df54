package devices

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"periph.io/x/conn/v3/gpio"
	"periph.io/x/conn/v3/gpio/gpiotest"
)

// edgeQueue is how many injected edges a simulated pin holds for a watcher
// that has not consumed them yet; Inject fails with ErrOverrun past it.
const edgeQueue = 1024

// simChip is the simulated backend: a fixed set of simPins.
type simChip struct {
	byName map[string]*simPin // upper-case name -> pin
	order  []string
}

func newSimChip(names []string) (*simChip, error) {
	if len(names) == 0 {
		for i := range DefaultSimulatedPins {
			names = append(names, fmt.Sprintf("GPIO%d", i))
		}
	}
	c := &simChip{byName: map[string]*simPin{}}
	var errs []error
	for i, n := range names {
		if strings.TrimSpace(n) == "" || strings.ContainsAny(n, " \t\n") {
			errs = append(errs, fmt.Errorf("gpio simulated pins[%d]: %q is not a pin name", i, n))
			continue
		}
		k := strings.ToUpper(n)
		if _, dup := c.byName[k]; dup {
			errs = append(errs, fmt.Errorf("gpio simulated pins[%d]: %q listed twice", i, n))
			continue
		}
		c.byName[k] = newSimPin(n, i)
		c.order = append(c.order, n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

func (c *simChip) lookup(name string) (gpio.PinIO, string, bool) {
	p, ok := c.byName[strings.ToUpper(name)]
	if !ok {
		return nil, "", false
	}
	return p, p.N, true
}

func (c *simChip) names() []string { return slices.Clone(c.order) }

func (c *simChip) wireLevel(name string) bool {
	p := c.byName[strings.ToUpper(name)]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.wire
}

// simPin is a gpiotest.Pin with the two things a kernel driver adds and
// gpiotest lacks: edge detection that honours the configured edge (the
// fake reports every level sent on EdgesChan), and a Halt that wakes
// WaitForEdge. Levels still live in the gpiotest.Pin (L, read by Read and
// set by Out), and edges still travel on its EdgesChan.
type simPin struct {
	*gpiotest.Pin
	halt chan struct{}

	mu     sync.Mutex // guards the fields below; taken before Pin's mutex
	dir    Mode       // ModeInput (with edge) or ModeOutput, ModeUnused
	edge   gpio.Edge
	wire   bool // level of the simulated wire, after every injected change
	driven bool // Inject has set the wire: pulls no longer change it
}

var _ gpio.PinIO = (*simPin)(nil)

func newSimPin(name string, num int) *simPin {
	return &simPin{
		Pin:  &gpiotest.Pin{N: name, Num: num, EdgesChan: make(chan gpio.Level, edgeQueue)},
		halt: make(chan struct{}, 1),
	}
}

// In records the edge to detect, then lets gpiotest set the pull (which
// sets the level) and flush queued edges.
func (p *simPin) In(pull gpio.Pull, edge gpio.Edge) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err := p.Pin.In(pull, edge); err != nil {
		return err
	}
	select {
	case <-p.halt:
	default:
	}
	p.dir, p.edge = ModeInput, edge
	if p.driven || pull == gpio.PullNoChange {
		// A pull is weak: it sets the level of a floating wire only. The
		// flushed edges were the wire's history; keep its last level.
		_ = p.Pin.Out(gpio.Level(p.wire))
	}
	p.wire = bool(p.Pin.Read())
	return nil
}

// Out drives the pin.
func (p *simPin) Out(l gpio.Level) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dir, p.edge, p.wire = ModeOutput, gpio.NoEdge, bool(l)
	return p.Pin.Out(l)
}

// Halt wakes a WaitForEdge in progress.
func (p *simPin) Halt() error {
	select {
	case p.halt <- struct{}{}:
	default:
	}
	return nil
}

// WaitForEdge consumes queued level changes as gpiotest does, but returns
// true only for a change that matches the configured edge; the others
// update the level silently, as a kernel with edge detection would.
func (p *simPin) WaitForEdge(timeout time.Duration) bool {
	var expired <-chan time.Time
	if timeout >= 0 {
		t := time.NewTimer(timeout)
		defer t.Stop()
		expired = t.C
	}
	for {
		select {
		case l := <-p.EdgesChan:
			p.mu.Lock()
			edge := p.edge
			p.mu.Unlock()
			prev := p.Pin.Read()
			_ = p.Pin.Out(l) // gpiotest's Out only sets L
			if prev != l && (edge == gpio.BothEdges || (edge == gpio.RisingEdge && bool(l)) || (edge == gpio.FallingEdge && !bool(l))) {
				return true
			}
		case <-expired:
			return false
		case <-p.halt:
			return false
		}
	}
}

// inject sets the wire level; a change on an input with edge detection is
// queued for its watcher, otherwise the level changes at once.
func (p *simPin) inject(high bool) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.dir == ModeOutput {
		return fmt.Errorf("%w: it is an output driven by the agent", ErrBusy)
	}
	p.driven = true
	if p.wire == high {
		return nil
	}
	if p.dir == ModeInput && p.edge != gpio.NoEdge {
		select {
		case p.EdgesChan <- gpio.Level(high):
		default:
			return ErrOverrun
		}
	} else if err := p.Pin.Out(gpio.Level(high)); err != nil {
		return err
	}
	p.wire = high
	return nil
}

// Inject sets the level of the simulated wire on input pin name. A change
// is an edge for a watcher of that pin (subject to its edge and debounce);
// setting the level it already has does nothing. Errors: ErrNotSimulated,
// ErrUnknownPin, ErrBusy when the agent drives the pin as an output,
// ErrOverrun when 1024 edges wait for a watcher, ErrClosed.
func (g *GPIO) Inject(name string, high bool) error {
	p, err := g.simPin("inject", name)
	if err != nil {
		return err
	}
	if err := p.inject(high); err != nil {
		return g.pinErr("inject", name, err)
	}
	return nil
}

// Pulse drives the simulated wire on pin name to the opposite of its
// current level, holds it for width, and drives it back: two edges, the
// first a rising one on a low (pulled-down) pin and a falling one on a
// high (pulled-up) pin. It returns once the pin is back, or early with
// ErrClosed if the GPIO closes meanwhile (the level is restored first).
// Other errors are Inject's.
func (g *GPIO) Pulse(name string, width time.Duration) error {
	p, err := g.simPin("pulse", name)
	if err != nil {
		return err
	}
	p.mu.Lock()
	idle := p.wire
	p.mu.Unlock()
	if err := p.inject(!idle); err != nil {
		return g.pinErr("pulse", name, err)
	}
	var closed error
	if width > 0 {
		t := time.NewTimer(width)
		select {
		case <-t.C:
		case <-g.done.Done():
			t.Stop()
			closed = g.pinErr("pulse", name, ErrClosed)
		}
	}
	if err := p.inject(idle); err != nil {
		return g.pinErr("pulse", name, err)
	}
	return closed
}

func (g *GPIO) simPin(op, name string) (*simPin, error) {
	if g.sim == nil {
		return nil, g.pinErr(op, name, ErrNotSimulated)
	}
	if g.done.Err() != nil {
		return nil, g.pinErr(op, name, ErrClosed)
	}
	p, ok := g.sim.byName[strings.ToUpper(name)]
	if !ok {
		return nil, g.pinErr(op, name, ErrUnknownPin)
	}
	return p, nil
}
