package gateway

import (
	"context"
	"time"

	"github.com/edgefn/edgefn/sync/outbox"
)

// Status is what `edgefn status` shows.
type Status struct {
	Gateway   string         `json:"gateway"`
	Started   time.Time      `json:"started"`
	Uptime    string         `json:"uptime"`
	Parts     map[string]any `json:"parts,omitempty"` // broker, uplink, gpio
	Outbox    *outbox.Stats  `json:"outbox,omitempty"`
	OutboxErr string         `json:"outbox_error,omitempty"`
	Functions []FunctionInfo `json:"functions"`
}

// Status reports the agent's state.
func (g *Host) Status(ctx context.Context) Status {
	st := Status{Gateway: g.cfg.GatewayID, Started: g.started, Uptime: time.Since(g.started).Round(time.Second).String(), Parts: map[string]any{}}
	g.mu.RLock()
	for name, f := range g.statusParts {
		st.Parts[name] = f()
	}
	g.mu.RUnlock()
	if g.store != nil {
		s, err := g.store.Stats(ctx)
		if err != nil {
			st.OutboxErr = err.Error()
		} else {
			st.Outbox = &s
		}
	}
	st.Functions = g.functions()
	return st
}
