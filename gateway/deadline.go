package gateway

import (
	"context"
	"sync"
	"time"
)

// sharedDeadline hands out contexts that end about d after they are asked
// for: every caller within the same tick (d/64) gets the same context, so
// a bound on each event's commit or publish costs one timer per tick
// instead of one per event. A context ends between d and d+tick after its
// first caller asked.
type sharedDeadline struct {
	d, tick time.Duration

	mu    sync.Mutex
	ctx   context.Context
	until time.Time // the current ctx is handed out until then
	// cancels of the contexts handed out, called once they have expired
	// (their timers have fired by then: this only releases them).
	old []expiring
}

type expiring struct {
	at     time.Time
	cancel context.CancelFunc
}

func newSharedDeadline(d time.Duration) *sharedDeadline {
	return &sharedDeadline{d: d, tick: d / 64}
}

// context returns a context that ends between d and d+tick from now.
func (s *sharedDeadline) context() context.Context {
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ctx != nil && now.Before(s.until) {
		return s.ctx
	}
	at := now.Add(s.d + s.tick)
	ctx, cancel := context.WithDeadline(context.Background(), at)
	n := 0
	for _, e := range s.old {
		if now.After(e.at) {
			e.cancel()
			continue
		}
		s.old[n] = e
		n++
	}
	s.old = append(s.old[:n], expiring{at: at, cancel: cancel})
	s.ctx, s.until = ctx, now.Add(s.tick)
	return ctx
}
