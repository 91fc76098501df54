package sandbox

import (
	"context"
	"encoding/binary"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
)

// margin is how far past its deadline a stopped guest may be seen to end on
// a loaded machine; the precise figure is a benchmark, not an assertion.
const margin = time.Second

func TestDeadlineStopsEveryGuest(t *testing.T) {
	r := newRuntime(t, Config{})
	cases := []struct {
		fixture string
		edit    func(*Spec)
	}{
		{"loop", nil},
		{"fib", nil},
		// With a depth budget too large to matter, runaway recursion is
		// stopped by the deadline (or wazero's own stack limit, a trap).
		{"deep", func(s *Spec) { s.Limits.MaxDepth = 1 << 30 }},
		{"cmd", nil},
	}
	for _, c := range cases {
		t.Run(c.fixture, func(t *testing.T) {
			f := load(t, r, c.fixture, func(s *Spec) {
				s.Limits.Timeout = 30 * time.Millisecond
				if c.edit != nil {
					c.edit(s)
				}
			})
			payload := ""
			if c.fixture == "cmd" {
				payload = "spin"
			}
			for i := 0; i < 2; i++ { // the second run is on a fresh instance
				res := f.Invoke(context.Background(), event(payload))
				var fl *edgefn.Failure
				if c.fixture == "deep" {
					fl = res.Failure()
					if fl == nil || (fl.Reason != edgefn.ReasonTimeout && fl.Reason != edgefn.ReasonTrap) {
						t.Fatalf("deep: %v", res.Err)
					}
				} else {
					fl = wantFailure(t, res, edgefn.ReasonTimeout)
				}
				if res.Duration > 30*time.Millisecond+margin {
					t.Errorf("stopped after %s", res.Duration)
				}
				t.Logf("%s: %v in %s", c.fixture, fl, res.Duration)
			}
		})
	}
}

// A guest spinning while other goroutines collect garbage is stopped at its
// deadline. Before wasmbin.Options.Yield this hung the whole process: the
// collector waited for the spinning goroutine, which wazero's compiled code
// never lets Go preempt, and the timer that would stop it was stopped too.
func TestDeadlineUnderGC(t *testing.T) {
	r := newRuntime(t, Config{})
	testutil.GCLoop(t)
	for _, name := range []string{"loop", "fib"} {
		t.Run(name, func(t *testing.T) {
			f := load(t, r, name, func(s *Spec) { s.Limits.Timeout = 50 * time.Millisecond })
			got := make(chan *Result, 1)
			go func() { got <- f.Invoke(context.Background(), event("")) }()
			select {
			case res := <-got:
				fl := wantFailure(t, res, edgefn.ReasonTimeout)
				t.Logf("%s: %v in %s", name, fl, res.Duration)
			case <-time.After(20 * time.Second):
				t.Fatal("the guest was not stopped within 20 s while collections ran")
			}
		})
	}
}

func TestInitializeWithinDeadline(t *testing.T) {
	f := loadAlone(t, "initloop", func(s *Spec) { s.Limits.Timeout = 20 * time.Millisecond })
	fl := wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTimeout)
	if !strings.HasPrefix(fl.Message, "_initialize: deadline of 20ms exceeded") {
		t.Errorf("message %q", fl.Message)
	}
}

// deadlineOnly has a deadline but no Done channel, so only the instance's
// timer (not a context callback) can stop the guest.
type deadlineOnly struct {
	context.Context
	d time.Time
}

func (c deadlineOnly) Deadline() (time.Time, bool) { return c.d, true }

// spin is a payload that keeps the count fixture busy for seconds.
var spin = strings.Repeat("x", 2_000_000)

// The timer is left armed after a warm call; a later call with an earlier
// deadline must re-arm it.
func TestWarmTimerRearmsForEarlierDeadline(t *testing.T) {
	f := loadAlone(t, "count", func(s *Spec) { s.Limits.Timeout = time.Minute })
	wantOK(t, f.Invoke(context.Background(), event("x"))) // arms the timer a minute ahead
	ctx := deadlineOnly{context.Background(), time.Now().Add(50 * time.Millisecond)}
	res := f.Invoke(ctx, event(spin))
	wantFailure(t, res, edgefn.ReasonTimeout)
	if res.Cold {
		t.Error("the spinning call was not on the warm instance")
	}
	if res.Duration > 50*time.Millisecond+margin {
		t.Errorf("stopped after %s", res.Duration)
	}
}

// The timer armed by an earlier call fires before a later call's deadline:
// it must re-arm itself, not stop the later call early.
func TestWarmTimerRearmsForLaterDeadline(t *testing.T) {
	const timeout = 150 * time.Millisecond
	f := loadAlone(t, "count", func(s *Spec) { s.Limits.Timeout = timeout })
	first := time.Now()
	wantOK(t, f.Invoke(context.Background(), event("x"))) // arms the timer for first+timeout
	// Start the spinning call late enough that its deadline is well after
	// the one the timer is armed for.
	for time.Since(first) < timeout/2 {
		wantOK(t, f.Invoke(context.Background(), event("x")))
	}
	res := f.Invoke(context.Background(), event(spin))
	wantFailure(t, res, edgefn.ReasonTimeout)
	if res.Duration < timeout {
		t.Errorf("stopped after %s, before its deadline of %s", res.Duration, timeout)
	}
}

// A deadline already past when the guest would start is a timeout, not the
// guest's return code (its results were never written).
func TestDeadlinePassedBeforeCallIsTimeout(t *testing.T) {
	f := loadAlone(t, "echo", nil)
	for _, warm := range []bool{false, true} {
		if warm {
			wantOK(t, f.Invoke(context.Background(), event("x")))
		}
		ctx := deadlineOnly{context.Background(), time.Now().Add(-time.Second)}
		wantFailure(t, f.Invoke(ctx, event("x")), edgefn.ReasonTimeout)
	}
}

func TestCancelStopsGuest(t *testing.T) {
	f := loadAlone(t, "loop", func(s *Spec) { s.Limits.Timeout = time.Minute })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	res := f.Invoke(ctx, event(""))
	wantFailure(t, res, edgefn.ReasonTimeout)
	if res.Duration > margin {
		t.Errorf("stopped after %s", res.Duration)
	}
}

func TestDeepRecursionTraps(t *testing.T) {
	f := loadAlone(t, "deep", func(s *Spec) { s.Limits.Timeout = 10 * time.Second })
	fl := wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTrap)
	want := "call depth exceeded"
	if !compiled() {
		// wazero's interpreter (32-bit ARM) has a call stack of its own,
		// shallower than the default max_depth: it traps first.
		want = "stack overflow"
	}
	if !strings.Contains(fl.Message, want) && !strings.Contains(fl.Message, "call depth exceeded") {
		t.Errorf("message %q, want %q", fl.Message, want)
	}
}

// compiled reports whether wazero compiles to native code here (amd64,
// arm64) rather than interpreting.
func compiled() bool { return runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" }

func TestMemoryCap(t *testing.T) {
	f := loadAlone(t, "grow", func(s *Spec) { s.Limits.Memory = 2 * edgefn.MiB })
	res := f.Invoke(context.Background(), event(""))
	fl := wantFailure(t, res, edgefn.ReasonMemory)
	if res.MemoryBytes > uint64(2*edgefn.MiB) {
		t.Errorf("memory grew to %d past the cap", res.MemoryBytes)
	}
	if !strings.Contains(fl.Message, "2 MiB") {
		t.Errorf("message %q does not name the cap", fl.Message)
	}
}

// Tables count against limits.memory: a table.grow bomb is refused without allocating, and
// memory and tables share the cap exactly.
func TestTableGrowCountsAgainstMemory(t *testing.T) {
	r := newRuntime(t, Config{})
	f := load(t, r, "tablegrow", func(s *Spec) { s.Limits.Memory = edgefn.MiB })
	fl := wantFailure(t, f.Invoke(context.Background(), event("bomb")), edgefn.ReasonMemory)
	if !strings.Contains(fl.Message, "table.grow failed at the cap of 1 MiB") {
		t.Errorf("bomb: %q", fl.Message)
	}
	// One page of memory leaves 960 KiB, 122,880 elements, for the table; then memory cannot grow.
	for i := 0; i < 2; i++ { // the second run is on the warm instance, its table already full
		res := f.Invoke(context.Background(), event("fill"))
		wantOK(t, res)
		size, grow := filled(t, res)
		if size != 122880 || grow != -1 {
			t.Errorf("run %d: table size %d, memory.grow %d; want 122880, -1", i, size, grow)
		}
	}
	// With 2 MiB, the table stops at 2 MiB less two pages and memory still grew first.
	f = load(t, r, "tablegrow", func(s *Spec) { s.Limits.Memory = 2 * edgefn.MiB })
	res := f.Invoke(context.Background(), event("fill"))
	wantOK(t, res)
	if size, grow := filled(t, res); size != (2<<20-65536)/8/4096*4096 || grow != -1 {
		t.Errorf("2 MiB: table size %d, memory.grow %d", size, grow)
	}
}

// filled decodes what tablegrow's fill emits: the table size and memory.grow's result.
func filled(t *testing.T, res *Result) (size, grow int32) {
	t.Helper()
	if len(res.Effects) != 1 || len(res.Effects[0].Payload) != 8 {
		t.Fatalf("effects %+v", res.Effects)
	}
	p := res.Effects[0].Payload
	return int32(binary.LittleEndian.Uint32(p)), int32(binary.LittleEndian.Uint32(p[4:]))
}

// A memory.grow leaves room for the tables' elements.
func TestMemoryGrowCountsTables(t *testing.T) {
	f := loadAlone(t, "tablegrow", func(s *Spec) { s.Limits.Memory = edgefn.MiB + 8*edgefn.KiB })
	res := f.Invoke(context.Background(), event("fill"))
	wantOK(t, res)
	// 1 MiB + 8 KiB - 64 KiB is 124,928 elements; the loop stops at 122,880 (a multiple of
	// 4096): 16 KiB are left, less than a page.
	if size, grow := filled(t, res); size != 122880 || grow != -1 {
		t.Errorf("table size %d, memory.grow %d; want 122880, -1", size, grow)
	}
}

func TestTrapKeepsLogsDropsEffects(t *testing.T) {
	r := newRuntime(t, Config{})
	f := load(t, r, "trap", nil)
	res := f.Invoke(context.Background(), event(""))
	fl := wantFailure(t, res, edgefn.ReasonTrap)
	if !strings.Contains(fl.Message, "unreachable") {
		t.Errorf("message %q", fl.Message)
	}
	if len(res.Logs) != 1 || res.Logs[0].Message != "about to trap" || res.Logs[0].Level != edgefn.LogWarn {
		t.Errorf("logs %+v", res.Logs)
	}

	g := load(t, r, "fail", nil)
	res = g.Invoke(context.Background(), event(""))
	fl = wantFailure(t, res, edgefn.ReasonExit)
	if res.ExitCode != 7 || !strings.Contains(fl.Message, "7") {
		t.Errorf("exit %d, %q", res.ExitCode, fl.Message)
	}
	if st := g.Stats(); st.Alive != 0 || st.Failures[edgefn.ReasonExit] != 1 {
		t.Errorf("failed instance kept or not counted: %+v", st)
	}
}

func TestWildPointerTrapsInEveryImport(t *testing.T) {
	r := newRuntime(t, Config{KV: &memKV{}, GPIO: pins{"GPIO18": true}})
	f := load(t, r, "oob", func(s *Spec) {
		s.Grants = edgefn.Grants{KV: true, Publish: []string{"#"}, GPIOWrite: []string{"GPIO18"}}
	})
	names := []string{"input", "meta", "emit", "publish", "log", "gpio_write", "gpio_read", "kv_get", "kv_set", "kv_delete"}
	for i, name := range names {
		res := f.Invoke(context.Background(), event(string([]byte{byte(i)})))
		fl := wantFailure(t, res, edgefn.ReasonTrap)
		if !strings.Contains(fl.Message, "edgefn."+name+":") || !strings.Contains(fl.Message, "outside guest memory") {
			t.Errorf("%s: message %q", name, fl.Message)
		}
	}
}

func TestAssemblyScriptAbort(t *testing.T) {
	f := loadAlone(t, "abort", nil)
	fl := wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonTrap)
	if fl.Message != "abort: boom! at assembly/x:7:3" {
		t.Errorf("message %q", fl.Message)
	}
}

func TestOutputLimits(t *testing.T) {
	r := newRuntime(t, Config{})
	f := load(t, r, "bigemit", func(s *Spec) { s.Limits.MaxOutput = 64 * edgefn.KiB })
	fl := wantFailure(t, f.Invoke(context.Background(), event("")), edgefn.ReasonOutputLimit)
	if !strings.Contains(fl.Message, "max_output 64KiB") {
		t.Errorf("message %q", fl.Message)
	}

	// The largest copy is checked before memory is read.
	r2 := newRuntime(t, Config{MaxCopy: 4 * edgefn.KiB})
	g := load(t, r2, "bigemit", nil)
	fl = wantFailure(t, g.Invoke(context.Background(), event("")), edgefn.ReasonOutputLimit)
	if !strings.Contains(fl.Message, "largest copy") {
		t.Errorf("message %q", fl.Message)
	}

	p := load(t, r, "script", func(s *Spec) {
		s.Grants.Publish = []string{"actuators/#"}
		s.Limits.MaxPublishes = 16
	})
	res := p.Invoke(context.Background(), event("pubflood 100 actuators/fan"))
	fl = wantFailure(t, res, edgefn.ReasonOutputLimit)
	if !strings.Contains(fl.Message, "max_publishes (16)") || !strings.Contains(logText(res), "pubflood=-2") {
		t.Errorf("message %q, logs %q", fl.Message, logText(res))
	}
	res = p.Invoke(context.Background(), event("pubflood 16 actuators/fan"))
	wantOK(t, res)
	if len(res.Effects) != 16 {
		t.Errorf("%d effects", len(res.Effects))
	}
}

func TestLogLimit(t *testing.T) {
	f := loadAlone(t, "script", func(s *Spec) { s.Limits.MaxLog = 40 })
	res := f.Invoke(context.Background(), event("log 1 0123456789012345678901234567890123456789\nlog 1 short"))
	wantOK(t, res)
	if res.LogsDropped == 0 {
		t.Errorf("no log dropped: %+v", res.Logs)
	}
}
