package outbox

import "time"

// batchRule decides when a group commit has gathered enough requests and
// how long a batch may wait for more. It only counts and compares times it
// is given: the gatherer feeds it from the queue and its timers, so the
// rule is tested without SQLite and without a clock.
//
// The wait adapts to the rate of invocations (the time between their
// Commit calls, a moving average): when they come further apart than about
// twice the window, a batch does not wait at all (an idle or slow store
// commits each invocation at once, and an uplink's confirm does not wait
// for an invocation that is not coming); when they come closer, a batch
// waits up to the window (FlushInterval, 2 ms by default) for the ones
// that follow, and stops early once the queue ran dry for about twice the
// usual gap, or once as many invocations are in as recent batches held.
type batchRule struct {
	maxRows  int           // FlushRecords
	interval time.Duration // FlushInterval; <= 0: never wait
	quietMin time.Duration // FlushQuiet; < 0: no quiet time
	// expect is how many invocations a batch gathers before it commits
	// without waiting for the window or the quiet time: the size of recent
	// batches (a decaying maximum), so the callers a commit answered are
	// back in the next one without idling once they are.
	expect int
	// gap is the moving average of the time between invocations' Commit
	// calls; last is the latest such call seen.
	gap  time.Duration
	last time.Time
	// rows and invs count the batch being gathered.
	rows, invs int
	// Whether waiting pays: waitedAt is how many invocations the batch
	// held when it started waiting (-1: it did not wait); payoff is a
	// moving average (0-1024) of the waits that gathered at least one more
	// invocation; unpaid counts the batches that did not wait because it
	// does not pay, so one in probeEvery waits again to check.
	waitedAt int
	payoff   int
	unpaid   int
}

// idleGaps: invocations further apart than this many windows make a
// batch commit without waiting. maxGap bounds one observed gap, so one
// long pause moves the average well past that at once, and a few close
// arrivals bring it back.
const (
	idleGaps = 2
	maxGap   = 8
)

// waitGaps bounds a batch's wait to this many usual gaps: a device whose
// messages are acknowledged only after their commit sends its next one
// only then, so a wait much longer than the gap would slow it down
// instead of gathering more.
const waitGaps = 2

// Waiting stops while fewer than payoffMin/1024 of the recent waits
// gathered another invocation, as with a device that sends its next
// message only after the PUBACK of the last, whose own gap says "soon"
// but which no wait can gather; one batch in probeEvery then waits to
// check whether it pays again.
const (
	payoffMin  = 256
	probeEvery = 16
)

func newBatchRule(cfg Config) batchRule {
	return batchRule{maxRows: cfg.FlushRecords, interval: cfg.FlushInterval, quietMin: cfg.FlushQuiet,
		gap: maxGap * max(cfg.FlushInterval, 0), payoff: 1024, waitedAt: -1}
}

// start begins a new batch.
func (r *batchRule) start() { r.rows, r.invs, r.waitedAt = 0, 0, -1 }

// add counts q into the batch, and its Commit time into the rate.
func (r *batchRule) add(q *request) {
	r.rows += q.rows()
	if q.kind != opInvoke {
		return
	}
	r.invs++
	if q.at.IsZero() {
		return
	}
	if r.last.IsZero() {
		r.last = q.at
		return
	}
	// Callers stamp their time before they queue, so arrivals can be out
	// of order by a little: count such a gap as zero.
	gap := min(max(q.at.Sub(r.last), 0), maxGap*r.interval)
	r.gap += (gap - r.gap) / 4
	if q.at.After(r.last) {
		r.last = q.at
	}
}

// full says the batch holds FlushRecords rows: commit now.
func (r *batchRule) full() bool { return r.rows >= r.maxRows }

// window is how long the batch, once its first request is in, waits for
// more: nothing while invocations come more than idleGaps windows apart
// (it takes only what is already queued), else the time that as many
// invocations as recent batches held (at least waitGaps) take to arrive
// at the usual gap, at most FlushInterval.
func (r *batchRule) window() time.Duration {
	if r.interval <= 0 || r.full() || r.gap > idleGaps*r.interval {
		return 0
	}
	if r.payoff < payoffMin && r.unpaid%probeEvery != probeEvery-1 {
		return 0
	}
	return min(r.interval, time.Duration(max(waitGaps, r.expect))*r.gap)
}

// quiet is how long the queue may stay empty before the batch commits
// anyway (the arrivals of a burst are over): twice the usual gap, at least
// FlushQuiet; 0 when FlushQuiet is negative (no quiet time).
func (r *batchRule) quiet() time.Duration {
	if r.quietMin < 0 {
		return 0
	}
	return max(r.quietMin, 2*r.gap)
}

// carries says the first request is an uplink's (a confirm or a dead
// letter) while invocations are coming: it waits up to one window for one
// to share the commit with, instead of costing a transaction of its own.
func (r *batchRule) carries(first *request) bool {
	return (first.kind == opConfirm || first.kind == opDeadLetter) && r.window() > 0
}

// carried says the carrying ends with q: an invocation came, or the batch
// is full.
func (r *batchRule) carried(q *request) bool { return q.kind == opInvoke || r.full() }

// callersBack says, when the queue is empty, that as many invocations are in
// as recent commits answered: their callers are back, so commit now rather
// than wait for the window or the quiet time.
func (r *batchRule) callersBack() bool { return r.expect > 1 && r.invs >= r.expect }

// waiting says the gatherer starts waiting for more (the queue is empty).
func (r *batchRule) waiting() {
	if r.waitedAt < 0 {
		r.waitedAt = r.invs
	}
}

// committed ends the batch: expect follows the batch sizes, rising at once
// and decaying by about 1/32 a commit; payoff follows whether the wait, if
// the batch waited, gathered another invocation.
func (r *batchRule) committed() {
	r.expect = max(r.invs, r.expect-(r.expect+31)/32)
	switch {
	case r.waitedAt >= 0:
		paid := 0
		if r.invs > r.waitedAt {
			paid = 1024
		}
		r.payoff += (paid - r.payoff) / 4
		r.unpaid = 0
	case r.payoff < payoffMin:
		r.unpaid++
	}
}

// gatherer collects one batch from the queue: the channels and timers
// around a batchRule.
type gatherer struct {
	rule   batchRule
	queue  <-chan *request
	stop   <-chan struct{}
	window *time.Timer // the rule's window, from the first request
	quiet  *time.Timer // the rule's quiet time, from the last time the queue ran empty
	batch  []*request
}

func newGatherer(cfg Config, queue <-chan *request, stop <-chan struct{}) *gatherer {
	g := &gatherer{rule: newBatchRule(cfg), queue: queue, stop: stop,
		window: time.NewTimer(time.Hour), quiet: time.NewTimer(time.Hour)}
	g.window.Stop()
	g.quiet.Stop()
	return g
}

func (g *gatherer) add(q *request) {
	g.batch = append(g.batch, q)
	g.rule.add(q)
}

// gather returns the batch that starts with first. The slice is reused by
// the next call; call committed once the batch is committed.
func (g *gatherer) gather(first *request) []*request {
	g.batch = g.batch[:0]
	g.rule.start()
	g.add(first)
	window := g.rule.window()
	if window <= 0 {
		g.takeQueued()
		return g.batch
	}
	if g.rule.carries(first) {
		g.carry(window)
	}
	g.window.Reset(window)
	defer g.window.Stop()
	defer g.quiet.Stop()
	for g.takeQueued() {
		if g.rule.callersBack() {
			return g.batch
		}
		// Wait for more, but not past the window, and not for long once
		// arrivals stop (every caller of a burst is probably in already).
		g.rule.waiting()
		if q := g.rule.quiet(); q > 0 {
			g.quiet.Reset(q)
		}
		select {
		case q := <-g.queue:
			g.add(q)
		case <-g.quiet.C:
			return g.batch
		case <-g.window.C:
			return g.batch
		case <-g.stop:
			return g.batch // the committer commits the rest of the queue
		}
	}
	return g.batch
}

// carry waits up to window for an invocation to join an uplink's request.
func (g *gatherer) carry(window time.Duration) {
	g.window.Reset(window)
	defer g.window.Stop()
	for {
		select {
		case q := <-g.queue:
			g.add(q)
			if g.rule.carried(q) {
				return
			}
		case <-g.window.C:
			return
		case <-g.stop:
			return
		}
	}
}

// takeQueued adds what is queued without waiting, until the batch is full.
// It reports whether the queue ran empty before that.
func (g *gatherer) takeQueued() bool {
	for !g.rule.full() {
		select {
		case q := <-g.queue:
			g.add(q)
		default:
			return true
		}
	}
	return false
}

// committed ends the batch gathered last.
func (g *gatherer) committed() {
	g.rule.committed()
	clear(g.batch) // drop the requests for the collector
}
