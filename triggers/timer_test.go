package triggers

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
)

// longWait is how long a test waits for something that should happen soon.
const longWait = 5 * time.Second

func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

func timerStats(tm *Timers, key string) (TimerStats, bool) {
	for _, s := range tm.Stats() {
		if s.Spec == key {
			return s, true
		}
	}
	return TimerStats{}, false
}

func TestTimerSpecValidate(t *testing.T) {
	for _, tc := range []struct {
		spec TimerSpec
		want string // "" when valid
	}{
		{TimerSpec{Every: 30 * time.Second}, ""},
		{TimerSpec{Cron: "0 * * * *"}, ""},
		{TimerSpec{Cron: "@hourly"}, ""},
		{TimerSpec{Cron: "@every 1h30m"}, ""},
		{TimerSpec{Cron: "CRON_TZ=UTC 30 6 * * mon-fri"}, ""},
		{TimerSpec{}, "set every or cron"},
		{TimerSpec{Every: time.Second, Cron: "@daily"}, "not both"},
		{TimerSpec{Every: -time.Second}, "every -1s: must be positive"},
		{TimerSpec{Every: time.Microsecond}, "shorter than the minimum 10ms"},
		{TimerSpec{Cron: "0 * *"}, `cron "0 * *": expected exactly 5 fields`},
		{TimerSpec{Cron: "0 0 * * * *"}, `expected exactly 5 fields`},
		{TimerSpec{Cron: "@sometimes"}, `cron "@sometimes"`},
		{TimerSpec{Cron: "61 * * * *"}, `cron "61 * * * *": end of range (61) above maximum (59)`},
	} {
		t.Run(tc.spec.Key(), func(t *testing.T) {
			err := tc.spec.Validate()
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTimerSetInvalidChangesNothing(t *testing.T) {
	tm := NewTimers(newRecSink(nil), nil)
	if err := tm.Set([]TimerSpec{{Every: time.Hour}}); err != nil {
		t.Fatal(err)
	}
	err := tm.Set([]TimerSpec{{Every: time.Minute}, {Cron: "bad"}, {Every: -1}})
	if err == nil || !strings.Contains(err.Error(), `cron "bad"`) || !strings.Contains(err.Error(), "every -1ns") {
		t.Fatalf("Set = %v, want both problems", err)
	}
	if st := tm.Stats(); len(st) != 1 || st[0].Spec != "every 1h0m0s" {
		t.Errorf("Stats after a failed Set = %+v", st)
	}
}

func TestTimerEvery(t *testing.T) {
	checkLeaks(t)
	sink := newRecSink(nil)
	tm := NewTimers(sink, nil)
	if err := tm.Set([]TimerSpec{{Every: 20 * time.Millisecond}, {Every: 20 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, tm.Run)
	var prev int64
	for i := range 3 {
		ev := sink.next(t)
		if ev.Source != edgefn.SourceTimer || ev.Subject != "every 20ms" {
			t.Fatalf("event = %+v", ev)
		}
		ms, err := strconv.ParseInt(ev.Meta[MetaScheduled], 10, 64)
		if err != nil || ms <= prev {
			t.Errorf("event %d scheduled_ms = %q after %d", i, ev.Meta[MetaScheduled], prev)
		}
		prev = ms
		var p struct{ Scheduled time.Time }
		if err := json.Unmarshal(ev.Payload, &p); err != nil || p.Scheduled.UnixMilli() != ms {
			t.Errorf("payload %s: %v, want scheduled at %d ms", ev.Payload, err, ms)
		}
	}
	if st, _ := timerStats(tm, "every 20ms"); st.Fired < 3 || st.Next.IsZero() {
		t.Errorf("stats = %+v", st)
	}
}

// heldSink blocks every Deliver until release is closed.
type heldSink struct {
	calls   chan struct{}
	release chan struct{}
}

func (s *heldSink) Deliver(ctx context.Context, ev edgefn.Event) error {
	s.calls <- struct{}{}
	select {
	case <-s.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func TestTimerSkipsWhileDelivering(t *testing.T) {
	checkLeaks(t)
	sink := &heldSink{calls: make(chan struct{}, 100), release: make(chan struct{})}
	tm := NewTimers(sink, nil)
	if err := tm.Set([]TimerSpec{{Every: 20 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, tm.Run)
	<-sink.calls
	waitFor(t, "two skipped fires", func() bool { st, _ := timerStats(tm, "every 20ms"); return st.Skipped >= 2 })
	if st, _ := timerStats(tm, "every 20ms"); st.Fired != 1 {
		t.Errorf("fired %d while the first delivery blocks, want 1", st.Fired)
	}
	close(sink.release)
	waitFor(t, "fires resume", func() bool { st, _ := timerStats(tm, "every 20ms"); return st.Fired >= 3 })
}

func TestTimerDeliverErrorsCounted(t *testing.T) {
	checkLeaks(t)
	sink := newRecSink(func(edgefn.Event) error { return errors.New("queue full") })
	tm := NewTimers(sink, nil)
	if err := tm.Set([]TimerSpec{{Every: 20 * time.Millisecond}}); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, tm.Run)
	waitFor(t, "failures counted", func() bool { st, _ := timerStats(tm, "every 20ms"); return st.Failed >= 2 })
}

func TestTimerSetWhileRunning(t *testing.T) {
	checkLeaks(t)
	var mu sync.Mutex
	counts := map[string]int{}
	sink := SinkFunc(func(ctx context.Context, ev edgefn.Event) error {
		mu.Lock()
		counts[ev.Subject]++
		mu.Unlock()
		return nil
	})
	count := func(k string) int { mu.Lock(); defer mu.Unlock(); return counts[k] }
	tm := NewTimers(sink, nil)
	testutil.Run(t, tm.Run)
	a, b := TimerSpec{Every: 20 * time.Millisecond}, TimerSpec{Every: 25 * time.Millisecond}
	if err := tm.Set([]TimerSpec{a}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a fires", func() bool { return count(a.Key()) >= 2 })
	if err := tm.Set([]TimerSpec{a, b}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "b fires", func() bool { return count(b.Key()) >= 2 })
	if st, _ := timerStats(tm, a.Key()); st.Fired < 2 {
		t.Errorf("unchanged timer restarted: %+v", st)
	}
	if err := tm.Set([]TimerSpec{b}); err != nil {
		t.Fatal(err)
	}
	stoppedAt := count(a.Key())
	mark := count(b.Key())
	waitFor(t, "b keeps firing", func() bool { return count(b.Key()) >= mark+3 })
	if n := count(a.Key()); n > stoppedAt+1 {
		t.Errorf("removed timer fired %d more times", n-stoppedAt)
	}
	if _, ok := timerStats(tm, a.Key()); ok {
		t.Error("removed timer still in Stats")
	}
}

// timerClock lets a test decide when a timer's sleep ends.
type timerClock struct {
	mu     sync.Mutex
	t      time.Time
	sleeps chan sleepReq
}

type sleepReq struct {
	until time.Time
	wake  chan struct{}
}

func newTimerClock(t0 time.Time) *timerClock {
	return &timerClock{t: t0, sleeps: make(chan sleepReq)}
}

func (c *timerClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *timerClock) set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

func (c *timerClock) sleepUntil(ctx context.Context, t time.Time) error {
	r := sleepReq{until: t, wake: make(chan struct{})}
	select {
	case c.sleeps <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-r.wake:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// sleep receives the timer's next sleep request.
func (c *timerClock) sleep(t *testing.T) sleepReq {
	t.Helper()
	select {
	case r := <-c.sleeps:
		return r
	case <-time.After(longWait):
		t.Fatal("timer did not sleep")
	}
	return sleepReq{}
}

func fakeTimers(t *testing.T, sink Sink, t0 time.Time, specs ...TimerSpec) (*Timers, *timerClock) {
	t.Helper()
	clock := newTimerClock(t0)
	tm := NewTimers(sink, nil)
	tm.now, tm.sleepUntil = clock.Now, clock.sleepUntil
	if err := tm.Set(specs); err != nil {
		t.Fatal(err)
	}
	testutil.Run(t, tm.Run)
	return tm, clock
}

// idle waits until spec's timer delivers nothing, so its next fire is
// not skipped.
func idle(t *testing.T, tm *Timers, spec TimerSpec) {
	t.Helper()
	waitFor(t, "delivery done", func() bool {
		tm.timers.mu.Lock()
		defer tm.timers.mu.Unlock()
		return !tm.timers.parts[spec.Key()].p.busy.Load()
	})
}

func TestTimerCron(t *testing.T) {
	checkLeaks(t)
	sink := newRecSink(nil)
	t0 := time.Date(2025, 3, 1, 10, 59, 30, 0, time.UTC)
	spec := TimerSpec{Cron: "CRON_TZ=UTC 0 * * * *"}
	tm, clock := fakeTimers(t, sink, t0, spec)

	r := clock.sleep(t)
	eleven := time.Date(2025, 3, 1, 11, 0, 0, 0, time.UTC)
	if !r.until.Equal(eleven) {
		t.Fatalf("first fire at %v, want %v", r.until, eleven)
	}
	clock.set(eleven.Add(200 * time.Millisecond))
	close(r.wake)
	ev := sink.next(t)
	if ev.Subject != "cron CRON_TZ=UTC 0 * * * *" || ev.Meta[MetaScheduled] != strconv.FormatInt(eleven.UnixMilli(), 10) ||
		string(ev.Payload) != `{"scheduled":"2025-03-01T11:00:00Z"}` || !ev.Time.Equal(eleven.Add(200*time.Millisecond)) {
		t.Errorf("event = %+v payload %s", ev, ev.Payload)
	}
	idle(t, tm, spec)
	// Down for three hours (a suspended host): the missed slots (13:00,
	// 14:00) are counted, not replayed.
	r = clock.sleep(t)
	if want := eleven.Add(time.Hour); !r.until.Equal(want) {
		t.Fatalf("second fire at %v, want %v", r.until, want)
	}
	clock.set(eleven.Add(3*time.Hour + time.Minute))
	close(r.wake)
	sink.next(t)
	r = clock.sleep(t)
	if want := eleven.Add(4 * time.Hour); !r.until.Equal(want) {
		t.Errorf("after a gap next fire at %v, want %v", r.until, want)
	}
	if st, _ := timerStats(tm, spec.Key()); st.Fired != 2 || st.Skipped != 2 || !st.Next.Equal(eleven.Add(4*time.Hour)) {
		t.Errorf("stats = %+v", st)
	}
}

func TestTimerEveryFallsBehind(t *testing.T) {
	checkLeaks(t)
	sink := newRecSink(nil)
	t0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)
	tm, clock := fakeTimers(t, sink, t0, TimerSpec{Every: time.Second})
	r := clock.sleep(t)
	if !r.until.Equal(t0.Add(time.Second)) {
		t.Fatalf("first fire at %v", r.until)
	}
	clock.set(t0.Add(3500 * time.Millisecond))
	close(r.wake)
	sink.next(t)
	r = clock.sleep(t)
	idle(t, tm, TimerSpec{Every: time.Second})
	if !r.until.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("next fire at %v, want on the 1s cadence at +4s", r.until)
	}
	if st, _ := timerStats(tm, "every 1s"); st.Skipped != 2 {
		t.Errorf("skipped = %d, want 2 (slots +2s and +3s)", st.Skipped)
	}
}
