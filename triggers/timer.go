package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"

	"sync/atomic"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/edgefn/edgefn"
)

// MetaScheduled is the Meta key of a timer event's scheduled time, in
// Unix milliseconds.
const MetaScheduled = "scheduled_ms"

// maxCountedMisses bounds the cron slots counted as skipped after a long
// stall (a minutely spec over a week-long suspend).
const maxCountedMisses = 10000

// TimerSpec is one timer: exactly one of Every and Cron is set.
type TimerSpec struct {
	// Every fires at this fixed interval, counted from when the timer
	// starts; at least edgefn.MinEvery.
	Every time.Duration
	// Cron is a standard five-field spec ("min hour dom month dow") or a
	// descriptor such as @hourly or "@every 1h30m", in the agent's local
	// time zone unless it starts with CRON_TZ=Zone.
	Cron string
}

// TimerSpecOf returns the timer spec of a timer trigger.
func TimerSpecOf(t edgefn.Trigger) TimerSpec { return TimerSpec{Every: t.Every, Cron: t.Cron} }

// Key names the timer the way its events' Subject does: "every 30s" or
// "cron 0 * * * *".
func (s TimerSpec) Key() string {
	if s.Every != 0 {
		return "every " + s.Every.String()
	}
	return "cron " + s.Cron
}

// schedule validates s and returns its schedule. The error names the spec
// and what to write instead.
func (s TimerSpec) schedule() (cron.Schedule, error) {
	switch {
	case s.Every != 0 && s.Cron != "":
		return nil, fmt.Errorf("timer: set either every (%s) or cron (%q), not both", s.Every, s.Cron)
	case s.Every < 0:
		return nil, fmt.Errorf("timer every %s: must be positive", s.Every)
	case s.Every > 0 && s.Every < edgefn.MinEvery:
		return nil, fmt.Errorf("timer every %s: shorter than the minimum %s", s.Every, edgefn.MinEvery)
	case s.Every > 0:
		return every(s.Every), nil
	case s.Cron == "":
		return nil, errors.New("timer: set every or cron")
	}
	sched, err := cron.ParseStandard(s.Cron)
	if err != nil {
		return nil, fmt.Errorf("timer cron %q: %v (use five fields \"minute hour day-of-month month day-of-week\", or @yearly, @monthly, @weekly, @daily, @hourly, @every DURATION)", s.Cron, err)
	}
	return sched, nil
}

// Validate reports whether s is a valid timer, naming what is wrong.
func (s TimerSpec) Validate() error {
	_, err := s.schedule()
	return err
}

// every is a fixed interval. Unlike cron.Every it keeps sub-second
// intervals.
type every time.Duration

func (e every) Next(t time.Time) time.Time { return t.Add(time.Duration(e)) }

// TimerStats are one timer's counters.
type TimerStats struct {
	Spec string `json:"spec"`
	// Fired counts fires handed to the sink.
	Fired uint64 `json:"fired"`
	// Skipped counts fires dropped because the previous one was still
	// being delivered, or because the agent fell behind a slot (a late
	// wake-up, a suspended host).
	Skipped uint64 `json:"skipped"`
	// Failed counts fires whose Deliver returned an error.
	Failed uint64 `json:"failed"`
	// Next is the next scheduled fire; zero when not running.
	Next time.Time `json:"next,omitzero"`
}

// Timers fires events for a set of interval and cron timers. Create it
// with NewTimers, give it timers with Set (again on every redeploy) and
// run it with Run. Its methods are safe for concurrent use.
type Timers struct {
	sink Sink
	log  *slog.Logger
	// now and sleepUntil are the clock; tests replace them.
	now        func() time.Time
	sleepUntil func(ctx context.Context, t time.Time) error
	timers     *keyed[*timer] // by TimerSpec.Key
}

type timer struct {
	spec  TimerSpec
	key   string
	sched cron.Schedule

	busy                   atomic.Bool // a fire is being delivered
	fired, skipped, failed atomic.Uint64
	next                   atomic.Int64 // unix ns, 0 when not scheduled
}

// NewTimers returns Timers that deliver to sink. log may be nil.
func NewTimers(sink Sink, log *slog.Logger) *Timers {
	log = orDiscard(log)
	t := &Timers{sink: sink, log: log, now: time.Now, sleepUntil: sleepUntil}
	t.timers = newKeyed("timers", "timer", log,
		func(running, want *timer) bool { return running.spec == want.spec }, t.start)
	return t
}

// sleepUntil waits on the real clock.
func sleepUntil(ctx context.Context, t time.Time) error {
	tm := time.NewTimer(time.Until(t))
	defer tm.Stop()
	select {
	case <-tm.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Set replaces the set of timers: specs that are new start, specs no
// longer listed stop, unchanged ones keep their schedule and counters.
// Duplicates count once. It validates every spec first and returns every
// problem (errors.Join) without changing anything if one is invalid.
func (t *Timers) Set(specs []TimerSpec) error {
	want := map[string]*timer{}
	var errs []error
	for _, s := range specs {
		sched, err := s.schedule()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		want[s.Key()] = &timer{spec: s, key: s.Key(), sched: sched}
	}
	return t.timers.set(want, errs)
}

// Run fires the timers until ctx ends, then stops them, waits for
// deliveries in progress to return and returns nil. Fires missed while
// not running are not replayed. Run may be called once.
func (t *Timers) Run(ctx context.Context) error { return t.timers.run(ctx) }

// start runs tm's scheduler and delivery goroutines.
func (t *Timers) start(ctx, _ context.Context, tm *timer, run func(func())) <-chan struct{} {
	fires := make(chan time.Time, 1) // holds a fire only while busy is set
	run(func() {
		defer close(fires)
		t.schedule(ctx, tm, fires)
	})
	run(func() {
		for at := range fires {
			t.deliver(ctx, tm, at)
			tm.busy.Store(false)
		}
	})
	return nil
}

// schedule sends each slot's time on fires, or counts it skipped when the
// previous fire is still being delivered.
func (t *Timers) schedule(ctx context.Context, tm *timer, fires chan<- time.Time) {
	defer tm.next.Store(0)
	next := tm.sched.Next(t.now())
	for {
		if next.IsZero() { // a cron spec that never fires again
			return
		}
		tm.next.Store(next.UnixNano())
		if t.sleepUntil(ctx, next) != nil {
			return
		}
		if tm.busy.CompareAndSwap(false, true) {
			fires <- next // never blocks: the buffer is empty while not busy
		} else {
			tm.skipped.Add(1)
			t.log.Warn("timer fire skipped: the previous one is still being delivered", "timer", tm.key, "scheduled", next)
		}
		now := t.now()
		if d, ok := tm.sched.(every); ok {
			// Keep the cadence; slots already past are skipped, not replayed.
			next = next.Add(time.Duration(d))
			if behind := now.Sub(next); behind >= 0 {
				n := behind/time.Duration(d) + 1
				tm.skipped.Add(uint64(n))
				next = next.Add(n * time.Duration(d))
			}
		} else {
			// Count the slots already past (up to a bound), then resume
			// after now.
			missed := uint64(0)
			for s := tm.sched.Next(next); !s.IsZero() && !s.After(now) && missed < maxCountedMisses; s = tm.sched.Next(s) {
				missed++
			}
			tm.skipped.Add(missed)
			next = tm.sched.Next(now)
		}
	}
}

type timerPayload struct {
	Scheduled string `json:"scheduled"`
}

func (t *Timers) deliver(ctx context.Context, tm *timer, at time.Time) {
	payload, _ := json.Marshal(timerPayload{Scheduled: at.UTC().Format(time.RFC3339Nano)})
	ev := edgefn.Event{
		Source:  edgefn.SourceTimer,
		Subject: tm.key,
		Time:    t.now(),
		Payload: payload,
		Meta:    map[string]string{MetaScheduled: strconv.FormatInt(at.UnixMilli(), 10)},
	}
	tm.fired.Add(1)
	if err := t.sink.Deliver(ctx, ev); err != nil {
		if ctx.Err() != nil {
			return // stopping
		}
		tm.failed.Add(1)
		t.log.Warn("timer delivery failed", "timer", tm.key, "scheduled", at, "err", err)
	}
}

// Stats returns every timer's counters, sorted by spec.
func (t *Timers) Stats() []TimerStats {
	out := []TimerStats{}
	t.timers.each(func(tm *timer) {
		st := TimerStats{Spec: tm.key, Fired: tm.fired.Load(), Skipped: tm.skipped.Load(), Failed: tm.failed.Load()}
		if n := tm.next.Load(); n != 0 {
			st.Next = time.Unix(0, n)
		}
		out = append(out, st)
	})
	slices.SortFunc(out, func(a, b TimerStats) int { return strings.Compare(a.Spec, b.Spec) })
	return out
}
