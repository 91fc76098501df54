package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

// Meta keys of GPIO events.
const (
	// MetaEdge is "rising" or "falling".
	MetaEdge = "edge"
	// MetaLevel is the level the pin went to, "1" or "0".
	MetaLevel = "level"
)

// EdgeWatcher watches a pin for edges; devices.GPIO implements it. Watch
// configures pin as an input with pull, calls fn for each edge that
// matches edge and survives debounce, and returns when ctx ends (nil),
// when the chip is closed (devices.ErrClosed: the agent is stopping, not
// a failure) or when it cannot watch (an error naming the pin).
type EdgeWatcher interface {
	Watch(ctx context.Context, pin string, edge edgefn.Edge, pull edgefn.Pull, debounce time.Duration, fn func(edge edgefn.Edge, high bool, at time.Time)) error
}

// GPIOWatch is one watched pin. A pin is watched once; when several
// functions trigger on it the caller merges their edges (rising and
// falling make both) and routes each event by its MetaEdge.
type GPIOWatch struct {
	Pin      string
	Edge     edgefn.Edge // rising, falling or both (empty: both)
	Pull     edgefn.Pull // up, down, none (empty: leave as is)
	Debounce time.Duration
}

// GPIOWatchOf returns the watch of a gpio trigger.
func GPIOWatchOf(t edgefn.Trigger) GPIOWatch {
	return GPIOWatch{Pin: t.GPIO, Edge: t.Edge, Pull: t.Pull, Debounce: t.Debounce}
}

func (w GPIOWatch) validate() error {
	var errs []error
	if w.Pin == "" {
		errs = append(errs, errors.New("gpio watch: empty pin name"))
	}
	switch w.Edge {
	case "", edgefn.EdgeRising, edgefn.EdgeFalling, edgefn.EdgeBoth:
	default:
		errs = append(errs, fmt.Errorf("gpio watch %q: edge %q: use rising, falling or both", w.Pin, w.Edge))
	}
	switch w.Pull {
	case "", edgefn.PullUp, edgefn.PullDown, edgefn.PullNone:
	default:
		errs = append(errs, fmt.Errorf("gpio watch %q: pull %q: use up, down or none", w.Pin, w.Pull))
	}
	if w.Debounce < 0 {
		errs = append(errs, fmt.Errorf("gpio watch %q: debounce %s is negative", w.Pin, w.Debounce))
	}
	return errors.Join(errs...)
}

// gpioQueue is how many edges of one pin wait for delivery; more are
// dropped and counted, as a QoS 0 message would be.
const gpioQueue = 64

// GPIOStats are one watched pin's counters.
type GPIOStats struct {
	Pin string `json:"pin"`
	// Edges counts edges reported by the watcher.
	Edges uint64 `json:"edges"`
	// Dropped counts edges lost because gpioQueue edges already waited
	// for delivery.
	Dropped uint64 `json:"dropped"`
	// Failed counts edges whose Deliver returned an error.
	Failed uint64 `json:"failed"`
	// Err is why the pin is not watched, if it is not.
	Err string `json:"err,omitempty"`
}

// GPIO turns pin edges into events: Source gpio, Subject the pin name,
// Meta edge and level, Payload {"pin","edge","level","time"}. Edges are
// delivered at most once, like QoS 0 messages: a failed Deliver or a full
// queue is counted and logged, never retried. Create it with NewGPIO, give
// it pins with Set and run it with Run; its methods are safe for
// concurrent use.
type GPIO struct {
	watcher EdgeWatcher
	sink    Sink
	log     *slog.Logger
	pins    *keyed[*pinWatch] // by upper-case pin name
}

type pinWatch struct {
	spec GPIOWatch

	edges, dropped, failed atomic.Uint64
	err                    atomic.Pointer[string]
}

// NewGPIO returns a GPIO trigger watching pins of w and delivering to
// sink. log may be nil.
func NewGPIO(w EdgeWatcher, sink Sink, log *slog.Logger) *GPIO {
	log = orDiscard(log)
	g := &GPIO{watcher: w, sink: sink, log: log}
	g.pins = newKeyed("gpio trigger", "gpio watch", log,
		func(running, want *pinWatch) bool { return running.spec == want.spec }, g.start)
	return g
}

// Set replaces the watched pins: new pins are watched, pins no longer
// listed are released, pins whose edge, pull or debounce changed are
// released and watched again (Set waits for the release), unchanged ones
// keep watching. It validates every watch first and returns every problem
// (errors.Join), changing nothing, if one is invalid or a pin is listed
// twice. A pin the watcher rejects (unknown, busy) is reported by Stats
// and logged, not by Set.
func (g *GPIO) Set(watches []GPIOWatch) error {
	want := map[string]*pinWatch{}
	var errs []error
	for _, w := range watches {
		if err := w.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		k := strings.ToUpper(w.Pin)
		if _, dup := want[k]; dup {
			errs = append(errs, fmt.Errorf("gpio watch %q: pin listed twice (merge the triggers into one watch)", w.Pin))
			continue
		}
		want[k] = &pinWatch{spec: w}
	}
	return g.pins.set(want, errs)
}

// Run watches the pins until ctx ends, then releases them, waits for
// deliveries in progress to return and returns nil. Run may be called
// once.
func (g *GPIO) Run(ctx context.Context) error { return g.pins.run(ctx) }

// start runs pw's watcher and delivery goroutines; the pin is released
// when the watcher returns.
func (g *GPIO) start(ctx, runCtx context.Context, pw *pinWatch, run func(func())) <-chan struct{} {
	done := make(chan struct{})
	queue := make(chan edgefn.Event, gpioQueue)
	w := pw.spec
	run(func() {
		defer close(done)
		defer close(queue)
		err := g.watcher.Watch(ctx, w.Pin, w.Edge, w.Pull, w.Debounce, func(e edgefn.Edge, high bool, at time.Time) {
			pw.edges.Add(1)
			select {
			case queue <- gpioEvent(w.Pin, e, high, at):
			default:
				pw.dropped.Add(1)
				g.log.Warn("gpio edge dropped: delivery queue full", "pin", w.Pin, "edge", e)
			}
		})
		switch {
		case err == nil || ctx.Err() != nil:
		case errors.Is(err, devices.ErrClosed):
			// The agent closes the chip when it stops: an end, not a failure.
			g.log.Debug("gpio watch ended: gpio closed", "pin", w.Pin)
		default:
			msg := err.Error()
			pw.err.Store(&msg)
			g.log.Error("gpio watch failed", "pin", w.Pin, "err", err)
		}
	})
	run(func() {
		// Deliver what was queued even after the pin is released: the
		// delivery context is Run's, not the watch's.
		for ev := range queue {
			if runCtx.Err() != nil {
				continue // stopping: drain without delivering
			}
			if err := g.sink.Deliver(runCtx, ev); err != nil && runCtx.Err() == nil {
				pw.failed.Add(1)
				g.log.Warn("gpio edge delivery failed", "pin", w.Pin, "edge", ev.Meta[MetaEdge], "err", err)
			}
		}
	})
	return done
}

type gpioPayload struct {
	Pin   string `json:"pin"`
	Edge  string `json:"edge"`
	Level int    `json:"level"`
	Time  string `json:"time"`
}

// GPIOEvent is the event of an edge of pin to level high at at, as the
// GPIO trigger delivers it (no ID); `edgefn run --pin` uses it.
func GPIOEvent(pin string, e edgefn.Edge, high bool, at time.Time) edgefn.Event {
	return gpioEvent(pin, e, high, at)
}

func gpioEvent(pin string, e edgefn.Edge, high bool, at time.Time) edgefn.Event {
	level := "0"
	p := gpioPayload{Pin: pin, Edge: string(e), Time: at.UTC().Format(time.RFC3339Nano)}
	if high {
		level, p.Level = "1", 1
	}
	payload, _ := json.Marshal(p)
	return edgefn.Event{
		Source:  edgefn.SourceGPIO,
		Subject: pin,
		Time:    at,
		Payload: payload,
		Meta:    map[string]string{MetaEdge: string(e), MetaLevel: level},
	}
}

// Stats returns every watched pin's counters, sorted by pin.
func (g *GPIO) Stats() []GPIOStats {
	out := []GPIOStats{}
	g.pins.each(func(pw *pinWatch) {
		st := GPIOStats{Pin: pw.spec.Pin, Edges: pw.edges.Load(), Dropped: pw.dropped.Load(), Failed: pw.failed.Load()}
		if e := pw.err.Load(); e != nil {
			st.Err = *e
		}
		out = append(out, st)
	})
	slices.SortFunc(out, func(a, b GPIOStats) int { return strings.Compare(a.Pin, b.Pin) })
	return out
}
