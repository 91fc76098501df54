package uplink_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/outbox"
)

// newSource returns the Source the tests drain: a real SQLite outbox in a
// temporary directory.
func newSource(t testing.TB) feeder {
	return openOutbox(t, t.TempDir()+"/outbox.db", outbox.DurabilityNormal)
}

// outboxSource is the real outbox.Store with the test's feeder methods.
type outboxSource struct {
	*outbox.Store
}

func openOutbox(t testing.TB, path string, d outbox.Durability) *outboxSource {
	t.Helper()
	st, err := outbox.Open(context.Background(), outbox.Config{Path: path, Gateway: "gw1", Durability: d, SkipQuickCheck: true,
		Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("open outbox: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close outbox: %v", err)
		}
	})
	return &outboxSource{st}
}

func (s *outboxSource) add(t testing.TB, fn string, payload []byte) uint64 {
	t.Helper()
	seqs, err := s.Commit(context.Background(), &outbox.Invocation{Function: fn, Version: 1, EventID: "e", Source: edgefn.SourceMQTT,
		Subject: "sensors/" + fn, Time: time.Now(), Effects: []edgefn.Effect{{Kind: edgefn.EffectEmit, Payload: payload}}})
	if err != nil || len(seqs) != 1 {
		t.Errorf("commit: %v %v", seqs, err)
		return 0
	}
	return seqs[0]
}

func (s *outboxSource) addMany(t testing.TB, fn string, n int) []uint64 {
	t.Helper()
	var out []uint64
	for len(out) < n {
		effects := make([]edgefn.Effect, min(n-len(out), 500))
		for i := range effects {
			effects[i] = edgefn.Effect{Kind: edgefn.EffectEmit, Payload: fmt.Appendf(nil, `{"i":%d,"fn":%q}`, len(out)+i, fn)}
		}
		seqs, err := s.Commit(context.Background(), &outbox.Invocation{Function: fn, Version: 1, EventID: "e", Source: edgefn.SourceMQTT,
			Subject: "sensors/" + fn, Time: time.Now(), Effects: effects})
		if err != nil || len(seqs) != len(effects) {
			t.Fatalf("commit: %d seqs, %v", len(seqs), err)
		}
		out = append(out, seqs...)
	}
	return out
}

func (s *outboxSource) pending(t testing.TB) int {
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Errorf("stats: %v", err)
		return -1
	}
	return int(st.Depth)
}

func (s *outboxSource) deadLetters(t testing.TB) map[uint64]string {
	dl, err := s.DeadLetters(context.Background(), 100000)
	if err != nil {
		t.Errorf("dead letters: %v", err)
	}
	out := map[uint64]string{}
	for _, d := range dl {
		out[d.Seq] = d.Reason
	}
	return out
}

// Backlog adapts outbox Stats to uplink.Backlogger, as the gateway does.
func (s *outboxSource) Backlog(ctx context.Context) (int, time.Time, error) {
	st, err := s.Stats(ctx)
	return int(st.Depth), time.Now().Add(-st.OldestAge), err
}
