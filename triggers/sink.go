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

// AsyncSink is a Sink that can acknowledge later: the embedded broker uses
// it to pipeline a device's QoS 1 and 2 messages, so the next message of a
// device is read while the previous one commits.
type AsyncSink interface {
	Sink
	// DeliverAsync is Deliver in two halves. It returns once ev's functions
	// ran and their commits are queued (calls commit in the order they
	// were made), blocking while queues are full as Deliver does, and calls
	// durable exactly once with what Deliver would have returned: after
	// the commit, on another goroutine, or before it returns, on the
	// caller's. durable must not block for long.
	DeliverAsync(ctx context.Context, ev edgefn.Event, durable func(error))
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
