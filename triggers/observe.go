package triggers

import "sync/atomic"

// Seen is an MQTT message as an observer sees it: every message through
// the embedded broker, or every message received from the external broker
// (which are those the subscriptions match).
type Seen struct {
	Topic   string
	Payload []byte // the observer must not keep or change it: copy what it keeps
	QoS     byte
	Retain  bool
	// Agent is true for messages the agent published itself (function
	// publishes through the embedded broker).
	Agent bool
}

// observer holds an optional func(Seen), set at any time.
type observer struct{ f atomic.Pointer[func(Seen)] }

func (o *observer) set(f func(Seen)) {
	if f == nil {
		o.f.Store(nil)
		return
	}
	o.f.Store(&f)
}

func (o *observer) see(s Seen) {
	if f := o.f.Load(); f != nil {
		(*f)(s)
	}
}

// Observe calls f with every message the broker receives, before the sink
// sees it, in the publisher's goroutine: f must be quick and must not
// block. nil stops observing.
func (b *Broker) Observe(f func(Seen)) { b.obs.set(f) }

// Observe calls f with every message received from the broker, before the
// sink sees it, in paho's goroutine: f must be quick and must not block.
// nil stops observing.
func (m *MQTT) Observe(f func(Seen)) { m.obs.set(f) }
