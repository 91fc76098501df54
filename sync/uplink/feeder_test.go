package uplink_test

import (
	"testing"

	"github.com/edgefn/edgefn/sync/uplink"
)

// feeder is a Source the tests can add records to and inspect.
type feeder interface {
	uplink.Source
	// add commits one record and returns its seq.
	add(t testing.TB, function string, payload []byte) uint64
	// addMany commits n records of function in a few invocations and
	// returns their seqs.
	addMany(t testing.TB, function string, n int) []uint64
	// pending counts records neither confirmed nor dead-lettered.
	pending(t testing.TB) int
	// deadLetters returns the dead-lettered seqs and their reasons.
	deadLetters(t testing.TB) map[uint64]string
}
