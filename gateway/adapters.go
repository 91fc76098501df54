package gateway

import (
	"context"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/outbox"
)

// strictUplinkOrder lists the loaded functions whose manifest says
// uplink.order: strict; the uplinks ask it at each drain point (the others'
// new records take the live lane).
func (g *Host) strictUplinkOrder() []string {
	g.mu.RLock()
	defer g.mu.RUnlock()
	var out []string
	for name, d := range g.fns {
		if v := d.cur.Load(); v != nil && v.manifest.Uplink.Order == edgefn.UplinkOrderStrict {
			out = append(out, name)
		}
	}
	return out
}

// kvAdapter lets the sandbox read kv from the outbox.
type kvAdapter struct{ s *outbox.Store }

func (k kvAdapter) Get(ctx context.Context, function, key string) ([]byte, bool, error) {
	return k.s.KVGet(ctx, function, key)
}

// backlogSource gives the uplink the outbox's exact backlog
// (uplink.Backlogger) on top of the uplink.Source methods.
type backlogSource struct{ *outbox.Store }

func (b backlogSource) Backlog(ctx context.Context) (int, time.Time, error) {
	st, err := b.Stats(ctx)
	if err != nil {
		return 0, time.Time{}, err
	}
	return int(st.Depth), time.Now().Add(-st.OldestAge), nil
}
