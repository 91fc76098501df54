package uplink

import (
	"context"
	"time"

	"github.com/edgefn/edgefn"
)

// LaneSource is an optional ability of a Source that gives the uplink a
// live lane: when a backlog drains, records newer than the drain point go
// out in their own batches alongside the backlog, so the cloud sees fresh
// data within a batch or two instead of after the whole backlog. Records
// keep their seq (and so their id): the cloud can still sort by seq.
// Functions listed as strict keep the strict order: their new records
// queue behind the backlog. The outbox (sync/outbox.Store) has it.
type LaneSource interface {
	// Head returns the highest seq committed so far, 0 when none.
	Head(ctx context.Context) (uint64, error)
	// PendingLane is Pending restricted to one lane around the drain point:
	// the backlog lane (live false) holds the records with seq <= point and
	// every record of the strict functions; the live lane (live true) the
	// other functions' records with seq > point.
	PendingLane(ctx context.Context, after uint64, max, maxBytes int, point uint64, strict []string, live bool) ([]edgefn.Record, error)
}

// The two lanes.
const (
	backlogLane = 0
	liveLane    = 1
)

// liveEvery paces the live lane while the backlog lane has records: one
// live batch at most this often, so its round trips cost the drain little,
// and a new record waits at most this plus one backlog batch.
const liveEvery = 100 * time.Millisecond

// lanes reads a Source as a backlog lane and a live lane around a drain
// point, taking turns; without a LaneSource it is one lane (Pending).
type lanes struct {
	src    Source
	ls     LaneSource
	strict func() []string

	point     uint64
	strictFns []string
	cursor    [2]uint64 // last seq read per lane
	liveFirst bool      // the live lane's turn
	lastLive  time.Time // when the live lane last had its turn
}

func newLanes(src Source, strict func() []string) *lanes {
	l := &lanes{src: src, strict: strict}
	l.ls, _ = src.(LaneSource)
	return l
}

// reset sets the drain point at the newest record and reads both lanes
// from their start again (confirmed records are gone from the Source).
func (l *lanes) reset(ctx context.Context) error {
	l.cursor = [2]uint64{}
	if l.ls == nil {
		return nil
	}
	head, err := l.ls.Head(ctx)
	if err != nil {
		return err
	}
	l.point, l.cursor[liveLane], l.liveFirst = head, head, true
	l.strictFns = nil
	if l.strict != nil {
		l.strictFns = l.strict()
	}
	return nil
}

// read returns up to max records of lane after seq after.
func (l *lanes) read(ctx context.Context, lane int, after uint64, max, maxBytes int) ([]edgefn.Record, error) {
	if l.ls == nil {
		if lane == liveLane {
			return nil, nil
		}
		return l.src.Pending(ctx, after, max, maxBytes)
	}
	return l.ls.PendingLane(ctx, after, max, maxBytes, l.point, l.strictFns, lane == liveLane)
}

// next reads the lane whose turn it is past its cursor, or the other lane
// when that one has nothing. The live lane's turn comes at most every
// liveEvery, unless the backlog lane is empty. It does not move the cursors (advance does).
func (l *lanes) next(ctx context.Context, max, maxBytes int) ([]edgefn.Record, int, error) {
	first := backlogLane
	if l.liveFirst && time.Since(l.lastLive) >= liveEvery {
		first = liveLane
	}
	for _, lane := range [2]int{first, 1 - first} {
		recs, err := l.read(ctx, lane, l.cursor[lane], max, maxBytes)
		if err != nil || len(recs) > 0 {
			return recs, lane, err
		}
	}
	return nil, backlogLane, nil
}

// advance moves lane's cursor to seq and gives the other lane the next turn.
func (l *lanes) advance(lane int, seq uint64) {
	l.cursor[lane] = seq
	l.liveFirst = lane == backlogLane
	if lane == liveLane {
		l.lastLive = time.Now()
	}
}

// othersWaiting reports whether the lane other than lane has a record
// pending: a batch then goes out without lingering, so the two lanes take
// turns at full speed.
func (l *lanes) othersWaiting(ctx context.Context, lane int) bool {
	if l.ls == nil {
		return false
	}
	other := 1 - lane
	recs, err := l.read(ctx, other, l.cursor[other], 1, 1)
	return err == nil && len(recs) > 0
}
