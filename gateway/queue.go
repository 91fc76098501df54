package gateway

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
)

// errQueueClosed is returned for events offered to a function being removed.
var errQueueClosed = errors.New("function is being removed")

// job is one event for one function.
type job struct {
	ev edgefn.Event
	// done receives the outcome once the invocation's effects are durable
	// (or it failed to be); nil for fire-and-forget events.
	done chan outcome
	// enqueued is when the job entered the queue, for latency metrics.
	enqueued time.Time
	// then, instead of done, receives the outcome of a pipelined job
	// (Host.DeliverAsync), and accepted is closed once its commit is
	// queued: the submitter moves on then, in order.
	then     func(outcome)
	accepted chan struct{}
}

// answer reports o to the job's submitter, whichever way it waits.
func (j *job) answer(o outcome) {
	switch {
	case j.then != nil:
		if j.accepted != nil {
			close(j.accepted)
		}
		j.then(o)
	case j.done != nil:
		j.done <- o
	}
}

// outcome is what a job's submitter learns.
type outcome struct {
	// Err is nil when the invocation's records (or its failure record) are
	// durable, so the source may be acknowledged.
	Err error
	// Result is the invocation's result; nil if it never ran.
	Result *invocationResult
}

// queue is one function's bounded queue and its elastic worker pool: at most
// max workers, started as events arrive and stopped after idle, so an idle
// function costs no goroutine (scale to zero).
type queue struct {
	name   string
	jobs   chan *job
	max    atomic.Int32
	idle   time.Duration
	run    func(context.Context, *job)
	logger *slog.Logger

	sending sync.RWMutex
	closed  atomic.Bool
	mu      sync.Mutex
	workers int
	wg      sync.WaitGroup

	dropped  atomic.Int64
	dropWarn every
}

func newQueue(name string, size, concurrency int, idle time.Duration, run func(context.Context, *job), logger *slog.Logger) *queue {
	q := &queue{name: name, jobs: make(chan *job, size), idle: idle, run: run, logger: logger}
	q.max.Store(int32(concurrency))
	return q
}

// setConcurrency changes the worker bound (a redeploy may change it).
func (q *queue) setConcurrency(n int) { q.max.Store(int32(n)) }

// offer enqueues j. With wait, it blocks while the queue is full until ctx
// ends (backpressure for QoS 1 sources); without, a full queue drops the job
// and reports a queue_full failure, counted and logged.
func (q *queue) offer(ctx context.Context, j *job, wait bool) error {
	// The read lock keeps close from closing the channel under a sender.
	q.sending.RLock()
	defer q.sending.RUnlock()
	if q.closed.Load() {
		return errQueueClosed
	}
	j.enqueued = time.Now()
	select {
	case q.jobs <- j:
		q.grow()
		return nil
	default:
	}
	if !wait {
		n := q.dropped.Add(1)
		if q.dropWarn.allow(time.Second) {
			q.logger.Warn("queue full, event dropped", "function", q.name, "source", j.ev.Source, "subject", j.ev.Subject, "dropped_total", n)
		}
		return &edgefn.Failure{Reason: edgefn.ReasonQueueFull, Message: "function " + q.name + ": queue full"}
	}
	select {
	case q.jobs <- j:
		q.grow()
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// tryInline takes a worker slot for a caller that runs a job on its own
// goroutine (Host.runInline): only while nothing is queued, so the job does
// not overtake queued ones, and the pool is below its bound. The caller
// calls inlineDone when the function returned.
func (q *queue) tryInline() bool {
	q.sending.RLock()
	defer q.sending.RUnlock()
	if q.closed.Load() {
		return false
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs) > 0 || q.workers >= int(q.max.Load()) {
		return false
	}
	q.workers++
	q.wg.Add(1) // close waits for it as for a worker
	return true
}

// inlineDone gives back the slot of tryInline, and starts a worker for the
// jobs queued meanwhile if the pool was full.
func (q *queue) inlineDone() {
	q.mu.Lock()
	q.workers--
	q.mu.Unlock()
	q.wg.Done()
	q.grow()
}

// grow starts a worker when jobs are waiting and the pool is below its bound.
func (q *queue) grow() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed.Load() && len(q.jobs) == 0 || q.workers >= int(q.max.Load()) || len(q.jobs) == 0 && q.workers > 0 {
		return
	}
	q.workers++
	q.wg.Add(1)
	go q.work()
}

func (q *queue) work() {
	defer q.wg.Done()
	t := time.NewTimer(q.idle)
	defer t.Stop()
	for {
		select {
		case j, ok := <-q.jobs:
			if !ok {
				q.exit()
				return
			}
			q.run(context.Background(), j)
			if int(q.max.Load()) < q.currentWorkers() {
				q.exit()
				return
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
			t.Reset(q.idle)
		case <-t.C:
			q.mu.Lock()
			// Only leave when nothing is waiting, else the job would sit
			// until the next offer starts a worker.
			if len(q.jobs) > 0 {
				q.mu.Unlock()
				t.Reset(q.idle)
				continue
			}
			q.workers--
			q.mu.Unlock()
			return
		}
	}
}

func (q *queue) currentWorkers() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.workers
}

func (q *queue) exit() {
	q.mu.Lock()
	q.workers--
	q.mu.Unlock()
}

// depth is the number of queued events.
func (q *queue) depth() int { return len(q.jobs) }

// close stops intake and waits for queued and running jobs to finish, or
// for ctx to end.
func (q *queue) close(ctx context.Context) error {
	if q.closed.Swap(true) {
		return nil
	}
	// Wait out senders blocked on a full queue (workers keep draining), then
	// close the channel: workers finish what is queued and exit.
	q.grow()
	q.sending.Lock()
	close(q.jobs)
	q.sending.Unlock()
	q.mu.Lock()
	if q.workers == 0 && len(q.jobs) > 0 {
		q.workers++
		q.wg.Add(1)
		go q.work()
	}
	q.mu.Unlock()
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
