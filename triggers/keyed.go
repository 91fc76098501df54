package triggers

import (
	"context"
	"errors"
	"log/slog"
	"sync"
)

// keyed is the lifecycle shared by the triggers that run one part per key
// (a watched pin, a timer): Set swaps the set under the mutex, keeping the
// parts whose spec is unchanged; Run starts every part once and, when its
// context ends, waits for all their goroutines.
type keyed[P any] struct {
	name string // the trigger, in errors: "timers"
	what string // one part, in logs: "timer"
	log  *slog.Logger
	// same says a running part can keep running for the wanted one.
	same func(running, want P) bool
	// start runs p's goroutines through run (Run waits for them). ctx ends
	// when p stops or Run's context, runCtx, ends. start returns a channel
	// closed once p has released what it holds (set waits for it before
	// starting a replacement), or nil.
	start func(ctx, runCtx context.Context, p P, run func(func())) (released <-chan struct{})

	mu      sync.Mutex
	parts   map[string]*keyedPart[P]
	runCtx  context.Context // nil until Run
	stopped bool            // Run is stopping: start no more goroutines
	running sync.WaitGroup
}

type keyedPart[P any] struct {
	p        P
	cancel   context.CancelFunc // nil until started
	released <-chan struct{}
}

func newKeyed[P any](name, what string, log *slog.Logger, same func(running, want P) bool, start func(ctx, runCtx context.Context, p P, run func(func())) <-chan struct{}) *keyed[P] {
	return &keyed[P]{name: name, what: what, log: log, same: same, start: start, parts: map[string]*keyedPart[P]{}}
}

// set makes want the running set: parts no longer wanted or changed stop
// (set waits for those that release something), new ones start if Run
// runs, unchanged ones keep running. errs are the problems the caller found
// validating want: with any, set changes nothing and returns them joined.
func (k *keyed[P]) set(want map[string]P, errs []error) error {
	if err := errors.Join(errs...); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	var released []<-chan struct{}
	for key, kp := range k.parts {
		if w, keep := want[key]; keep && k.same(kp.p, w) {
			continue
		}
		if kp.cancel != nil {
			kp.cancel()
			if kp.released != nil {
				released = append(released, kp.released)
			}
		}
		delete(k.parts, key)
		k.log.Debug(k.what+" removed", k.what, key)
	}
	for _, done := range released {
		<-done
	}
	for key, p := range want {
		if _, have := k.parts[key]; have {
			continue
		}
		kp := &keyedPart[P]{p: p}
		k.parts[key] = kp
		k.launch(kp)
		k.log.Debug(k.what+" added", k.what, key)
	}
	return nil
}

// run starts every part and waits until ctx ends and every goroutine of
// every part has returned. It may be called once.
func (k *keyed[P]) run(ctx context.Context) error {
	k.mu.Lock()
	if k.runCtx != nil {
		k.mu.Unlock()
		return errors.New(k.name + ": Run called twice")
	}
	k.runCtx = ctx
	for _, kp := range k.parts {
		k.launch(kp)
	}
	k.mu.Unlock()
	<-ctx.Done()
	k.mu.Lock()
	k.stopped = true
	k.mu.Unlock()
	k.running.Wait()
	return nil
}

// launch starts kp if Run runs. k.mu must be held.
func (k *keyed[P]) launch(kp *keyedPart[P]) {
	if k.runCtx == nil || k.stopped {
		return
	}
	ctx, cancel := context.WithCancel(k.runCtx)
	kp.cancel = cancel
	kp.released = k.start(ctx, k.runCtx, kp.p, func(f func()) {
		k.running.Add(1)
		go func() {
			defer k.running.Done()
			f()
		}()
	})
}

// each calls f for every part, under the mutex.
func (k *keyed[P]) each(f func(P)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, kp := range k.parts {
		f(kp.p)
	}
}
