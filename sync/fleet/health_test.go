package fleet

import (
	"encoding/json"
	"testing"
	"time"
)

// The status's health is the difference of the cumulative counters over
// the window, restarting at a new version.
func TestHealthWindow(t *testing.T) {
	h := newHealthTracker(time.Minute)
	t0 := time.Date(2026, 12, 3, 7, 0, 0, 0, time.UTC)
	in := func(version int, inv int64, traps int64) []Installed {
		hl := Health{Invocations: inv}
		if traps > 0 {
			hl.Failures = map[string]int64{"trap": traps}
		}
		return []Installed{{Name: "f", Version: version, Health: hl}}
	}
	// Counters since the agent started: the first sample is the baseline.
	if got := h.observe(t0, in(1, 100, 10))["f"]; got.Invocations != 0 || got.Failures != nil {
		t.Errorf("first sample: %+v", got)
	}
	got := h.observe(t0.Add(30*time.Second), in(1, 150, 12))["f"]
	if got.Invocations != 50 || got.Failures["trap"] != 2 || got.Window != Millis(30*time.Second) {
		t.Errorf("after 30s: %+v", got)
	}
	// Past the window, the baseline moves to the newest sample at least a
	// window old.
	got = h.observe(t0.Add(100*time.Second), in(1, 200, 12))["f"]
	if got.Invocations != 50 || got.Failures != nil || got.Window != Millis(70*time.Second) {
		t.Errorf("after 100s: %+v", got)
	}
	// A new version starts its own health, whatever the name's counters.
	got = h.observe(t0.Add(110*time.Second), in(2, 205, 12))["f"]
	if got.Invocations != 0 || got.Window != 0 {
		t.Errorf("new version: %+v", got)
	}
	got = h.observe(t0.Add(115*time.Second), in(2, 215, 22))["f"]
	if got.Invocations != 10 || got.Failures["trap"] != 10 || got.ErrorRate() != 1 {
		t.Errorf("new version trapping: %+v rate %v", got, got.ErrorRate())
	}
	// Counters reset (the function removed and deployed again).
	if got = h.observe(t0.Add(120*time.Second), in(2, 3, 0))["f"]; got.Invocations != 0 {
		t.Errorf("after a reset: %+v", got)
	}
	// Samples stay bounded under a burst of changes.
	for i := range 1000 {
		h.observe(t0.Add(121*time.Second+time.Duration(i)*time.Millisecond), in(2, int64(10+i), 0))
	}
	if n := len(h.samples["f"]); n > healthSamples {
		t.Errorf("%d samples kept", n)
	}
	// A removed function is forgotten.
	h.observe(t0.Add(200*time.Second), nil)
	if len(h.samples) != 0 {
		t.Errorf("samples of removed functions: %v", h.samples)
	}
	if err := CheckHealthWindow(time.Second); err == nil {
		t.Error("a 1s window accepted")
	}
	if r := (Health{Invocations: 8, Failures: map[string]int64{"trap": 2, "queue_full": 2}}).ErrorRate(); r != 0.4 {
		t.Errorf("error rate with drops: %v, want 4/10", r)
	}
}

func TestMillisJSON(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		json string
	}{{0, "0"}, {1500 * time.Microsecond, "1.5"}, {2 * time.Minute, "120000"}} {
		b, err := json.Marshal(Millis(c.d))
		if err != nil || string(b) != c.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", c.d, b, err, c.json)
		}
		var m Millis
		if err := json.Unmarshal(b, &m); err != nil || time.Duration(m) != c.d {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, time.Duration(m), err, c.d)
		}
	}
	for _, bad := range []string{`"1s"`, `-1`, `1e300`, `true`} {
		var m Millis
		if err := json.Unmarshal([]byte(bad), &m); err == nil {
			t.Errorf("Unmarshal(%s) = %v, want an error", bad, time.Duration(m))
		}
	}
}
