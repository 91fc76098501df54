package devices_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait is how long a test waits for something that should happen at once.
const wait = 5 * time.Second

type edgeEv struct {
	edge edgefn.Edge
	high bool
	at   time.Time
}

// watch runs g.Watch on pin in a goroutine, waits until the pin is
// watched, and returns the edges it reports and a stop function that
// returns Watch's error. Cleanup stops it.
func watch(t *testing.T, g *devices.GPIO, pin string, edge edgefn.Edge, pull edgefn.Pull, debounce time.Duration) (<-chan edgeEv, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	evs := make(chan edgeEv, 4096)
	done := make(chan error, 1)
	go func() {
		done <- g.Watch(ctx, pin, edge, pull, debounce, func(e edgefn.Edge, high bool, at time.Time) {
			evs <- edgeEv{e, high, at}
		})
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(wait):
				t.Errorf("Watch(%s) did not return %s after its context ended", pin, wait)
			}
		})
		return err
	}
	t.Cleanup(func() { _ = stop() })
	deadline := time.Now().Add(wait)
	for mode(g, pin) != devices.ModeWatched {
		select {
		case err := <-done:
			done <- err
			t.Fatalf("Watch(%s) returned before watching: %v", pin, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("pin %s not watched after %s", pin, wait)
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	return evs, stop
}

func mode(g *devices.GPIO, pin string) devices.Mode {
	for _, p := range g.Pins() {
		if p.Name == pin {
			return p.Mode
		}
	}
	return ""
}

// collect receives n edges or fails.
func collect(t *testing.T, evs <-chan edgeEv, n int) []edgeEv {
	t.Helper()
	var got []edgeEv
	timeout := time.After(wait)
	for len(got) < n {
		select {
		case e := <-evs:
			got = append(got, e)
		case <-timeout:
			t.Fatalf("got %d edges %v, want %d", len(got), got, n)
		}
	}
	return got
}

// none asserts no further edge is pending; callers make sure edges were
// processed first (a later edge was received).
func none(t *testing.T, evs <-chan edgeEv) {
	t.Helper()
	select {
	case e := <-evs:
		t.Fatalf("unexpected edge %+v", e)
	default:
	}
}

// fakeClock is a settable clock for debounce tests.
type fakeClock struct {
	mu    sync.Mutex
	t     time.Time
	calls int // Watch reads the clock once per edge it consumes
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	return c.t
}

func (c *fakeClock) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}
