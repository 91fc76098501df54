package edgefn

import "time"

// Isolation says whether a reactor's instances are reused across events.
type Isolation string

// Isolation modes.
const (
	// IsolationWarm reuses pooled instances across events (the default).
	IsolationWarm Isolation = "warm"
	// IsolationFresh gives every event a new instance.
	IsolationFresh Isolation = "fresh"
)

// Limits bound one function's invocations. A zero field means "use the
// agent's default".
type Limits struct {
	// Memory caps the guest's linear memory.
	Memory Size `json:"memory,omitempty"`
	// Timeout is the deadline of one invocation.
	Timeout time.Duration `json:"timeout,omitempty"`
	// Concurrency is the most invocations (and warm instances) alive at once.
	Concurrency int `json:"concurrency,omitempty"`
	// MaxOutput caps the bytes emitted and published by one invocation.
	MaxOutput Size `json:"max_output,omitempty"`
	// MaxPublishes caps the number of publishes of one invocation.
	MaxPublishes int `json:"max_publishes,omitempty"`
	// MaxLog caps the bytes logged by one invocation; lines past it are
	// dropped and counted, the invocation does not fail.
	MaxLog Size `json:"max_log,omitempty"`
	// KeepWarm is how long an idle warm instance is kept before it is
	// closed (scale to zero).
	KeepWarm time.Duration `json:"keep_warm,omitempty"`
	// MaxDepth bounds the guest's call depth.
	MaxDepth int `json:"max_depth,omitempty"`
}

// DefaultLimits are the agent's defaults when neither the manifest nor the
// agent config says otherwise.
var DefaultLimits = Limits{
	Memory:       16 * MiB,
	Timeout:      100 * time.Millisecond,
	Concurrency:  2,
	MaxOutput:    256 * KiB,
	MaxPublishes: 16,
	MaxLog:       16 * KiB,
	KeepWarm:     5 * time.Minute,
	MaxDepth:     10000,
}

// WithDefaults returns l with every zero field taken from d.
func (l Limits) WithDefaults(d Limits) Limits {
	if l.Memory == 0 {
		l.Memory = d.Memory
	}
	if l.Timeout == 0 {
		l.Timeout = d.Timeout
	}
	if l.Concurrency == 0 {
		l.Concurrency = d.Concurrency
	}
	if l.MaxOutput == 0 {
		l.MaxOutput = d.MaxOutput
	}
	if l.MaxPublishes == 0 {
		l.MaxPublishes = d.MaxPublishes
	}
	if l.MaxLog == 0 {
		l.MaxLog = d.MaxLog
	}
	if l.KeepWarm == 0 {
		l.KeepWarm = d.KeepWarm
	}
	if l.MaxDepth == 0 {
		l.MaxDepth = d.MaxDepth
	}
	return l
}
