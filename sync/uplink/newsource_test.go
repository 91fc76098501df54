package uplink_test

import "testing"

// newSource returns the Source the contract suite drains.
func newSource(t testing.TB) feeder { return newMemSource("gw1") }
