package fleet

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Bounds of fleet.health_window: the status reports each function's health
// over this window (or since its version was activated, if later).
const (
	DefaultHealthWindow = 5 * time.Minute
	MinHealthWindow     = 10 * time.Second
	MaxHealthWindow     = time.Hour
)

// CheckHealthWindow checks a configured window (0: the default).
func CheckHealthWindow(d time.Duration) error {
	if d != 0 && (d < MinHealthWindow || d > MaxHealthWindow) {
		return fmt.Errorf("%v: want %v to %v", d, MinHealthWindow, MaxHealthWindow)
	}
	return nil
}

// healthSamples caps the samples kept per function: the agent samples at
// each status (every minute and on change) and after each activation, so
// an hour's window needs about 60; the cap bounds bursts of changes.
const healthSamples = 256

// sample is a function's cumulative counters at one moment.
type sample struct {
	at       time.Time
	version  int
	inv      int64
	failures map[string]int64
}

// healthTracker turns the gateway's cumulative counters (since the agent
// started, per function name) into health over the last window of the
// running version: the difference between now and the newest sample at
// least a window old, or the first sample of this version.
type healthTracker struct {
	window  time.Duration
	samples map[string][]sample // oldest first
}

func newHealthTracker(window time.Duration) *healthTracker {
	if window == 0 {
		window = DefaultHealthWindow
	}
	return &healthTracker{window: window, samples: map[string][]sample{}}
}

// observe records the counters of the installed functions at now and
// returns each one's health over the window, by name. Functions no longer
// installed are forgotten.
func (h *healthTracker) observe(now time.Time, installed []Installed) map[string]Health {
	out := make(map[string]Health, len(installed))
	seen := make(map[string]bool, len(installed))
	for _, in := range installed {
		seen[in.Name] = true
		cur := sample{at: now, version: in.Version, inv: in.Health.Invocations, failures: in.Health.Failures}
		ss := h.samples[in.Name]
		if n := len(ss); n > 0 && (ss[n-1].version != cur.version || cur.inv < ss[n-1].inv || now.Before(ss[n-1].at)) {
			// Another version (or counters reset, or the clock went
			// back): its health starts now.
			ss = nil
		}
		ss = append(ss, cur)
		// The baseline is the newest sample at least a window old; older
		// ones are no longer needed.
		base := 0
		for i, s := range ss {
			if !s.at.After(now.Add(-h.window)) {
				base = i
			}
		}
		ss = ss[base:]
		if len(ss) > healthSamples {
			// Keep the baseline and the newest: the window reaches a
			// little further back than asked.
			ss = append(ss[:1], ss[len(ss)-healthSamples+1:]...)
		}
		h.samples[in.Name] = ss
		p99 := time.Duration(in.Health.P99)
		if in.P99Since != nil {
			p99 = in.P99Since(ss[0].at)
		}
		out[in.Name] = diff(ss[0], cur, p99)
	}
	for name := range h.samples {
		if !seen[name] {
			delete(h.samples, name)
		}
	}
	return out
}

func diff(base, cur sample, p99 time.Duration) Health {
	hl := Health{Invocations: cur.inv - base.inv, P99: Millis(p99), Window: Millis(cur.at.Sub(base.at))}
	for r, n := range cur.failures {
		if d := n - base.failures[r]; d > 0 {
			if hl.Failures == nil {
				hl.Failures = map[string]int64{}
			}
			hl.Failures[r] = d
		}
	}
	if hl.Invocations == 0 {
		hl.P99 = 0
	}
	return hl
}

// Millis is a duration written in JSON as a number of milliseconds (to the
// microsecond), the one wire form of durations (issue 12).
type Millis time.Duration

// MarshalJSON writes milliseconds.
func (m Millis) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(time.Duration(m).Microseconds())/1e3, 'f', -1, 64), nil
}

// UnmarshalJSON reads milliseconds.
func (m *Millis) UnmarshalJSON(b []byte) error {
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil || ms < 0 || ms > float64(math.MaxInt64/int64(time.Millisecond)) {
		return fmt.Errorf("duration: %q: want a non-negative number of milliseconds", b)
	}
	*m = Millis(time.Duration(ms * float64(time.Millisecond)))
	return nil
}

// ErrorRate is the failures (every reason, drops included) over the events
// (invocations plus events dropped before running), 0 without events.
func (hl Health) ErrorRate() float64 {
	var fails, drops int64
	for r, n := range hl.Failures {
		fails += n
		if r == "queue_full" {
			drops += n
		}
	}
	if events := hl.Invocations + drops; events > 0 {
		return float64(fails) / float64(events)
	}
	return 0
}
