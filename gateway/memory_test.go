package gateway

import (
	"runtime"
	"testing"
)

// After a burst of garbage the check returns the memory to the OS, and a
// check without growth since does nothing.
func TestReleaseStepReturnsABurst(t *testing.T) {
	base := releaseStep(heldMemory())
	burst := make([][]byte, 64)
	for i := range burst {
		burst[i] = make([]byte, 1<<20)
		burst[i][0] = 1
	}
	runtime.KeepAlive(burst)
	burst = nil
	grown := heldMemory()
	if grown < base+32<<20 {
		t.Fatalf("held %d MiB after a 64 MiB burst, base %d MiB", grown>>20, base>>20)
	}
	after := releaseStep(base)
	if after > grown-32<<20 {
		t.Errorf("held %d MiB after the check, %d MiB before it", after>>20, grown>>20)
	}
	if again := releaseStep(after); again > after+releaseGrowth {
		t.Errorf("base grew from %d to %d MiB without a burst", after>>20, again>>20)
	}
}
