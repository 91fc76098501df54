package procstat

import (
	"os"
	"testing"
)

func TestSelf(t *testing.T) {
	// Burn a little CPU so the counter is not zero at 10 ms resolution.
	x := 0
	for i := 0; i < 50_000_000; i++ {
		x += i
	}
	_ = x
	if _, err := CPU(os.Getpid()); err != nil {
		t.Fatal(err)
	}
	rss, err := Status(os.Getpid(), "VmRSS")
	if err != nil || rss <= 0 {
		t.Fatalf("VmRSS = %d, %v", rss, err)
	}
	if _, err := Status(os.Getpid(), "NoSuchField"); err == nil {
		t.Fatal("no error for a missing field")
	}
}
