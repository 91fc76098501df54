package api

import (
	"time"

	"github.com/edgefn/edgefn"
)

// Function is a deployed function: an element of GET /v1/functions and of
// the status, and the answer of GET /v1/functions/{name} (which adds
// Versions and Sequence).
type Function struct {
	Name string `json:"name"`
	// Version is the active version.
	Version  int       `json:"version"`
	Hash     string    `json:"hash,omitempty"`
	Deployed time.Time `json:"deployed,omitzero"`
	// State is idle, warm (instances alive), removing or "not loaded"
	// (stored but refused at start: roll it back or remove it).
	State    string         `json:"state"`
	Triggers []string       `json:"triggers,omitempty"`
	Limits   *Limits        `json:"limits,omitempty"`
	Stats    *FunctionStats `json:"stats,omitempty"`
	// Versions are the stored versions, oldest first (GET
	// /v1/functions/{name} only).
	Versions []Version `json:"versions,omitempty"`
	// Sequence is the sequence of the last signed statement the agent
	// accepted for the function: what deploy/rollback --key sign against
	// (GET /v1/functions/{name} only).
	Sequence uint64 `json:"sequence,omitempty"`
}

// Version is one stored version of a function; deploy and rollback answer
// with the version they activated (Name set).
type Version struct {
	Name    string `json:"name,omitempty"`
	Version int    `json:"version"`
	Active  bool   `json:"active,omitempty"`
	// Hash is the sha256 of the manifest and the module together;
	// ManifestSHA256 and ModuleSHA256 each alone (what a signed rollback
	// names).
	Hash           string    `json:"hash"`
	ManifestSHA256 string    `json:"manifest_sha256,omitempty"`
	ModuleSHA256   string    `json:"module_sha256,omitempty"`
	Deployed       time.Time `json:"deployed"`
	// Signer is the base64 public key that signed the deploy, if any.
	Signer string `json:"signer,omitempty"`
	// Origin is "api" or the manifest path the version was loaded from.
	Origin string `json:"origin,omitempty"`
}

// Limits are a function's effective limits.
type Limits struct {
	MemoryBytes    uint64  `json:"memory_bytes,omitempty"`
	TimeoutMS      float64 `json:"timeout_ms,omitempty"`
	Concurrency    int     `json:"concurrency,omitempty"`
	MaxOutputBytes uint64  `json:"max_output_bytes,omitempty"`
	MaxPublishes   int     `json:"max_publishes,omitempty"`
	MaxLogBytes    uint64  `json:"max_log_bytes,omitempty"`
	KeepWarmMS     float64 `json:"keep_warm_ms,omitempty"`
	MaxDepth       int     `json:"max_depth,omitempty"`
}

// LimitsOf is l on the wire.
func LimitsOf(l edgefn.Limits) *Limits {
	return &Limits{
		MemoryBytes: uint64(l.Memory), TimeoutMS: Millis(l.Timeout), Concurrency: l.Concurrency,
		MaxOutputBytes: uint64(l.MaxOutput), MaxPublishes: l.MaxPublishes, MaxLogBytes: uint64(l.MaxLog),
		KeepWarmMS: Millis(l.KeepWarm), MaxDepth: l.MaxDepth,
	}
}

// FunctionStats are a function's live counters since the agent started.
type FunctionStats struct {
	Invocations int64 `json:"invocations"`
	// Errors counts failed invocations (and events dropped before running)
	// by reason.
	Errors map[string]int64 `json:"errors,omitempty"`
	Cold   int64            `json:"cold"`
	Warm   int64            `json:"warm"`
	// P50MS and P99MS are the run time of the last 1024 invocations;
	// LatencyP50MS and LatencyP99MS from the event's arrival to its commit.
	P50MS        float64   `json:"p50_ms"`
	P99MS        float64   `json:"p99_ms"`
	LatencyP50MS float64   `json:"latency_p50_ms"`
	LatencyP99MS float64   `json:"latency_p99_ms"`
	GBSeconds    float64   `json:"gb_seconds"`
	Last         time.Time `json:"last,omitzero"`
	QueueDepth   int       `json:"queue_depth"`
	Dropped      int64     `json:"dropped"`
	// ChainDropped counts publishes dropped at max_chain_depth.
	ChainDropped int64 `json:"chain_dropped"`
}

// Removed is the answer of DELETE /v1/functions/{name}.
type Removed struct {
	Removed string `json:"removed"`
}

// Invocation is what one invocation did: the answer of POST
// /v1/functions/{name}/invoke, and what edgefn run prints.
type Invocation struct {
	Function string `json:"function"`
	Version  int    `json:"version,omitempty"`
	// Outcome is ok or the failure reason (timeout, trap, memory, exit…);
	// Message says more about a failure.
	Outcome     string  `json:"outcome"`
	Message     string  `json:"message,omitempty"`
	DurationMS  float64 `json:"duration_ms"`
	Cold        bool    `json:"cold"`
	MemoryBytes uint64  `json:"memory_bytes,omitempty"`
	// ExitCode is edgefn_handle's return value or a command's exit code,
	// when not 0.
	ExitCode  int         `json:"exit_code,omitempty"`
	Records   []Record    `json:"records,omitempty"`
	Published []Published `json:"published,omitempty"`
	KV        []KVWrite   `json:"kv,omitempty"`
	GPIO      []GPIOWrite `json:"gpio,omitempty"`
	Logs      []LogLine   `json:"logs,omitempty"`
	// LogsDropped counts log lines over the function's max_log.
	LogsDropped int `json:"logs_dropped,omitempty"`
}

// Record is an emitted record; ID is its stable id (<gateway>:<seq>) once
// committed by an agent (none from edgefn run, or after a failure).
type Record struct {
	ID string `json:"id,omitempty"`
	Data
}

// Published is a publish an invocation made.
type Published struct {
	Topic string `json:"topic"`
	QoS   byte   `json:"qos"`
	Data
}

// KVWrite is a kv_set (Op "set", the value in Data) or a kv_delete (Op
// "delete").
type KVWrite struct {
	Op  string `json:"op"`
	Key string `json:"key"`
	Data
}

// GPIOWrite is a gpio_write.
type GPIOWrite struct {
	Pin  string `json:"pin"`
	High bool   `json:"high"`
}

// LogLine is a line an invocation logged.
type LogLine struct {
	Time    time.Time `json:"time,omitzero"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

// Logs is the answer of GET /v1/functions/{name}/logs.
type Logs struct {
	Function string     `json:"function"`
	Entries  []LogEntry `json:"entries,omitempty"`
	// Last is the id of the newest entry returned, or the after= given when
	// there is none: pass it back as after= to follow the log.
	Last int64 `json:"last"`
}

// LogEntry is one line of a function's log ring: a line it logged, or the
// failure of an invocation (Reason set). edgefn logs --json prints one a
// line.
type LogEntry struct {
	ID      int64     `json:"id"`
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
	EventID string    `json:"event_id,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// Usage is the answer of GET /v1/usage.
type Usage struct {
	Since     time.Time       `json:"since"`
	Functions []FunctionUsage `json:"functions,omitempty"`
}

// FunctionUsage is one function's metering from the kept invocation
// records.
type FunctionUsage struct {
	Function        string           `json:"function"`
	Invocations     int64            `json:"invocations"`
	Errors          int64            `json:"errors"`
	ErrorsByReason  map[string]int64 `json:"errors_by_reason,omitempty"`
	TotalDurationMS float64          `json:"total_duration_ms"`
	P99DurationMS   float64          `json:"p99_duration_ms"`
	GBSeconds       float64          `json:"gb_seconds"`
	Cold            int64            `json:"cold"`
	Warm            int64            `json:"warm"`
}

// Outbox is the SQLite outbox: the answer of GET /v1/outbox, and part of
// the status (without DeadLetters).
type Outbox struct {
	// Depth and Bytes are the pending records and their budgeted size,
	// against MaxBytes.
	Depth       int64  `json:"depth"`
	Bytes       int64  `json:"bytes"`
	MaxBytes    int64  `json:"max_bytes"`
	OldestAgeMS int64  `json:"oldest_age_ms"`
	LastSeq     uint64 `json:"last_seq"`
	// Drops counts records lost to a bound, by reason.
	Drops           map[string]int64 `json:"drops,omitempty"`
	DeadLetterCount int64            `json:"dead_letter_count"`
	// InvocationRecords is the number of invocations on record.
	InvocationRecords int64              `json:"invocation_records"`
	FileBytes         int64              `json:"file_bytes"`
	Commits           int64              `json:"commits"`
	Functions         map[string]Backlog `json:"functions,omitempty"`
	DeadLetters       []DeadLetter       `json:"dead_letters,omitempty"`
}

// Backlog is one function's pending records in the outbox.
type Backlog struct {
	Depth int64 `json:"depth"`
	Bytes int64 `json:"bytes"`
}

// DeadLetter is a record the cloud refused for good.
type DeadLetter struct {
	RecordHead
	Data
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// PendingRecords is the answer of GET /v1/outbox/records: the oldest
// records waiting for the uplink, decoded.
type PendingRecords struct {
	// Depth is the number of records pending (of the function, when
	// function= is given); Records holds the first of them.
	Depth   int64           `json:"depth"`
	Records []PendingRecord `json:"records,omitempty"`
	// More says records were left out: by n= or by the byte budget.
	More bool `json:"more,omitempty"`
}

// PendingRecord is a record in the outbox, its payload decoded (JSON as
// JSON, text as text, other bytes base64).
type PendingRecord struct {
	RecordHead
	Size int `json:"size"`
	Data
}

// RecordHead says where a record in the outbox comes from: its stable id
// (<gateway>:<seq>), the function version that emitted it, the event's
// source and subject, and the event's time.
type RecordHead struct {
	ID       string    `json:"id"`
	Function string    `json:"function"`
	Version  int       `json:"version"`
	Source   string    `json:"source"`
	Subject  string    `json:"subject"`
	Time     time.Time `json:"time"`
}

// TrafficMessage is one MQTT message of GET /v1/traffic (server-sent
// events named "message"; "missed" events carry how many a slow reader
// lost) and of the console's traffic page.
type TrafficMessage struct {
	Seq    int64     `json:"seq"`
	Time   time.Time `json:"time"`
	Topic  string    `json:"topic"`
	QoS    byte      `json:"qos"`
	Retain bool      `json:"retain,omitempty"`
	Origin string    `json:"origin,omitempty"` // "agent": a function's publish
	Data
	Size int `json:"size"`
	// Truncated: the payload holds the first 1 KiB of Size bytes.
	Truncated bool `json:"truncated,omitempty"`
}

// Status is the answer of GET /v1/status: the agent and its parts.
type Status struct {
	Gateway     string      `json:"gateway"`
	Started     time.Time   `json:"started"`
	UptimeMS    int64       `json:"uptime_ms"`
	Broker      *Broker     `json:"broker,omitempty"`
	Uplinks     []Uplink    `json:"uplinks,omitempty"`
	Timers      []Timer     `json:"timers,omitempty"`
	GPIO        *GPIO       `json:"gpio,omitempty"`
	Files       []FileWatch `json:"files,omitempty"`
	Outbox      *Outbox     `json:"outbox,omitempty"`
	OutboxError string      `json:"outbox_error,omitempty"`
	Functions   []Function  `json:"functions,omitempty"`
}

// Broker is the embedded broker (Kind "embedded") or the connection to an
// external one (Kind "external"); each kind fills its own counters.
type Broker struct {
	Kind string `json:"kind"`
	// Both kinds: messages the functions committed, and refused.
	Delivered uint64 `json:"delivered"`
	Failed    uint64 `json:"failed"`

	// Embedded.
	Addr            string `json:"addr,omitempty"`
	TLSAddr         string `json:"tls_addr,omitempty"`
	Clients         int64  `json:"clients,omitempty"`
	Rejected        uint64 `json:"rejected,omitempty"`
	AuthRefused     uint64 `json:"auth_refused,omitempty"`
	Sockets         int64  `json:"sockets,omitempty"`
	SocketsRefused  uint64 `json:"sockets_refused,omitempty"`
	BadConnects     uint64 `json:"bad_connects,omitempty"`
	ConnectTimeouts uint64 `json:"connect_timeouts,omitempty"`
	ACLDenied       uint64 `json:"acl_denied,omitempty"`
	Retained        int    `json:"retained,omitempty"`
	RetainedBytes   int64  `json:"retained_bytes,omitempty"`
	RetainedRefused uint64 `json:"retained_refused,omitempty"`
	HandlerPanics   uint64 `json:"handler_panics,omitempty"`
	SessionsEvicted uint64 `json:"sessions_evicted,omitempty"`
	Dropped         int64  `json:"dropped,omitempty"`

	// External.
	Connected         bool   `json:"connected,omitempty"`
	LastError         string `json:"last_error,omitempty"`
	Reconnects        uint64 `json:"reconnects,omitempty"`
	ForcedReconnects  uint64 `json:"forced_reconnects,omitempty"`
	Unrouted          uint64 `json:"unrouted,omitempty"`
	Subscribed        int    `json:"subscribed,omitempty"`
	ChainMarks        int    `json:"chain_marks,omitempty"`
	ChainMarksEvicted uint64 `json:"chain_marks_evicted,omitempty"`
}

// Uplink is one uplink to the cloud.
type Uplink struct {
	Name          string    `json:"name"`
	Kind          string    `json:"kind"`
	Running       bool      `json:"running"`
	Online        bool      `json:"online"`
	LastSuccess   time.Time `json:"last_success,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// Backlog is the number of records waiting, OldestAgeMS the age of the
	// oldest.
	Backlog        int    `json:"backlog"`
	OldestAgeMS    int64  `json:"oldest_age_ms"`
	InFlight       int    `json:"in_flight"`
	Sent           uint64 `json:"sent"`
	Failed         uint64 `json:"failed"`
	Retries        uint64 `json:"retries"`
	Batches        uint64 `json:"batches"`
	LastDeadLetter string `json:"last_dead_letter,omitempty"`
}

// Timer is one interval or cron timer.
type Timer struct {
	Spec    string    `json:"spec"`
	Fired   uint64    `json:"fired"`
	Skipped uint64    `json:"skipped"`
	Failed  uint64    `json:"failed"`
	Next    time.Time `json:"next,omitzero"`
}

// FileWatch is a directory watched by a file trigger, and its counters.
type FileWatch struct {
	Dir          string `json:"dir"`
	Function     string `json:"function"`
	Pattern      string `json:"pattern,omitempty"`
	MaxSizeBytes int64  `json:"max_size_bytes"`
	After        string `json:"after"` // move (to .done/) or delete
	// Watching is false when the directory could not be watched (Error).
	Watching bool `json:"watching"`
	// Queued files wait for the function; Processed succeeded; Failed ran
	// and failed, Rejected were refused unrun (both moved to .rejected/);
	// Retries are attempts that made nothing durable.
	Queued    int    `json:"queued"`
	Processed uint64 `json:"processed"`
	Failed    uint64 `json:"failed"`
	Rejected  uint64 `json:"rejected"`
	Retries   uint64 `json:"retries"`
	Error     string `json:"error,omitempty"`
}

// GPIO is the GPIO backend, its pins and the watched pins' counters: part
// of the status, and the answer of GET /v1/gpio (without Watches).
type GPIO struct {
	Backend string     `json:"backend"`
	Pins    []Pin      `json:"pins,omitempty"`
	Watches []PinWatch `json:"watches,omitempty"`
}

// Pin is one GPIO pin's use and level.
type Pin struct {
	Name string `json:"name"`
	Mode string `json:"mode,omitempty"` // input, output, watched; empty: unused
	High bool   `json:"high"`
}

// PinWatch counts a watched pin's edges.
type PinWatch struct {
	Pin     string `json:"pin"`
	Edges   uint64 `json:"edges"`
	Dropped uint64 `json:"dropped"`
	Failed  uint64 `json:"failed"`
	Error   string `json:"error,omitempty"`
}

// PinChange is the answer of POST /v1/gpio/{pin}/pulse (WidthMS set) and
// /level (High set).
type PinChange struct {
	Pin     string  `json:"pin"`
	High    bool    `json:"high,omitempty"`
	WidthMS float64 `json:"width_ms,omitempty"`
}
