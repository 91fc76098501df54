package gateway

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// Returning idle memory. The Go heap grows to twice what is live before it
// collects (GOGC=100) and returns freed memory to the OS only above that,
// so after a burst (thousands of devices reconnecting, a flood of events)
// an agent that then idles keeps the burst's memory: no allocation, no
// collection. Every releaseEvery the agent checks how much memory the Go
// runtime holds (mapped and not returned); when it has grown by more than
// releaseGrowth over the least it held since the last release, it collects
// and returns the free memory (debug.FreeOSMemory: one collection, a few
// milliseconds of CPU for a heap of tens of MiB).
const (
	releaseEvery  = 30 * time.Second
	releaseGrowth = 8 << 20
)

// releaseIdleMemory runs the check until ctx ends.
func releaseIdleMemory(ctx context.Context) error {
	t := time.NewTicker(releaseEvery)
	defer t.Stop()
	base := heldMemory()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			base = releaseStep(base)
		}
	}
}

// releaseStep is one check: it releases when the memory held is more than
// releaseGrowth over base, and returns the next base.
func releaseStep(base uint64) uint64 {
	held := heldMemory()
	if held <= base+releaseGrowth {
		return min(base, held)
	}
	debug.FreeOSMemory()
	return heldMemory()
}

// heldMemory is the memory the Go runtime has mapped and not returned to
// the OS (heap, stacks, its own structures).
func heldMemory() uint64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 || s[1].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return s[0].Value.Uint64() - s[1].Value.Uint64()
}
