package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/sync/outbox"
)

// invocationResult is what one invocation produced, as the gateway reports
// it to HTTP invoke callers and the status API.
type invocationResult struct {
	Function string
	Version  int
	Sandbox  *sandbox.Result
	// Seqs are the outbox seqs of the emitted records, in emit order.
	Seqs []uint64
	// Committed is when the invocation became durable.
	Committed time.Time
}

// version is one loaded version of a function.
type version struct {
	name     string
	manifest *edgefn.Manifest
	limits   edgefn.Limits
	meta     versionMeta
	fn       *sandbox.Function
	raw      []byte // the manifest as deployed
}

// deployed is a function by name: its queue survives redeploys, its active
// version is swapped atomically so new events go to the new version while
// in-flight ones finish on the old.
type deployed struct {
	name    string
	q       *queue
	cur     atomic.Pointer[version]
	stats   *fnStats
	pending sync.WaitGroup // commits in flight
	commits chan struct{}  // bounds commits in flight
}

// maxPendingCommits bounds how many invocations of one function may wait
// for their group commit at once; the worker moves on to the next event
// while the commit is in flight.
const maxPendingCommits = 256

// run invokes the function for one job, commits its effects, then applies
// publishes and GPIO writes and reports the outcome. It is the queue's
// worker body.
func (g *Host) run(d *deployed, j *job) {
	v := d.cur.Load()
	if v == nil {
		j.answer(outcome{Err: errQueueClosed})
		return
	}
	res, inv := g.invoke(v, j)
	if j.then != nil {
		g.settleAsync(d, v, j, res, inv)
		close(j.accepted)
		return
	}
	// The worker hands the commit off and takes the next event: group
	// commit batches invocations, so waiting here would serialize them.
	d.commits <- struct{}{}
	d.pending.Add(1)
	go func() {
		defer func() { <-d.commits; d.pending.Done() }()
		o := g.settle(d, v, j, res, inv)
		if j.done != nil {
			j.done <- o
		}
	}()
}

// runInline runs one job on the caller's goroutine, which waits for its
// outcome anyway: no hand-off to a worker, no goroutine for the commit, no
// channel back. The caller holds a worker slot (queue.tryInline), which
// is given back once the function returned, before the commit, as a
// worker gives it back by handing the commit off.
func (g *Host) runInline(d *deployed, j *job) outcome {
	v := d.cur.Load()
	if v == nil {
		d.q.inlineDone()
		return outcome{Err: errQueueClosed}
	}
	res, inv := g.invoke(v, j)
	d.pending.Add(1) // before the slot is given back: close waits for both
	d.q.inlineDone()
	defer d.pending.Done()
	return g.settle(d, v, j, res, inv)
}

// runInlineAsync is runInline for a pipelined job (Host.DeliverAsync): it
// returns once the commit is queued, and j.then receives the outcome once
// it is durable.
func (g *Host) runInlineAsync(d *deployed, j *job) {
	v := d.cur.Load()
	if v == nil {
		d.q.inlineDone()
		j.then(outcome{Err: errQueueClosed})
		return
	}
	res, inv := g.invoke(v, j)
	d.q.inlineDone()
	g.settleAsync(d, v, j, res, inv)
}

// invoke runs v on j's event and returns the result and what the outbox
// keeps of it.
func (g *Host) invoke(v *version, j *job) (*sandbox.Result, *outbox.Invocation) {
	res := v.fn.Invoke(context.Background(), j.ev)
	return res, &outbox.Invocation{
		Function:    v.name,
		Version:     v.meta.Version,
		EventID:     j.ev.ID,
		Source:      j.ev.Source,
		Subject:     j.ev.Subject,
		Time:        j.ev.Time,
		Err:         res.Err,
		Duration:    res.Duration,
		MemoryBytes: res.MemoryBytes,
		MemoryCap:   int64(v.limits.Memory),
		Cold:        res.Cold,
		Effects:     res.Effects,
		Logs:        res.Logs,
	}
}

// settle commits an invocation, records it in the stats and the log, and
// applies its publishes and GPIO writes once they are durable.
func (g *Host) settle(d *deployed, v *version, j *job, res *sandbox.Result, inv *outbox.Invocation) outcome {
	seqs, err := g.store.Commit(g.commitDeadline.context(), inv)
	return g.settled(d, v, j, res, seqs, err)
}

// settleAsync is settle for a pipelined job: it queues the commit (in the
// caller's order) and returns; the rest of settle and j.then follow on the
// store's completion goroutine once the commit is durable. The commits of
// one function in flight stay bounded by maxPendingCommits.
func (g *Host) settleAsync(d *deployed, v *version, j *job, res *sandbox.Result, inv *outbox.Invocation) {
	d.commits <- struct{}{}
	d.pending.Add(1)
	g.store.CommitAsync(g.commitDeadline.context(), inv, func(seqs []uint64, err error) {
		o := g.settled(d, v, j, res, seqs, err)
		<-d.commits
		d.pending.Done()
		j.then(o)
	})
}

// settled is what follows a commit: stats, log, and the publishes and GPIO
// writes of an invocation whose effects are durable.
func (g *Host) settled(d *deployed, v *version, j *job, res *sandbox.Result, seqs []uint64, err error) outcome {
	committed := time.Now()
	d.stats.observe(v, res, err, committed.Sub(j.enqueued))
	g.logInvocation(v, &j.ev, res, err)
	if err == nil && res.Err == nil {
		g.apply(v, d.stats, j.ev.Depth, res.Effects)
	}
	return outcome{Err: err, Result: &invocationResult{Function: v.name, Version: v.meta.Version, Sandbox: res, Seqs: seqs, Committed: committed}}
}

// apply carries out publishes and GPIO writes of a committed invocation of
// an event at depth, in call order. They are local actuation: a failure is
// logged and counted, the records are already durable. Publishes carry
// depth+1 into the events they trigger; at max_chain_depth they are
// dropped, counted and logged (at most once per function per interval).
func (g *Host) apply(v *version, stats *fnStats, depth int, effects []edgefn.Effect) {
	for _, e := range effects {
		switch e.Kind {
		case edgefn.EffectPublish:
			if g.pub == nil {
				continue
			}
			if depth >= g.cfg.MaxChainDepth {
				stats.chainDrop(g.log, e.Topic, depth+1)
				continue
			}
			err := g.pub.Publish(g.publishDeadline.context(), e.Topic, e.Payload, e.QoS, false, depth+1)
			if err != nil {
				g.metrics.effectFailed("publish")
				g.log.Warn("publish after commit failed", "function", v.name, "topic", e.Topic, "err", err)
			}
		case edgefn.EffectGPIOWrite:
			if g.gpio == nil {
				continue
			}
			if err := g.gpio.Write(e.Pin, e.High); err != nil {
				g.metrics.effectFailed("gpio_write")
				g.log.Warn("gpio write after commit failed", "function", v.name, "pin", e.Pin, "err", err)
			}
		}
	}
}

func (g *Host) logInvocation(v *version, ev *edgefn.Event, res *sandbox.Result, commitErr error) {
	switch {
	case commitErr != nil:
		g.log.Error("commit failed", "function", v.name, "version", v.meta.Version, "event", ev.ID, "err", commitErr)
	case res.Err != nil:
		var f *edgefn.Failure
		reason := edgefn.ReasonInternal
		if errors.As(res.Err, &f) {
			reason = f.Reason
		}
		g.log.Warn("invocation failed", "function", v.name, "version", v.meta.Version, "event", ev.ID, "reason", reason, "err", res.Err)
	default:
		if !g.log.Enabled(context.Background(), slog.LevelDebug) {
			return // the common case: no per-event log arguments to build
		}
		g.log.Debug("invocation", "function", v.name, "version", v.meta.Version, "event", ev.ID, "duration", res.Duration, "cold", res.Cold)
	}
}
