package edgefn

import "time"

// Source names where an event came from.
type Source string

// The event sources the agent knows.
const (
	SourceMQTT  Source = "mqtt"
	SourceGPIO  Source = "gpio"
	SourceTimer Source = "timer"
	SourceHTTP  Source = "http"
	SourceFile  Source = "file"
)

// Valid reports whether s is one of the known sources.
func (s Source) Valid() bool {
	switch s {
	case SourceMQTT, SourceGPIO, SourceTimer, SourceHTTP, SourceFile:
		return true
	}
	return false
}

// Event is one thing that happened and may run functions: an MQTT message,
// a GPIO edge, a timer fire, a file dropped in a directory or an HTTP
// invoke.
type Event struct {
	// ID is unique per event on this gateway.
	ID string
	// Source is the kind of trigger that produced the event.
	Source Source
	// Subject is the MQTT topic, the pin name, the timer spec, the watched
	// directory of a file trigger or the function name for HTTP invokes.
	Subject string
	// Time is when the event happened.
	Time time.Time
	// Payload is the event body handed to the function.
	Payload []byte
	// Meta holds trigger-specific metadata (for example "qos", "edge",
	// "retain"); functions read it with the meta host import.
	Meta map[string]string
	// Depth is the event's place in a chain of functions: 0 for what
	// devices, pins, timers and HTTP calls produce; the publishes of an
	// invocation of an event at depth d produce events at depth d+1. The
	// agent drops publishes that would go past its max_chain_depth, so a
	// function triggering itself cannot loop forever.
	Depth int
}
