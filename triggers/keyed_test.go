package triggers

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"testing"

	"github.com/edgefn/edgefn/internal/testutil"
)

// part is a keyed part that records its lifecycle.
type part struct {
	spec     string
	started  atomic.Int32
	stopped  chan struct{} // closed when its goroutine saw ctx end
	released chan struct{} // closed by the test: what set waits for
}

func newPart(spec string) *part {
	return &part{spec: spec, stopped: make(chan struct{}), released: make(chan struct{})}
}

func testKeyed() *keyed[*part] {
	return newKeyed("parts", "part", slog.New(slog.DiscardHandler),
		func(running, want *part) bool { return running.spec == want.spec },
		func(ctx, _ context.Context, p *part, run func(func())) <-chan struct{} {
			p.started.Add(1)
			run(func() {
				<-ctx.Done()
				close(p.stopped)
			})
			return p.released
		})
}

func TestKeyed(t *testing.T) {
	checkLeaks(t)
	k := testKeyed()
	a, b := newPart("a1"), newPart("b1")
	if err := k.set(map[string]*part{"a": a, "b": b}, nil); err != nil {
		t.Fatal(err)
	}
	if a.started.Load() != 0 {
		t.Fatal("a part started before Run")
	}
	stop := testutil.Run(t, k.run)
	waitFor(t, "Run starts every part", func() bool { return a.started.Load() == 1 && b.started.Load() == 1 })

	// Invalid: nothing changes.
	if err := k.set(map[string]*part{}, []error{errors.New("bad")}); err == nil {
		t.Fatal("set with errors succeeded")
	}
	// a unchanged keeps running; b changed is stopped, released, then
	// started again; c is new.
	close(b.released)
	a2, b2, c := newPart("a1"), newPart("b2"), newPart("c1")
	if err := k.set(map[string]*part{"a": a2, "b": b2, "c": c}, nil); err != nil {
		t.Fatal(err)
	}
	<-b.stopped
	if a.started.Load() != 1 || a2.started.Load() != 0 || b2.started.Load() != 1 || c.started.Load() != 1 {
		t.Fatalf("started a %d a2 %d b2 %d c %d, want 1 0 1 1", a.started.Load(), a2.started.Load(), b2.started.Load(), c.started.Load())
	}
	select {
	case <-a.stopped:
		t.Fatal("unchanged part stopped")
	default:
	}

	// Run returns once every part's goroutine has.
	stop()
	for _, p := range []*part{a, b2, c} {
		select {
		case <-p.stopped:
		default:
			t.Errorf("part %s still running after Run returned", p.spec)
		}
	}
	// After Run, set starts nothing.
	d := newPart("d1")
	close(a.released)
	close(b2.released)
	close(c.released)
	if err := k.set(map[string]*part{"d": d}, nil); err != nil {
		t.Fatal(err)
	}
	if d.started.Load() != 0 {
		t.Error("a part started after Run returned")
	}
}

func TestKeyedRunTwice(t *testing.T) {
	for name, run := range map[string]func(context.Context) error{
		"gpio":   NewGPIO(nil, newRecSink(nil), nil).Run,
		"timers": NewTimers(newRecSink(nil), nil).Run,
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if err := run(ctx); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if err := run(ctx); err == nil {
			t.Errorf("%s: second Run succeeded", name)
		}
	}
}
