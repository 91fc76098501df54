package gateway

import (
	"context"
	"time"

	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/triggers"
)

// Status reports the agent's state: the answer of GET /v1/status.
func (g *Host) Status(ctx context.Context) api.Status {
	st := api.Status{Gateway: g.cfg.GatewayID, Started: g.started, UptimeMS: time.Since(g.started).Milliseconds()}
	g.mu.RLock()
	parts := g.statusParts
	g.mu.RUnlock()
	if f := parts.broker; f != nil {
		st.Broker = f()
	}
	for _, u := range g.uplinkStates() {
		st.Uplinks = append(st.Uplinks, uplinkWire(u))
	}
	if f := parts.timers; f != nil {
		st.Timers = f()
	}
	if f := parts.gpio; f != nil {
		st.GPIO = f()
	}
	if f := parts.files; f != nil {
		st.Files = f()
	}
	if g.store != nil {
		s, err := g.store.Stats(ctx)
		if err != nil {
			st.OutboxError = err.Error()
		} else {
			st.Outbox = outboxWire(s)
		}
	}
	for _, fi := range g.functions() {
		st.Functions = append(st.Functions, fi.wire())
	}
	return st
}

// statusParts report the state of the agent's parts (nil: not there).
type statusParts struct {
	broker func() *api.Broker
	timers func() []api.Timer
	gpio   func() *api.GPIO
	files  func() []api.FileWatch
}

func embeddedBrokerWire(s triggers.BrokerStatus) *api.Broker {
	return &api.Broker{Kind: "embedded", Delivered: s.Delivered, Failed: s.Failed, Addr: s.Addr, TLSAddr: s.TLSAddr, Clients: s.Clients,
		Rejected: s.Rejected, AuthRefused: s.AuthRefused, Sockets: s.Sockets, SocketsRefused: s.SocketsRefused, BadConnects: s.BadConnects,
		ConnectTimeouts: s.ConnectTimeouts, ACLDenied: s.ACLDenied, Retained: s.Retained, RetainedBytes: s.RetainedBytes,
		RetainedRefused: s.RetainedRefused, HandlerPanics: s.HandlerPanics, SessionsEvicted: s.SessionsEvicted, Dropped: s.Dropped}
}

func externalBrokerWire(addr string, s triggers.MQTTStatus) *api.Broker {
	return &api.Broker{Kind: "external", Addr: addr, Delivered: s.Delivered, Failed: s.Failed, Connected: s.Connected, LastError: s.LastError,
		Reconnects: s.Reconnects, ForcedReconnects: s.ForcedReconnects, Unrouted: s.Unrouted, Subscribed: s.Subscribed,
		ChainMarks: s.ChainMarks, ChainMarksEvicted: s.ChainMarksEvicted}
}

func uplinkWire(u uplink.State) api.Uplink {
	return api.Uplink{Name: u.Name, Kind: u.Kind, Running: u.Running, Online: u.Online, LastSuccess: u.LastSuccess,
		LastError: u.LastError, LastErrorTime: u.LastErrorTime, Backlog: u.Backlog, OldestAgeMS: u.OldestAge.Milliseconds(),
		InFlight: u.InFlight, Sent: u.Sent, Failed: u.Failed, Retries: u.Retries, Batches: u.Batches, LastDeadLetter: u.LastDeadLetter}
}

func timersWire(ts []triggers.TimerStats) []api.Timer {
	var out []api.Timer
	for _, t := range ts {
		out = append(out, api.Timer{Spec: t.Spec, Fired: t.Fired, Skipped: t.Skipped, Failed: t.Failed, Next: t.Next})
	}
	return out
}

// gpioWire is the GPIO backend and its pins, with the watches' counters
// when watches is not nil.
func gpioWire(devs *devices.GPIO, watches []triggers.GPIOStats) *api.GPIO {
	out := &api.GPIO{Backend: string(devs.Backend())}
	for _, p := range devs.Pins() {
		out.Pins = append(out.Pins, api.Pin{Name: p.Name, Mode: string(p.Mode), High: p.High})
	}
	for _, w := range watches {
		out.Watches = append(out.Watches, api.PinWatch{Pin: w.Pin, Edges: w.Edges, Dropped: w.Dropped, Failed: w.Failed, Error: w.Err})
	}
	return out
}
