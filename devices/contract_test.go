package devices_test

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

// backend is one GPIO backend under the contract suite: how to open it,
// which pins to use, and how to drive the watched input's wire.
type backend struct {
	name string
	// open returns a fresh GPIO; now may be nil.
	open func(t *testing.T, now func() time.Time) *devices.GPIO
	in   string // an input pin whose wire the test drives
	out  string // an output pin the test may write
	// drive sets the wire level of in.
	drive func(g *devices.GPIO, high bool) error
	// edges is false when nothing can drive in (no loopback wire).
	edges bool
	// skip, when set, says why the backend is not available here.
	skip string
}

// opener opens backend with the test's clock, closed when the test ends.
func opener(backend string) func(t *testing.T, now func() time.Time) *devices.GPIO {
	return func(t *testing.T, now func() time.Time) *devices.GPIO {
		g, err := devices.Open(devices.Config{Backend: backend, Now: now})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = g.Close() })
		return g
	}
}

// backends returns the backends available here: simulated always, periph
// when host.Init finds GPIO pins. On hardware, writes and edges need
// EDGEFN_GPIO_LOOP=OUT:IN naming two free pins wired together (OUT drives
// IN); without it only the harmless checks run.
func backends(t *testing.T) []backend {
	bs := []backend{{
		name: devices.BackendSimulated,
		open: opener(devices.BackendSimulated),
		in:   "GPIO17", out: "GPIO18",
		drive: func(g *devices.GPIO, high bool) error { return g.Inject("GPIO17", high) },
		edges: true,
	}}
	g, err := devices.Open(devices.Config{Backend: devices.BackendPeriph})
	if err != nil {
		return append(bs, backend{name: devices.BackendPeriph, skip: err.Error()})
	}
	_ = g.Close()
	pb := backend{
		name: devices.BackendPeriph,
		open: opener(devices.BackendPeriph),
	}
	if out, in, ok := strings.Cut(os.Getenv("EDGEFN_GPIO_LOOP"), ":"); ok {
		pb.in, pb.out, pb.edges = in, out, true
		pb.drive = func(g *devices.GPIO, high bool) error { return g.Write(out, high) }
	} else {
		t.Logf("periph backend: writes and edges skipped: set EDGEFN_GPIO_LOOP=OUT:IN naming two free pins wired together")
		pb.in = g.Names()[0]
	}
	return append(bs, pb)
}

func TestContract(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			if b.skip != "" {
				t.Skip(b.skip)
			}
			runContract(t, b)
		})
	}
}

func runContract(t *testing.T, b backend) {
	needEdges := func(t *testing.T) {
		t.Helper()
		if !b.edges {
			t.Skip("no loopback pins (EDGEFN_GPIO_LOOP)")
		}
	}

	t.Run("has", func(t *testing.T) {
		g := b.open(t, nil)
		if g.Backend() != b.name {
			t.Errorf("Backend() = %q, want %q", g.Backend(), b.name)
		}
		if !g.Has(b.in) {
			t.Errorf("Has(%q) = false", b.in)
		}
		if g.Has("NOPIN99") {
			t.Error(`Has("NOPIN99") = true`)
		}
	})

	t.Run("unknown pin", func(t *testing.T) {
		g := b.open(t, nil)
		_, rerr := g.Read(context.Background(), "NOPIN99")
		werr := g.Write("NOPIN99", true)
		xerr := g.Watch(context.Background(), "NOPIN99", edgefn.EdgeBoth, "", 0, func(edgefn.Edge, bool, time.Time) {})
		for _, err := range []error{rerr, werr, xerr} {
			var pe *devices.PinError
			if !errors.Is(err, devices.ErrUnknownPin) || !errors.As(err, &pe) || pe.Pin != "NOPIN99" {
				t.Errorf("err = %v, want a *PinError for NOPIN99 wrapping ErrUnknownPin", err)
			}
		}
	})

	t.Run("write read", func(t *testing.T) {
		needEdges(t)
		g := b.open(t, nil)
		for _, high := range []bool{true, false, true} {
			if err := g.Write(b.out, high); err != nil {
				t.Fatal(err)
			}
			got, err := g.Read(context.Background(), b.out)
			if err != nil || got != high {
				t.Fatalf("Read after Write(%v) = %v, %v", high, got, err)
			}
		}
		if m := mode(g, b.out); m != devices.ModeOutput {
			t.Errorf("mode = %q, want output", m)
		}
	})

	edgeCases := []struct {
		edge edgefn.Edge
		want []edgefn.Edge
	}{
		{edgefn.EdgeRising, []edgefn.Edge{"rising", "rising"}},
		{edgefn.EdgeFalling, []edgefn.Edge{"falling", "falling"}},
		{edgefn.EdgeBoth, []edgefn.Edge{"rising", "falling", "rising", "falling"}},
		{"", []edgefn.Edge{"rising", "falling", "rising", "falling"}},
	}
	for _, tc := range edgeCases {
		t.Run("edges "+string(tc.edge), func(t *testing.T) {
			needEdges(t)
			g := b.open(t, nil)
			if err := b.drive(g, false); err != nil {
				t.Fatal(err)
			}
			evs, stop := watch(t, g, b.in, tc.edge, edgefn.PullDown, 0)
			for _, high := range []bool{true, false, true, false} {
				if err := b.drive(g, high); err != nil {
					t.Fatal(err)
				}
			}
			got := collect(t, evs, len(tc.want))
			for i, e := range got {
				if e.edge != tc.want[i] || e.high != (e.edge == edgefn.EdgeRising) {
					t.Errorf("edge %d = %+v, want %s with its level", i, e, tc.want[i])
				}
			}
			if err := stop(); err != nil {
				t.Errorf("Watch after cancel = %v, want nil", err)
			}
			none(t, evs)
		})
	}

	t.Run("debounce", func(t *testing.T) {
		needEdges(t)
		clock := newFakeClock()
		g := b.open(t, clock.Now)
		if err := b.drive(g, false); err != nil {
			t.Fatal(err)
		}
		evs, _ := watch(t, g, b.in, edgefn.EdgeBoth, edgefn.PullDown, 20*time.Millisecond)
		// A bounce burst at one instant: only its first edge counts.
		for _, high := range []bool{true, false, true, false, true} {
			if err := b.drive(g, high); err != nil {
				t.Fatal(err)
			}
		}
		first := collect(t, evs, 1)[0]
		if first.edge != edgefn.EdgeRising {
			t.Errorf("first edge = %+v, want rising", first)
		}
		deadline := time.Now().Add(wait)
		for clock.Calls() < 5 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond) // until the watcher consumed the burst
		}
		clock.Add(20 * time.Millisecond)
		if err := b.drive(g, false); err != nil {
			t.Fatal(err)
		}
		second := collect(t, evs, 1)[0]
		if second.edge != edgefn.EdgeFalling || !second.at.Equal(clock.Now()) {
			t.Errorf("edge after the window = %+v, want falling at %v", second, clock.Now())
		}
		none(t, evs) // the burst was processed before the later edge
	})

	t.Run("busy", func(t *testing.T) {
		needEdges(t)
		g := b.open(t, nil)
		_, _ = watch(t, g, b.in, edgefn.EdgeBoth, "", 0)
		if err := g.Write(b.in, true); !errors.Is(err, devices.ErrBusy) {
			t.Errorf("Write on a watched pin = %v, want ErrBusy", err)
		}
		err := g.Watch(context.Background(), b.in, edgefn.EdgeBoth, "", 0, func(edgefn.Edge, bool, time.Time) {})
		if !errors.Is(err, devices.ErrBusy) {
			t.Errorf("second Watch = %v, want ErrBusy", err)
		}
		if err := g.Write(b.out, true); err != nil {
			t.Fatal(err)
		}
		err = g.Watch(context.Background(), b.out, edgefn.EdgeBoth, "", 0, func(edgefn.Edge, bool, time.Time) {})
		if !errors.Is(err, devices.ErrBusy) {
			t.Errorf("Watch on an output = %v, want ErrBusy", err)
		}
	})

	t.Run("rewatch", func(t *testing.T) {
		needEdges(t)
		g := b.open(t, nil)
		_, stop := watch(t, g, b.in, edgefn.EdgeBoth, edgefn.PullDown, 0)
		if err := stop(); err != nil {
			t.Fatal(err)
		}
		// Edges while nobody watches are level changes, not queued edges.
		for _, high := range []bool{true, false, true} {
			if err := b.drive(g, high); err != nil {
				t.Fatal(err)
			}
		}
		if got, err := g.Read(context.Background(), b.in); err != nil || !got {
			t.Errorf("Read unwatched = %v, %v, want true", got, err)
		}
		evs, _ := watch(t, g, b.in, edgefn.EdgeFalling, "", 0)
		if err := b.drive(g, false); err != nil {
			t.Fatal(err)
		}
		if e := collect(t, evs, 1)[0]; e.edge != edgefn.EdgeFalling {
			t.Errorf("edge = %+v", e)
		}
	})

	t.Run("close", func(t *testing.T) {
		needEdges(t)
		g := b.open(t, nil)
		done := make(chan error, 1)
		go func() {
			done <- g.Watch(context.Background(), b.in, edgefn.EdgeBoth, "", 0, func(edgefn.Edge, bool, time.Time) {})
		}()
		deadline := time.Now().Add(wait)
		for mode(g, b.in) != devices.ModeWatched && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if err := g.Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-done:
			if !errors.Is(err, devices.ErrClosed) {
				t.Errorf("Watch after Close = %v, want ErrClosed", err)
			}
		case <-time.After(wait):
			t.Fatal("Watch did not return after Close")
		}
		if _, err := g.Read(context.Background(), b.in); !errors.Is(err, devices.ErrClosed) {
			t.Errorf("Read after Close = %v, want ErrClosed", err)
		}
		if err := g.Close(); err != nil {
			t.Errorf("second Close = %v", err)
		}
	})

	t.Run("read ctx", func(t *testing.T) {
		g := b.open(t, nil)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := g.Read(ctx, b.in); !errors.Is(err, context.Canceled) {
			t.Errorf("Read with ended ctx = %v", err)
		}
	})

	t.Run("invalid watch", func(t *testing.T) {
		g := b.open(t, nil)
		for _, c := range []struct {
			edge edgefn.Edge
			pull edgefn.Pull
			deb  time.Duration
			want string
		}{
			{"sideways", "", 0, `unknown edge "sideways"`},
			{"", "sticky", 0, `unknown pull "sticky"`},
			{"", "", -time.Second, "negative debounce"},
		} {
			err := g.Watch(context.Background(), b.in, c.edge, c.pull, c.deb, func(edgefn.Edge, bool, time.Time) {})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Watch(%q, %q, %s) = %v, want %q", c.edge, c.pull, c.deb, err, c.want)
			}
		}
	})
}
