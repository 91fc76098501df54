package uplink_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/uplink"
)

// feeder is a Source the tests can add records to and inspect.
type feeder interface {
	uplink.Source
	// add commits one record and returns its seq.
	add(t testing.TB, function string, payload []byte) uint64
	// pending counts records neither confirmed nor dead-lettered.
	pending(t testing.TB) int
	// deadLetters returns the dead-lettered seqs and their reasons.
	deadLetters(t testing.TB) map[uint64]string
}

// memSource is an in-memory Source, used by tests of the uplink logic that
// need to see exactly what was confirmed and dead-lettered.
type memSource struct {
	gateway string
	notify  chan struct{}

	mu       sync.Mutex
	next     uint64
	recs     []edgefn.Record // unconfirmed, not dead
	dead     map[uint64]string
	confirms int
}

func newMemSource(gateway string) *memSource {
	return &memSource{gateway: gateway, notify: make(chan struct{}, 1), dead: map[uint64]string{}}
}

func (s *memSource) add(_ testing.TB, fn string, payload []byte) uint64 {
	s.mu.Lock()
	s.next++
	r := edgefn.Record{Seq: s.next, Gateway: s.gateway, Function: fn, Version: 1, Source: edgefn.SourceMQTT,
		Subject: "sensors/" + fn, Time: time.Now(), Payload: payload}
	s.recs = append(s.recs, r)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
	return r.Seq
}

func (s *memSource) Pending(ctx context.Context, after uint64, max, maxBytes int) ([]edgefn.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []edgefn.Record
	size := 0
	for _, r := range s.recs {
		if r.Seq <= after {
			continue
		}
		if len(out) >= max || (len(out) > 0 && size+len(r.Payload) > maxBytes) {
			break
		}
		out = append(out, r)
		size += len(r.Payload)
	}
	return out, ctx.Err()
}

func (s *memSource) Confirm(_ context.Context, seqs []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.confirms++
	s.recs = slices.DeleteFunc(s.recs, func(r edgefn.Record) bool { return slices.Contains(seqs, r.Seq) })
	return nil
}

func (s *memSource) DeadLetter(_ context.Context, seqs []uint64, reason string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		s.dead[q] = reason
	}
	s.recs = slices.DeleteFunc(s.recs, func(r edgefn.Record) bool { return slices.Contains(seqs, r.Seq) })
	return nil
}

func (s *memSource) Notify() <-chan struct{} { return s.notify }

func (s *memSource) pending(testing.TB) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.recs)
}

func (s *memSource) deadLetters(testing.TB) map[uint64]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[uint64]string{}
	for k, v := range s.dead {
		out[k] = v
	}
	return out
}
