package uplink_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
)

// drainBacklog is big enough that the drain is still under way when the
// test adds new records, on a loaded machine too.
const drainBacklog = 9000

// pileBacklog adds drainBacklog records over the three functions and
// returns the highest seq.
func pileBacklog(t *testing.T, src feeder, want map[string]string) uint64 {
	var last uint64
	for _, fn := range functions {
		for _, seq := range src.addMany(t, fn, drainBacklog/len(functions)) {
			want[fmt.Sprintf("gw1:%d", seq)] = fn
			last = max(last, seq)
		}
	}
	return last
}

// firstArrival returns the index of each id's first arrival.
func firstArrival(c cloud) map[string]int {
	out := map[string]int{}
	for i, l := range c.lines() {
		if _, ok := out[l.ID]; !ok {
			out[l.ID] = i
		}
	}
	return out
}

// testLiveLaneDuringDrain: with a backlog and the cloud back up, records of
// a live function committed during the drain arrive before the backlog
// finishes; a strict function's new records keep their place behind its
// backlog (checkDelivery checks the strict order).
func testLiveLaneDuringDrain(t *testing.T, c cloud) {
	src := newSource(t)
	want := map[string]string{}
	c.down(t)
	u := c.newUplink(t, src)
	testutil.Run(t, u.Run)
	lastBacklog := pileBacklog(t, src, want)
	testutil.Eventually(t, 20*time.Second, "uplink offline", func() bool { return u.State().Retries > 0 })
	c.up(t)
	testutil.Eventually(t, 30*time.Second, "drain under way", received(c, 300))
	var live []string
	for i := range 20 {
		for _, fn := range []string{"temp", "door"} {
			seq := src.add(t, fn, fmt.Appendf(nil, `{"live":%d}`, i))
			id := fmt.Sprintf("gw1:%d", seq)
			want[id] = fn
			if fn == "temp" {
				live = append(live, id)
			}
		}
	}
	waitArrived(t, c, want, 60*time.Second, "every record")
	checkDelivery(t, c.lines(), want)
	at := firstArrival(c)
	end := at[fmt.Sprintf("gw1:%d", lastBacklog)]
	late := slices.DeleteFunc(slices.Clone(live), func(id string) bool { return at[id] < end })
	if len(late) > 0 {
		t.Errorf("%d of %d live records arrived after the backlog finished (e.g. %s at %d, backlog end at %d)",
			len(late), len(live), late[0], at[late[0]], end)
	}
	testutil.Eventually(t, 10*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
}

// testRestartMidDrain: an uplink stopped in the middle of a drain, with new
// records committed meanwhile, loses nothing when it starts again (it takes
// a new drain point).
func testRestartMidDrain(t *testing.T, c cloud) {
	src := newSource(t)
	want := map[string]string{}
	pileBacklog(t, src, want)
	stop := testutil.Run(t, c.newUplink(t, src).Run)
	testutil.Eventually(t, 30*time.Second, "drain under way", received(c, 300))
	addN(t, src, "gw1", 30, want)
	stop()
	addN(t, src, "gw1", 30, want)
	testutil.Run(t, c.newUplink(t, src).Run)
	addN(t, src, "gw1", 30, want)
	waitArrived(t, c, want, 60*time.Second, "every record after the restart")
	checkDelivery(t, c.lines(), want)
	testutil.Eventually(t, 10*time.Second, "outbox drained", func() bool { return src.pending(t) == 0 })
}
