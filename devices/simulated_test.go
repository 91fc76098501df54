package devices_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

func openSim(t *testing.T, pins ...string) *devices.GPIO {
	t.Helper()
	g, err := devices.Open(devices.Config{Backend: devices.BackendSimulated, Pins: pins})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = g.Close() })
	return g
}

func TestOpen(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  devices.Config
		want string // error substring, "" for success
	}{
		{"simulated", devices.Config{Backend: "simulated"}, ""},
		{"none", devices.Config{Backend: "none"}, ""},
		{"empty means none", devices.Config{}, ""},
		{"unknown", devices.Config{Backend: "sysfs"}, `unknown backend "sysfs": use periph, simulated, none`},
		{"pins on none", devices.Config{Backend: "none", Pins: []string{"A"}}, "only configurable for the simulated backend"},
		{"duplicate pins", devices.Config{Backend: "simulated", Pins: []string{"LED", "BTN", "led", " "}}, `pins[2]: "led" listed twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := devices.Open(tc.cfg)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				_ = g.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSimulatedPins(t *testing.T) {
	g := openSim(t)
	names := g.Names()
	if len(names) != 28 || names[0] != "GPIO0" || names[27] != "GPIO27" {
		t.Errorf("default pins = %v", names)
	}
	if !g.Has("gpio17") {
		t.Error("pin names should be case-insensitive")
	}
	g = openSim(t, "LED", "BUTTON")
	if !slices.Equal(g.Names(), []string{"LED", "BUTTON"}) || g.Has("GPIO17") {
		t.Errorf("custom pins = %v", g.Names())
	}
}

func TestNoneBackend(t *testing.T) {
	g, err := devices.Open(devices.Config{Backend: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	if g.Has("GPIO17") || len(g.Names()) != 0 {
		t.Error("none backend has pins")
	}
	if _, err := g.Read(context.Background(), "GPIO17"); !errors.Is(err, devices.ErrUnknownPin) || !strings.Contains(err.Error(), "backend none") {
		t.Errorf("Read = %v", err)
	}
	if err := g.Inject("GPIO17", true); !errors.Is(err, devices.ErrNotSimulated) {
		t.Errorf("Inject = %v, want ErrNotSimulated", err)
	}
}

func TestPulls(t *testing.T) {
	for _, tc := range []struct {
		pull edgefn.Pull
		want bool
	}{
		{edgefn.PullUp, true},
		{edgefn.PullDown, false},
	} {
		t.Run(string(tc.pull), func(t *testing.T) {
			g := openSim(t)
			watch(t, g, "GPIO4", edgefn.EdgeBoth, tc.pull, 0)
			got, err := g.Read(context.Background(), "GPIO4")
			if err != nil || got != tc.want {
				t.Errorf("Read with pull %s = %v, %v, want %v", tc.pull, got, err, tc.want)
			}
		})
	}
}

func TestPulse(t *testing.T) {
	for _, tc := range []struct {
		pull edgefn.Pull
		want []edgefn.Edge
	}{
		{edgefn.PullDown, []edgefn.Edge{"rising", "falling"}},
		{edgefn.PullUp, []edgefn.Edge{"falling", "rising"}},
	} {
		t.Run(string(tc.pull), func(t *testing.T) {
			g := openSim(t)
			evs, _ := watch(t, g, "GPIO17", edgefn.EdgeBoth, tc.pull, 0)
			if err := g.Pulse("GPIO17", time.Millisecond); err != nil {
				t.Fatal(err)
			}
			got := collect(t, evs, 2)
			if got[0].edge != tc.want[0] || got[1].edge != tc.want[1] {
				t.Errorf("pulse edges = %+v, want %v", got, tc.want)
			}
		})
	}
}

func TestInject(t *testing.T) {
	g := openSim(t)
	// An unused pin follows the wire at once.
	if err := g.Inject("GPIO5", true); err != nil {
		t.Fatal(err)
	}
	if got, _ := g.Read(context.Background(), "GPIO5"); !got {
		t.Error("Read after Inject(true) = false")
	}
	// Setting the same level is no edge.
	evs, _ := watch(t, g, "GPIO6", edgefn.EdgeBoth, edgefn.PullDown, 0)
	for _, high := range []bool{false, true, true, false} {
		if err := g.Inject("GPIO6", high); err != nil {
			t.Fatal(err)
		}
	}
	if got := collect(t, evs, 2); got[0].edge != "rising" || got[1].edge != "falling" {
		t.Errorf("edges = %+v", got)
	}
	// The agent's outputs cannot be driven from outside.
	if err := g.Write("GPIO7", true); err != nil {
		t.Fatal(err)
	}
	if err := g.Inject("GPIO7", false); !errors.Is(err, devices.ErrBusy) {
		t.Errorf("Inject on an output = %v, want ErrBusy", err)
	}
	if err := g.Inject("GPIO99", true); !errors.Is(err, devices.ErrUnknownPin) {
		t.Errorf("Inject on unknown pin = %v", err)
	}
}

func TestInjectOverrun(t *testing.T) {
	g := openSim(t)
	release := make(chan struct{})
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		done <- g.Watch(ctx, "GPIO8", edgefn.EdgeBoth, edgefn.PullDown, 0, func(edgefn.Edge, bool, time.Time) { <-release })
	}()
	deadline := time.Now().Add(wait)
	for mode(g, "GPIO8") != devices.ModeWatched && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	var err error
	for i := 0; i < 3000 && err == nil; i++ {
		err = g.Inject("GPIO8", i%2 == 0)
	}
	if !errors.Is(err, devices.ErrOverrun) {
		t.Errorf("Inject into a stuck watcher = %v, want ErrOverrun", err)
	}
	cancel()
	close(release)
	if err := <-done; err != nil {
		t.Error(err)
	}
}

func TestPinsState(t *testing.T) {
	g := openSim(t, "LED", "BTN", "RELAY")
	if err := g.Write("LED", true); err != nil {
		t.Fatal(err)
	}
	if err := g.Write("RELAY", false); err != nil {
		t.Fatal(err)
	}
	watch(t, g, "BTN", edgefn.EdgeBoth, edgefn.PullUp, 0)
	want := []devices.PinState{
		{Name: "LED", Mode: devices.ModeOutput, High: true},
		{Name: "BTN", Mode: devices.ModeWatched, High: true},
		{Name: "RELAY", Mode: devices.ModeOutput, High: false},
	}
	if got := g.Pins(); !slices.Equal(got, want) {
		t.Errorf("Pins() = %+v, want %+v", got, want)
	}
}

func TestPulseInterruptedByClose(t *testing.T) {
	g, err := devices.Open(devices.Config{Backend: devices.BackendSimulated})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- g.Pulse("GPIO3", time.Hour) }()
	deadline := time.Now().Add(wait)
	for !pinHigh(g, "GPIO3") && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := g.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, devices.ErrClosed) {
		t.Errorf("Pulse = %v, want ErrClosed", err)
	}
}

func pinHigh(g *devices.GPIO, pin string) bool {
	for _, p := range g.Pins() {
		if p.Name == pin {
			return p.High
		}
	}
	return false
}

func TestPullDoesNotOverrideDrivenWire(t *testing.T) {
	g := openSim(t)
	if err := g.Inject("GPIO4", true); err != nil {
		t.Fatal(err)
	}
	watch(t, g, "GPIO4", edgefn.EdgeBoth, edgefn.PullDown, 0)
	if got, err := g.Read(context.Background(), "GPIO4"); err != nil || !got {
		t.Errorf("Read of a wire driven high with pull-down = %v, %v, want true", got, err)
	}
}
