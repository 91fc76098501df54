package edgefn

import "time"

// EffectKind says what an Effect does once its invocation is committed.
type EffectKind uint8

// The kinds of effects a function can produce.
const (
	EffectEmit      EffectKind = iota + 1 // a record for the outbox and the cloud
	EffectPublish                         // an MQTT message published locally
	EffectGPIOWrite                       // a pin driven high or low
	EffectKVSet                           // a durable key-value write
	EffectKVDelete                        // a durable key-value delete
)

func (k EffectKind) String() string {
	switch k {
	case EffectEmit:
		return "emit"
	case EffectPublish:
		return "publish"
	case EffectGPIOWrite:
		return "gpio_write"
	case EffectKVSet:
		return "kv_set"
	case EffectKVDelete:
		return "kv_delete"
	}
	return "unknown"
}

// Effect is one thing a function asked for. Effects are collected in call
// order and take effect only if the invocation succeeds, right after its
// commit.
type Effect struct {
	Kind EffectKind
	// Payload is the record body (emit), the message (publish) or the value
	// (kv_set).
	Payload []byte
	// Topic and QoS apply to publish.
	Topic string
	QoS   byte
	// Pin and High apply to gpio_write.
	Pin  string
	High bool
	// Key applies to kv_set and kv_delete.
	Key string
}

// LogLevel is the severity of a function's log line.
type LogLevel int8

// Log levels as numbered in ABI v1.
const (
	LogDebug LogLevel = 0
	LogInfo  LogLevel = 1
	LogWarn  LogLevel = 2
	LogError LogLevel = 3
)

func (l LogLevel) String() string {
	switch l {
	case LogDebug:
		return "debug"
	case LogInfo:
		return "info"
	case LogWarn:
		return "warn"
	case LogError:
		return "error"
	}
	return "unknown"
}

// LogLine is one line a function logged (log import, or stderr of a command
// module). Logs are kept even when the invocation fails.
type LogLine struct {
	Time    time.Time
	Level   LogLevel
	Message string
}
