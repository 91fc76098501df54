package console

import (
	"context"
	"time"
)

// Source is what the console shows; the gateway implements it.
type Source interface {
	// Overview is the state of the agent and its parts.
	Overview(ctx context.Context) Overview
	// Functions lists the deployed functions by name.
	Functions(ctx context.Context) []Function
	// Function describes one function; false if there is none by that name.
	Function(ctx context.Context, name string) (FunctionDetail, bool)
}

// Overview is the agent at a glance.
type Overview struct {
	Gateway   string
	Version   string
	Started   time.Time
	Uptime    time.Duration
	Broker    Broker
	Uplinks   []Uplink // none: no uplink configured
	Outbox    Outbox
	GPIO      GPIO
	Functions int
}

// Broker is the embedded broker or the connection to an external one.
type Broker struct {
	Kind      string // "embedded" or "external"
	Addr      string
	Connected bool  // external: the connection is up
	Clients   int64 // embedded: connected clients
	// Messages counts MQTT messages seen since the start; PerSecond is
	// their recent rate.
	Messages  uint64
	PerSecond float64
	Delivered uint64 // committed by the functions
	Failed    uint64 // refused (not committed)
	LastError string
}

// Uplink is one configured uplink to the cloud.
type Uplink struct {
	Name, Kind  string
	Online      bool
	Backlog     int
	LastSuccess time.Time
	LastError   string
}

// Outbox is the SQLite outbox's backlog and drops.
type Outbox struct {
	Depth, Bytes, MaxBytes int64
	OldestAge              time.Duration
	Drops                  []Count
	DeadLetters            int64
	Err                    string
}

// Count is a named count (a drop or failure reason).
type Count struct {
	Name string
	N    int64
}

// GPIO is the GPIO backend and its pins.
type GPIO struct {
	Backend string
	Pins    []Pin
}

// Pin is one GPIO pin's use and level.
type Pin struct {
	Name string
	Mode string // "" unused, "input", "output", "watched"
	High bool
}

// Function is one row of the functions table.
type Function struct {
	Name        string
	Version     int
	Triggers    []string
	State       string // idle, warm, removing
	Invocations int64
	PerSecond   float64
	P50, P99    time.Duration
	Failures    []Count // by reason, including events dropped before running
	Cold, Warm  int64
	QueueDepth  int
}

// FunctionDetail is a function's page.
type FunctionDetail struct {
	Function
	Versions     []Version // oldest first
	LastFailures []Failure // newest first
	Hour         []Minute  // the last hour, oldest first
}

// Version is a stored version of a function.
type Version struct {
	N        int
	Active   bool
	Deployed time.Time
	Hash     string
	Origin   string
}

// Failure is a failed invocation from the function's log.
type Failure struct {
	Time    time.Time
	Reason  string
	Message string
	EventID string
}

// Minute is one minute of a function's history.
type Minute struct {
	Start    time.Time
	Events   int64
	Failures int64
	P99      time.Duration
}
