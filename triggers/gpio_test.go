package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/internal/testutil"
)

func simChip(t *testing.T) *devices.GPIO {
	t.Helper()
	dev, err := devices.Open(devices.Config{Backend: devices.BackendSimulated})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Close() })
	return dev
}

func pinMode(dev *devices.GPIO, pin string) devices.Mode {
	for _, p := range dev.Pins() {
		if p.Name == pin {
			return p.Mode
		}
	}
	return ""
}

func waitWatched(t *testing.T, dev *devices.GPIO, pin string, want bool) {
	t.Helper()
	waitFor(t, pin+" watched="+map[bool]string{true: "yes", false: "no"}[want], func() bool {
		return (pinMode(dev, pin) == devices.ModeWatched) == want
	})
}

func inject(t *testing.T, dev *devices.GPIO, pin string, levels ...bool) {
	t.Helper()
	for _, l := range levels {
		if err := dev.Inject(pin, l); err != nil {
			t.Fatal(err)
		}
	}
}

func TestGPIOEndToEnd(t *testing.T) {
	checkLeaks(t)
	dev := simChip(t)
	sink := newRecSink(nil)
	g := NewGPIO(dev, sink, nil)
	if err := g.Set([]GPIOWatch{GPIOWatchOf(edgefn.Trigger{GPIO: "GPIO17", Edge: edgefn.EdgeBoth, Pull: edgefn.PullDown})}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, g.Run)
	waitWatched(t, dev, "GPIO17", true)
	inject(t, dev, "GPIO17", true, false)
	for _, want := range []struct{ edge, level string }{{"rising", "1"}, {"falling", "0"}} {
		ev := sink.next(t)
		if ev.Source != edgefn.SourceGPIO || ev.Subject != "GPIO17" || ev.Meta[MetaEdge] != want.edge || ev.Meta[MetaLevel] != want.level || ev.Time.IsZero() {
			t.Errorf("event = %+v, want %s to %s", ev, want.edge, want.level)
		}
		var p struct {
			Pin, Edge string
			Level     int
			Time      time.Time
		}
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Pin != "GPIO17" || p.Edge != want.edge || !p.Time.Equal(ev.Time) {
			t.Errorf("payload %s: %v", ev.Payload, err)
		}
	}
	if st := g.Stats(); len(st) != 1 || st[0].Edges != 2 || st[0].Err != "" {
		t.Errorf("stats = %+v", st)
	}
}

func TestGPIOEdgesAndDebounce(t *testing.T) {
	for _, tc := range []struct {
		name     string
		watch    GPIOWatch
		levels   []bool
		want     []string
		debounce bool
	}{
		{"rising", GPIOWatch{Pin: "GPIO5", Edge: edgefn.EdgeRising, Pull: edgefn.PullDown}, []bool{true, false, true, false}, []string{"rising", "rising"}, false},
		{"falling pull-up", GPIOWatch{Pin: "GPIO5", Edge: edgefn.EdgeFalling, Pull: edgefn.PullUp}, []bool{false, true, false, true}, []string{"falling", "falling"}, false},
		// A bounce burst inside a long window gives one event.
		{"debounce", GPIOWatch{Pin: "GPIO5", Edge: edgefn.EdgeBoth, Pull: edgefn.PullDown, Debounce: time.Hour}, []bool{true, false, true, false, true}, []string{"rising"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkLeaks(t)
			clock := &countingClock{}
			dev, err := devices.Open(devices.Config{Backend: devices.BackendSimulated, Now: clock.Now})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = dev.Close() })
			sink := newRecSink(nil)
			g := NewGPIO(dev, sink, nil)
			if err := g.Set([]GPIOWatch{tc.watch}); err != nil {
				t.Fatal(err)
			}
			testutil.Run(t, g.Run)
			waitWatched(t, dev, "GPIO5", true)
			inject(t, dev, "GPIO5", tc.levels...)
			for i, want := range tc.want {
				if ev := sink.next(t); ev.Meta[MetaEdge] != want {
					t.Errorf("event %d edge %q, want %q", i, ev.Meta[MetaEdge], want)
				}
			}
			if tc.debounce {
				// The watcher reads the clock once per edge it consumes.
				waitFor(t, "burst consumed", func() bool { return clock.calls.Load() == int64(len(tc.levels)) })
				if st := g.Stats(); st[0].Edges != 1 {
					t.Errorf("edges reported = %d, want 1 for a burst inside the debounce window", st[0].Edges)
				}
			}
		})
	}
}

// countingClock is a frozen clock that counts its reads.
type countingClock struct{ calls atomic.Int64 }

func (c *countingClock) Now() time.Time {
	c.calls.Add(1)
	return time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
}

func TestGPIOSetWhileRunning(t *testing.T) {
	checkLeaks(t)
	dev := simChip(t)
	sink := newRecSink(nil)
	g := NewGPIO(dev, sink, nil)
	testutil.Run(t, g.Run)
	a := GPIOWatch{Pin: "GPIO17", Edge: edgefn.EdgeBoth, Pull: edgefn.PullDown}
	if err := g.Set([]GPIOWatch{a}); err != nil {
		t.Fatal(err)
	}
	waitWatched(t, dev, "GPIO17", true)
	inject(t, dev, "GPIO17", true)
	sink.next(t)

	// Unchanged pins keep watching (counters kept); changed ones restart.
	b := GPIOWatch{Pin: "GPIO18", Edge: edgefn.EdgeFalling, Pull: edgefn.PullUp}
	if err := g.Set([]GPIOWatch{a, b}); err != nil {
		t.Fatal(err)
	}
	waitWatched(t, dev, "GPIO18", true)
	if st := g.Stats(); len(st) != 2 || st[0].Pin != "GPIO17" || st[0].Edges != 1 {
		t.Errorf("stats after adding a pin = %+v", st)
	}
	a.Edge = edgefn.EdgeFalling
	if err := g.Set([]GPIOWatch{a, b}); err != nil {
		t.Fatal(err)
	}
	waitWatched(t, dev, "GPIO17", true)
	inject(t, dev, "GPIO17", false, true, false) // level was high: falling, rising, falling
	inject(t, dev, "GPIO18", false)
	got := map[string]int{}
	for range 3 {
		ev := sink.next(t)
		if ev.Meta[MetaEdge] != "falling" {
			t.Errorf("event %+v, want only falling edges", ev)
		}
		got[ev.Subject]++
	}
	if got["GPIO17"] != 2 || got["GPIO18"] != 1 {
		t.Errorf("events per pin = %v", got)
	}

	if err := g.Set([]GPIOWatch{b}); err != nil {
		t.Fatal(err)
	}
	if pinMode(dev, "GPIO17") == devices.ModeWatched {
		t.Error("removed pin still watched after Set returned")
	}
	if err := dev.Write("GPIO17", true); err != nil {
		t.Errorf("released pin cannot be written: %v", err)
	}
}

func TestGPIOWatchErrorReported(t *testing.T) {
	checkLeaks(t)
	dev := simChip(t)
	sink := newRecSink(nil)
	g := NewGPIO(dev, sink, nil)
	if err := g.Set([]GPIOWatch{{Pin: "GPIO99"}, {Pin: "GPIO4"}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, g.Run)
	waitFor(t, "watch error in stats", func() bool { st := g.Stats(); return st[1].Err != "" })
	if st := g.Stats(); !strings.Contains(st[1].Err, `"GPIO99"`) || !strings.Contains(st[1].Err, "no such pin") {
		t.Errorf("stats = %+v", st)
	}
	waitWatched(t, dev, "GPIO4", true)
	inject(t, dev, "GPIO4", true)
	if ev := sink.next(t); ev.Subject != "GPIO4" {
		t.Errorf("event = %+v", ev)
	}
}

func TestGPIODeliverFailuresAndDrops(t *testing.T) {
	checkLeaks(t)
	dev := simChip(t)
	release := make(chan struct{})
	var calls atomic.Int64
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		if calls.Add(1) == 1 {
			select { // hold the first delivery so the queue fills
			case <-release:
			case <-ctx.Done():
			}
		}
		return errors.New("queue full")
	})
	g := NewGPIO(dev, sink, nil)
	if err := g.Set([]GPIOWatch{{Pin: "GPIO9", Pull: edgefn.PullDown}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, g.Run)
	waitWatched(t, dev, "GPIO9", true)
	for i := range 200 {
		inject(t, dev, "GPIO9", i%2 == 0)
	}
	waitFor(t, "edges dropped", func() bool { return g.Stats()[0].Dropped > 0 })
	close(release)
	waitFor(t, "failures counted", func() bool {
		st := g.Stats()[0]
		return st.Edges == 200 && st.Failed == st.Edges-st.Dropped
	})
}

func TestGPIOSetValidates(t *testing.T) {
	g := NewGPIO(nil, newRecSink(nil), nil)
	err := g.Set([]GPIOWatch{
		{Pin: ""},
		{Pin: "GPIO1", Edge: "sideways", Pull: "sticky", Debounce: -time.Millisecond},
		{Pin: "GPIO2"},
		{Pin: "gpio2"},
	})
	for _, want := range []string{"empty pin name", `edge "sideways"`, `pull "sticky"`, "debounce -1ms is negative", `"gpio2": pin listed twice`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Set = %v, want %q", err, want)
		}
	}
	if len(g.Stats()) != 0 {
		t.Error("a failed Set changed the watches")
	}
}
