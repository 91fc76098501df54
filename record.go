package edgefn

import (
	"strconv"
	"time"
)

// Record is one emitted record as stored in the outbox and sent to the
// cloud. Its ID, "<gateway>:<seq>", is stable across retries so the cloud
// can drop duplicates.
type Record struct {
	// Seq is strictly increasing per gateway and never reused.
	Seq      uint64
	Gateway  string
	Function string
	Version  int
	Source   Source
	Subject  string
	Time     time.Time
	Payload  []byte
}

// ID returns the record's stable id, "<gateway>:<seq>".
func (r *Record) ID() string { return RecordID(r.Gateway, r.Seq) }

// RecordID formats a stable record id.
func RecordID(gateway string, seq uint64) string {
	return gateway + ":" + strconv.FormatUint(seq, 10)
}
