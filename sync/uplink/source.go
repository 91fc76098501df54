package uplink

import (
	"context"

	"github.com/edgefn/edgefn"
)

// Source is what an uplink drains. The outbox (sync/outbox.Store) satisfies
// it; the uplink never touches SQLite itself.
type Source interface {
	// Pending returns the oldest records not yet confirmed whose Seq is
	// greater than after, in Seq order: at most max records and at most
	// maxBytes of payload, but always at least one record when any is
	// pending (so one oversized record cannot stall the queue). It returns
	// an empty slice, not an error, when nothing is pending.
	Pending(ctx context.Context, after uint64, max, maxBytes int) ([]edgefn.Record, error)
	// Confirm records that the cloud accepted these records; the source may
	// then delete them. Confirming an unknown or already confirmed seq is not
	// an error (at-least-once delivery makes repeats normal).
	Confirm(ctx context.Context, seqs []uint64) error
	// DeadLetter parks records the cloud refused for good (a non-retryable
	// 4xx), with the reason (status and response excerpt), so the queue can
	// move on. Dead letters stay visible in status until an operator acts.
	DeadLetter(ctx context.Context, seqs []uint64, reason string) error
	// Notify returns a channel that receives a value (non-blocking send,
	// capacity 1) each time new records are committed, so an idle uplink
	// wakes without polling.
	Notify() <-chan struct{}
}
