package outbox

import "time"

// batchRule decides when a group commit has gathered enough requests. It
// only counts: the gatherer feeds it from the queue and its timers, so the
// rule is tested without SQLite and without a clock.
type batchRule struct {
	maxRows int  // FlushRecords
	window  bool // FlushInterval > 0: wait for more requests after the first
	// expect is how many invocations a batch gathers before it commits
	// without waiting for the window or the quiet time: the size of recent
	// batches (a decaying maximum), so the callers a commit answered are
	// back in the next one without idling once they are.
	expect int
	// rows and invs count the batch being gathered.
	rows, invs int
}

func newBatchRule(cfg Config) batchRule {
	return batchRule{maxRows: cfg.FlushRecords, window: cfg.FlushInterval > 0}
}

// start begins a new batch.
func (r *batchRule) start() { r.rows, r.invs = 0, 0 }

// add counts q into the batch.
func (r *batchRule) add(q *request) {
	r.rows += q.rows()
	if q.kind == opInvoke {
		r.invs++
	}
}

// full says the batch holds FlushRecords rows: commit now.
func (r *batchRule) full() bool { return r.rows >= r.maxRows }

// waits says the batch, once its first request is in, waits up to the
// window for more; otherwise it takes only what is already queued.
func (r *batchRule) waits() bool { return r.window && !r.full() }

// carries says the first request is an uplink's (a confirm or a dead
// letter): it waits up to one window for an invocation to share the commit
// with, instead of costing a transaction of its own.
func (r *batchRule) carries(first *request) bool {
	return first.kind == opConfirm || first.kind == opDeadLetter
}

// carried says the carrying ends with q: an invocation came, or the batch
// is full.
func (r *batchRule) carried(q *request) bool { return q.kind == opInvoke || r.full() }

// callersBack says, when the queue is empty, that as many invocations are in
// as recent commits answered: their callers are back, so commit now rather
// than wait for the window or the quiet time.
func (r *batchRule) callersBack() bool { return r.expect > 1 && r.invs >= r.expect }

// committed ends the batch: expect follows the batch sizes, rising at once
// and decaying by about 1/32 a commit.
func (r *batchRule) committed() { r.expect = max(r.invs, r.expect-(r.expect+31)/32) }

// gatherer collects one batch from the queue: the channels and timers
// around a batchRule.
type gatherer struct {
	rule     batchRule
	queue    <-chan *request
	stop     <-chan struct{}
	interval time.Duration // FlushInterval
	quietFor time.Duration // FlushQuiet; <= 0: no quiet time
	window   *time.Timer   // interval, from the first request
	quiet    *time.Timer   // quietFor, from the last time the queue ran empty
	batch    []*request
}

func newGatherer(cfg Config, queue <-chan *request, stop <-chan struct{}) *gatherer {
	g := &gatherer{rule: newBatchRule(cfg), queue: queue, stop: stop, interval: cfg.FlushInterval, quietFor: cfg.FlushQuiet,
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
	if !g.rule.waits() {
		g.takeQueued()
		return g.batch
	}
	if g.rule.carries(first) {
		g.carry()
	}
	g.window.Reset(g.interval)
	defer g.window.Stop()
	defer g.quiet.Stop()
	for g.takeQueued() {
		if g.rule.callersBack() {
			return g.batch
		}
		// Wait for more, but not past the window, and not for long once
		// arrivals stop (every caller of a burst is probably in already).
		if g.quietFor > 0 {
			g.quiet.Reset(g.quietFor)
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

// carry waits up to one window for an invocation to join an uplink's request.
func (g *gatherer) carry() {
	g.window.Reset(g.interval)
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
