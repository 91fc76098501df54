package triggers

import (
	"context"
	"log/slog"

	"github.com/edgefn/edgefn"
)

// Meta keys triggers set on events, beyond the per-source ones.
const (
	// MetaOrigin is "agent" on MQTT messages the agent published itself
	// (function publishes seen again by the embedded broker), so the sink
	// can refuse to block on them and chains cannot deadlock.
	MetaOrigin = "origin"
	// OriginAgent is the MetaOrigin value of the agent's own publishes.
	OriginAgent = "agent"
)

// Sink receives events. The gateway implements it.
type Sink interface {
	// Deliver hands ev to every function it triggers and returns when their
	// effects are durable (nil: the source may acknowledge) or when they
	// could not be (an error, often an *edgefn.Failure: the source must not
	// acknowledge, so a QoS 1 message is redelivered). Deliver blocks while
	// the functions' queues are full: that is the backpressure a QoS 1
	// source relies on. It returns ctx.Err() if ctx ends first.
	Deliver(ctx context.Context, ev edgefn.Event) error
}

// SinkFunc adapts a function to the Sink interface.
type SinkFunc func(ctx context.Context, ev edgefn.Event) error

// Deliver calls f.
func (f SinkFunc) Deliver(ctx context.Context, ev edgefn.Event) error { return f(ctx, ev) }

// orDiscard returns log, or a logger that drops everything when log is nil:
// the constructors take a nil log to mean "no logging".
func orDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return log
}
