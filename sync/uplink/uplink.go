package uplink

import (
	"context"
	"sync"
	"time"
)

// Link is one running connection to the cloud (HTTP or MQTT). The gateway
// runs each with an errgroup and reads State for status and metrics.
type Link interface {
	// Run drains the Source until ctx is cancelled, then returns nil. It
	// returns an error only for a problem that retrying cannot fix.
	Run(ctx context.Context) error
	// State returns a snapshot of the uplink's health; it does no I/O.
	State() State
}

// State is a snapshot of an uplink for `edgefn status` and metrics.
type State struct {
	// Name is the uplink's configured name ("http", "mqtt" by default).
	Name string
	// Kind is "http" or "mqtt".
	Kind string
	// Running is true between the start and the end of Run.
	Running bool
	// Online is true when the last attempt reached the cloud and was
	// answered (a confirmation, or a refusal that dead-lettered records);
	// false after a transport error, a timeout or a retryable status.
	Online bool
	// LastSuccess is when the cloud last confirmed records (zero if never).
	LastSuccess time.Time
	// LastError is the last failure, empty if none since the last success.
	LastError string
	// LastErrorTime is when LastError happened.
	LastErrorTime time.Time
	// Backlog is the number of records waiting. Exact when the Source
	// implements Backlogger (refreshed about once a second), otherwise a
	// lower bound: the records this uplink holds unconfirmed.
	Backlog int
	// OldestAge is the age (by record time) of the oldest record waiting,
	// zero when nothing waits.
	OldestAge time.Duration
	// InFlight is the number of records sent and not yet confirmed.
	InFlight int
	// Sent counts records the cloud confirmed (repeats after a crash count
	// again).
	Sent uint64
	// Failed counts records dead-lettered because the cloud refused them.
	Failed uint64
	// Retries counts failed attempts (transport errors, timeouts,
	// retryable statuses, lost connections).
	Retries uint64
	// Batches counts confirmed batches (HTTP requests or MQTT confirms).
	Batches uint64
	// LastDeadLetter says which records were last dead-lettered and why
	// (kept after later successes; the outbox lists every dead letter).
	LastDeadLetter string
}

// Backlogger is an optional ability of a Source: it counts the records
// still waiting and gives the time of the oldest. When the Source has it,
// State reports the exact backlog; the uplink calls it at most about once a
// second, from its own goroutine.
type Backlogger interface {
	Backlog(ctx context.Context) (count int, oldest time.Time, err error)
}

// backlogEvery bounds how often a Backlogger is asked.
const backlogEvery = time.Second

// tracker holds the State behind a mutex; the run loop writes, State reads.
type tracker struct {
	mu sync.Mutex
	s  State

	// held is the oldest record time and count the run loop holds
	// unconfirmed, used when the Source cannot count its backlog.
	heldOldest time.Time
	heldCount  int
	// seen is a lower bound of the backlog learnt by peeking at the Source
	// while the link is down and nothing is held.
	seenOldest time.Time
	seenCount  int
	// exact backlog from a Backlogger, if any.
	exact       bool
	exactCount  int
	exactOldest time.Time
	lastBacklog time.Time
}

func newTracker(name, kind string) *tracker {
	return &tracker{s: State{Name: name, Kind: kind}}
}

func (t *tracker) snapshot(now time.Time) State {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.s
	s.InFlight = t.heldCount
	s.Backlog = max(t.heldCount, t.seenCount)
	oldest := t.heldOldest
	for _, o := range []time.Time{t.seenOldest, t.exactOldest} {
		if !o.IsZero() && (oldest.IsZero() || o.Before(oldest)) {
			oldest = o
		}
	}
	if t.exact {
		s.Backlog = max(s.Backlog, t.exactCount)
	}
	if s.Backlog > 0 && !oldest.IsZero() {
		s.OldestAge = max(now.Sub(oldest), 0)
	}
	return s
}

func (t *tracker) running(v bool) {
	t.mu.Lock()
	t.s.Running = v
	if !v {
		t.s.Online = false
	}
	t.mu.Unlock()
}

// held records what the run loop holds unconfirmed.
func (t *tracker) held(count int, oldest time.Time) {
	t.mu.Lock()
	t.heldCount, t.heldOldest = count, oldest
	if count > 0 {
		t.seenCount, t.seenOldest = 0, time.Time{}
	}
	t.mu.Unlock()
}

// seen records a peek at the Source (a lower bound of the backlog).
func (t *tracker) seen(count int, oldest time.Time) {
	t.mu.Lock()
	t.seenCount, t.seenOldest = count, oldest
	t.mu.Unlock()
}

func (t *tracker) success(now time.Time, records int) {
	t.mu.Lock()
	t.s.Online = true
	t.s.LastSuccess = now
	t.s.LastError = ""
	t.s.Sent += uint64(records)
	t.s.Batches++
	if t.exact {
		t.exactCount = max(t.exactCount-records, 0)
	}
	t.mu.Unlock()
}

func (t *tracker) online(v bool) {
	t.mu.Lock()
	t.s.Online = v
	t.mu.Unlock()
}

func (t *tracker) deadLettered(records int, what string) {
	t.mu.Lock()
	t.s.LastDeadLetter = what
	t.s.Online = true
	t.s.Failed += uint64(records)
	if t.exact {
		t.exactCount = max(t.exactCount-records, 0)
	}
	t.mu.Unlock()
}

// failure records an error; retry says it counts as a failed attempt and
// the link is considered down.
func (t *tracker) failure(now time.Time, err error, retry bool) {
	t.mu.Lock()
	t.s.LastError = err.Error()
	t.s.LastErrorTime = now
	if retry {
		t.s.Retries++
		t.s.Online = false
	}
	t.mu.Unlock()
}

// refreshBacklog asks the Source for its backlog when it can and when the
// last answer is older than backlogEvery.
func (t *tracker) refreshBacklog(ctx context.Context, src Source, now time.Time) {
	b, ok := src.(Backlogger)
	if !ok {
		return
	}
	t.mu.Lock()
	due := now.Sub(t.lastBacklog) >= backlogEvery
	if due {
		t.lastBacklog = now
	}
	t.mu.Unlock()
	if !due {
		return
	}
	n, oldest, err := b.Backlog(ctx)
	if err != nil {
		return // the count is advisory; the next refresh tries again
	}
	t.mu.Lock()
	t.exact, t.exactCount, t.exactOldest = true, n, oldest
	t.mu.Unlock()
}
