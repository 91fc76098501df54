package outbox

import (
	"context"
	"time"
)

// run is the committer: the only goroutine that writes to the database. It
// commits the queued requests in batches gathered by the batching rule, runs
// the maintenance on an idle tick, and after Close commits what is still
// queued.
func (s *Store) run() {
	defer close(s.exited)
	defer close(s.completions) // before exited: Close waits for both
	tick := time.NewTicker(s.maintenanceEvery())
	defer tick.Stop()
	g := newGatherer(s.cfg, s.queue, s.stop)
	m := maintenance{lastCheckpoint: time.Now(), lastWrite: time.Now()}
	for {
		select {
		case first := <-s.queue:
			m.lastWrite = time.Now()
			batch := g.gather(first)
			if d := s.takeDeferred(); len(d) > 0 {
				batch = append(d, batch...)
			}
			s.commitBatch(batch, false, false)
			g.committed()
		case <-s.kick:
			s.commitBatch(s.takeDeferred(), false, false)
		case <-tick.C:
			s.maintain(&m, time.Now())
		case <-s.stop:
			s.commitQueued(append(s.takeDeferred(), g.batch[:0]...))
			return
		}
	}
}

// commitQueued commits every request still queued (after batch, the
// deferred ones), up to 1024 a batch, and the usage sums.
func (s *Store) commitQueued(batch []*request) {
	for first := true; ; first = false {
		if !first {
			batch = batch[:0]
		}
	take:
		for len(batch) < 1024 {
			select {
			case r := <-s.queue:
				batch = append(batch, r)
			default:
				break take
			}
		}
		if len(batch) == 0 {
			if len(s.usagePend) > 0 {
				s.commitBatch([]*request{{kind: opFlush, ctx: context.Background()}}, false, false)
			}
			return
		}
		s.commitBatch(batch, false, false)
	}
}

// maintenanceEvery is the idle tick: once a second, more often when MaxAge
// needs it.
func (s *Store) maintenanceEvery() time.Duration {
	every := time.Second
	if s.cfg.MaxAge > 0 {
		every = min(every, max(s.cfg.MaxAge/4, 10*time.Millisecond))
	}
	return every
}

// maintenance is what the idle tick remembers between ticks.
type maintenance struct {
	lastCheckpoint, lastWrite time.Time
}

// maintain runs on the idle tick: a maintenance batch for expiry, the
// periodic retention and stream pruning when one is due, then, on an idle
// store, a WAL truncation and reclaiming of free pages.
func (s *Store) maintain(m *maintenance, now time.Time) {
	ckpt := now.Sub(m.lastCheckpoint) >= s.cfg.CheckpointInterval
	deferred := s.takeDeferred()
	if s.cfg.MaxAge > 0 || ckpt || s.streamsOver() || len(deferred) > 0 || len(s.usagePend) > 0 {
		s.commitBatch(deferred, true, ckpt)
	}
	if ckpt {
		m.lastCheckpoint = now
		// Only an idle store truncates its WAL: under load the automatic
		// checkpoints recycle it in place.
		if now.Sub(m.lastWrite) >= s.cfg.CheckpointInterval/2 {
			s.reclaim()
		}
	}
}
