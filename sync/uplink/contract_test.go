package uplink_test

import (
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/sync/uplink/internal/receiver"
)

// cloud is the far end of an uplink in the contract suite.
type cloud interface {
	// newUplink builds an uplink of this kind draining src into the cloud.
	newUplink(t *testing.T, src uplink.Source) uplink.Link
	// down makes the cloud unreachable; up brings it back.
	down(t *testing.T)
	up(t *testing.T)
	// lines returns everything received, in arrival order, with duplicates.
	lines() []receiver.Line
	// linesSince returns lines()[i:]: pollers copy only what is new.
	linesSince(i int) []receiver.Line
}

func testLogger(t testing.TB) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("test", t.Name())
	}
	return slog.New(slog.DiscardHandler)
}

// fastBackoff keeps tests quick while still exercising the backoff path.
var fastBackoff = uplink.Backoff{Min: 20 * time.Millisecond, Max: 300 * time.Millisecond}

// strict lists the functions the test uplinks keep in strict order
// (manifest uplink.order: strict); the others take the live lane.
var strict = []string{"door"}

func strictOrder() []string { return strict }

// checkDelivery asserts the at-least-once guarantee and the order of the
// strict functions: every id in want arrived; per strict function, ids
// first appear in increasing seq order; a duplicate carries the same
// content as the first copy. Other functions may see new records before
// the backlog (the live lane).
func checkDelivery(t testing.TB, lines []receiver.Line, want map[string]string) {
	t.Helper()
	first := map[string]receiver.Line{}
	last := map[string]uint64{} // function -> last new seq
	dups := 0
	for _, l := range lines {
		if f, ok := first[l.ID]; ok {
			dups++
			if f.Seq != l.Seq || f.Function != l.Function || string(f.Payload) != string(l.Payload) || string(f.PayloadB64) != string(l.PayloadB64) {
				t.Errorf("duplicate %s differs: %+v vs %+v", l.ID, f, l)
			}
			continue
		}
		first[l.ID] = l
		if slices.Contains(strict, l.Function) && l.Seq <= last[l.Function] {
			t.Errorf("function %s: %s arrived after seq %d (out of order)", l.Function, l.ID, last[l.Function])
		}
		last[l.Function] = l.Seq
	}
	missing := 0
	for id, fn := range want {
		l, ok := first[id]
		switch {
		case !ok:
			missing++
			if missing <= 5 {
				t.Errorf("record %s (function %s) never arrived", id, fn)
			}
		case l.Function != fn:
			t.Errorf("record %s: function %q, want %q", id, l.Function, fn)
		}
	}
	if missing > 5 {
		t.Errorf("... %d records missing in all", missing)
	}
	t.Logf("%d lines, %d unique, %d duplicates", len(lines), len(first), dups)
}

// waitArrived waits until every id in want arrived at the cloud, and fails
// the test naming how many did not (and a few of them) if some are still
// missing after timeout. Each poll reads only the lines that came since the
// previous one: the drain cases poll every 2 ms while thousands of lines
// arrive, and copying and indexing all of them each time (under the
// collector's lock) starved the uplink under the race detector on a loaded
// machine.
func waitArrived(t testing.TB, c cloud, want map[string]string, timeout time.Duration, what string) {
	t.Helper()
	missing := make(map[string]bool, len(want))
	for id := range want {
		missing[id] = true
	}
	next := 0
	deadline := time.Now().Add(timeout)
	for {
		ls := c.linesSince(next)
		next += len(ls)
		for _, l := range ls {
			delete(missing, l.ID)
		}
		if len(missing) == 0 {
			return
		}
		if time.Now().After(deadline) {
			ids := slices.Sorted(maps.Keys(missing))
			t.Fatalf("timed out after %s waiting for %s: %d of %d records missing (%d lines arrived), e.g. %s",
				timeout, what, len(missing), len(want), next, strings.Join(ids[:min(5, len(ids))], ", "))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// received returns a poll that is true once more than n lines arrived.
func received(c cloud, n int) func() bool {
	return func() bool { return len(c.linesSince(n)) > 0 }
}

var functions = []string{"temp", "door", "fan"}

// addN adds n records spread over three functions and returns id -> function.
func addN(t testing.TB, src feeder, gateway string, n int, want map[string]string) {
	for i := range n {
		fn := functions[i%len(functions)]
		seq := src.add(t, fn, fmt.Appendf(nil, `{"i":%d,"fn":%q}`, i, fn))
		want[fmt.Sprintf("%s:%d", gateway, seq)] = fn
	}
}

// filledSource is a new source holding n records of gateway gw1, with the
// delivery keys addN writes for them.
func filledSource(t testing.TB, n int) (feeder, map[string]string) {
	t.Helper()
	src := newSource(t)
	want := map[string]string{}
	addN(t, src, "gw1", n, want)
	return src, want
}

// TestContract runs the same guarantees against both uplinks.
func TestContract(t *testing.T) {
	clouds := []struct {
		name string
		new  func(*testing.T) cloud
	}{{"http", newHTTPCloud}, {"mqtt", newMQTTCloud}}
	for _, c := range clouds {
		t.Run(c.name, func(t *testing.T) {
			t.Run("DeliversInOrder", func(t *testing.T) { testDeliversInOrder(t, c.new(t)) })
			t.Run("CloudDownThenBack", func(t *testing.T) { testCloudDownThenBack(t, c.new(t)) })
			t.Run("RestartMidStream", func(t *testing.T) { testRestartMidStream(t, c.new(t)) })
			t.Run("ResumesAfterStop", func(t *testing.T) { testResumesAfterStop(t, c.new(t)) })
			t.Run("LiveLaneDuringDrain", func(t *testing.T) { testLiveLaneDuringDrain(t, c.new(t)) })
			t.Run("RestartMidDrain", func(t *testing.T) { testRestartMidDrain(t, c.new(t)) })
		})
	}
}

func testDeliversInOrder(t *testing.T, c cloud) {
	src, want := filledSource(t, 120)
	u := c.newUplink(t, src)
	testutil.Run(t, u.Run)
	addN(t, src, "gw1", 120, want) // while running: woken by Notify
	waitArrived(t, c, want, 20*time.Second, "all records at the cloud")
	checkDelivery(t, c.lines(), want)
	testutil.Eventually(t, 5*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
	testutil.Eventually(t, 5*time.Second, "state says all sent", func() bool {
		st := u.State()
		return st.Running && st.Online && st.Sent >= 240 && !st.LastSuccess.IsZero() && st.LastError == "" &&
			st.InFlight == 0 && st.Backlog == 0 && st.OldestAge == 0
	})
}

func testCloudDownThenBack(t *testing.T, c cloud) {
	src := newSource(t)
	want := map[string]string{}
	u := c.newUplink(t, src)
	testutil.Run(t, u.Run)
	addN(t, src, "gw1", 30, want)
	waitArrived(t, c, want, 20*time.Second, "first records")
	c.down(t)
	addN(t, src, "gw1", 90, want)
	testutil.Eventually(t, 20*time.Second, "uplink offline with a backlog", func() bool {
		s := u.State()
		return !s.Online && s.LastError != "" && s.Backlog > 0 && s.OldestAge > 0 && s.Retries > 0
	})
	addN(t, src, "gw1", 30, want)
	c.up(t)
	waitArrived(t, c, want, 20*time.Second, "all records after the cloud came back")
	checkDelivery(t, c.lines(), want)
	testutil.Eventually(t, 5*time.Second, "online again and drained", func() bool { return u.State().Online && src.pending(t) == 0 })
}

func testRestartMidStream(t *testing.T, c cloud) {
	src := newSource(t)
	want := map[string]string{}
	u := c.newUplink(t, src)
	testutil.Run(t, u.Run)
	var mu sync.Mutex
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for range 300 {
			<-tick.C
			mu.Lock()
			addN(t, src, "gw1", 2, want)
			mu.Unlock()
		}
	}()
	testutil.Eventually(t, 10*time.Second, "stream started", received(c, 50))
	c.down(t)
	c.up(t)
	<-done
	mu.Lock()
	defer mu.Unlock()
	waitArrived(t, c, want, 30*time.Second, "all records after the restart")
	checkDelivery(t, c.lines(), want)
}

func testResumesAfterStop(t *testing.T, c cloud) {
	src, want := filledSource(t, 60)
	stop := testutil.Run(t, c.newUplink(t, src).Run)
	waitArrived(t, c, want, 20*time.Second, "first records")
	stop()
	addN(t, src, "gw1", 60, want)
	u := c.newUplink(t, src)
	testutil.Run(t, u.Run)
	waitArrived(t, c, want, 20*time.Second, "records after a restart of the uplink")
	checkDelivery(t, c.lines(), want)
	testutil.Eventually(t, 5*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
}
