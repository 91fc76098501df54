//go:build wasip1

package guest

import (
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"unsafe"
)

// Handler handles one event. A nil error makes the invocation succeed and
// its effects (emits, publishes, GPIO writes, kv writes) take effect; an
// error is logged at LevelError and fails the invocation, discarding them.
type Handler func(ev Event) error

// The state of the one reactor instance this module becomes. The host calls
// edgefn_handle one event at a time, so none of it needs locking.
var (
	handler Handler
	// inBuf holds the current payload and is reused across events.
	inBuf []byte
	// scratch receives meta and kv values before they are copied out.
	scratch = make([]byte, 0, 256)
	// logBuf is Logf's formatting buffer.
	logBuf []byte
)

// bigPayload is the capacity past which the payload buffer is released after
// an event, so one large payload does not pin memory for the instance's life.
const bigPayload = 256 << 10

// Handle registers the function's handler; a second call replaces it. Call it
// from func init() of package main: a -buildmode=c-shared module runs its
// package initializers in _initialize but never calls main.main.
func Handle(h Handler) { handler = h }

// edgefnHandle is the reactor entry point of ABI v1: 0 is success, 1 a
// handler error, 2 a panic, 3 no handler registered, 4 a bad payload length.
//
//go:wasmexport edgefn_handle
//lint:ignore U1000 called by the host through the wasmexport
func edgefnHandle(payloadLen int32) (rc int32) {
	if handler == nil {
		Log(LevelError, "guest: no handler registered: call guest.Handle from func init() (main does not run in a reactor)")
		return 3
	}
	if payloadLen < 0 {
		Log(LevelError, "guest: negative payload length "+strconv.Itoa(int(payloadLen)))
		return 4
	}
	n := int(payloadLen)
	if cap(inBuf) < n {
		inBuf = make([]byte, n, max(n, 512))
	}
	p := inBuf[:n]
	if n > 0 {
		p = p[:hostInput(&p[0], uint32(n))]
	}
	defer func() {
		if cap(inBuf) > bigPayload {
			inBuf = nil
		}
		if v := recover(); v != nil {
			// runtime.Stack, not runtime/debug.Stack: that package brings in
			// os and adds ~450 KB to every module.
			stack := make([]byte, 4096)
			stack = stack[:runtime.Stack(stack, false)]
			Log(LevelError, "panic: "+panicText(v)+"\n"+string(stack))
			rc = 2
		}
	}()
	if err := handler(Event{payload: p}); err != nil {
		Log(LevelError, err.Error())
		return 1
	}
	return 0
}

func panicText(v any) string {
	switch v := v.(type) {
	case error:
		return v.Error()
	case string:
		return v
	case fmt.Stringer:
		return v.String()
	}
	return "(non-string panic value)"
}

// Event is the event being handled. It is valid only during the handler call.
type Event struct {
	payload []byte
}

// Payload returns the event's payload. The slice is reused for the next
// event: copy what must outlive the handler.
func (ev Event) Payload() []byte { return ev.payload }

// Meta returns the event metadata named key ("source", "subject",
// "event_id", "time_ms", "function", "version", or a trigger's own such as
// "qos" or "edge"), or "" when the event has none. Use LookupMeta to tell an
// empty value from a missing one.
func (ev Event) Meta(key string) string {
	v, _ := ev.LookupMeta(key)
	return v
}

// LookupMeta returns the metadata named key. The error is ErrNotFound when
// the event has no such key, ErrInvalid for an empty key.
func (ev Event) LookupMeta(key string) (string, error) {
	b, err := fetch("meta", key, scratch[:0], hostMeta)
	scratch = b[:0]
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Env returns the manifest's env variable name (a reactor has no WASI
// environment: the agent serves env as the metadata "env.NAME"); ok is
// false when the manifest does not set it.
func Env(name string) (value string, ok bool) {
	b, err := fetch("meta", "env."+name, scratch[:0], hostMeta)
	scratch = b[:0]
	if err != nil {
		return "", false
	}
	return string(b), true
}

// Source returns the kind of trigger that raised the event: "mqtt", "gpio",
// "timer" or "http".
func (ev Event) Source() string { return ev.Meta("source") }

// Subject returns what the event is about: the MQTT topic, the pin, the
// timer's name.
func (ev Event) Subject() string { return ev.Meta("subject") }

// ID returns the event's id, stable across redeliveries.
func (ev Event) ID() string { return ev.Meta("event_id") }

// fetch calls a host import that copies a value into (buf, n) and returns
// the value's full length, growing dst until the value fits, and returns dst
// extended by the value.
func fetch(op, key string, dst []byte, call func(string, *byte, uint32) int32) ([]byte, error) {
	for {
		free := dst[len(dst):cap(dst)]
		rc := call(key, unsafe.SliceData(free), uint32(len(free)))
		if rc < 0 {
			return dst, check(op, key, rc)
		}
		if int(rc) <= len(free) {
			return dst[:len(dst)+int(rc)], nil
		}
		// The value is longer than the room left: grow and ask again (it
		// may have changed in between, hence the loop).
		dst = slices.Grow(dst, int(rc))
	}
}

// Emit adds a record for the outbox and the cloud; it takes effect only if
// the invocation succeeds. The error is ErrOverLimit past limits.max_output.
func Emit(record []byte) error {
	return check("emit", "", hostEmit(unsafe.SliceData(record), uint32(len(record))))
}

// Publish publishes payload to an MQTT topic on the device's broker with QoS
// 0 or 1, after the invocation succeeds. The error is ErrDenied for a topic
// outside allow.publish, ErrInvalid for a topic with wildcards or a bad QoS,
// ErrOverLimit past limits.max_publishes or limits.max_output.
func Publish(topic string, payload []byte, qos byte) error {
	return check("publish", topic, hostPublish(topic, unsafe.SliceData(payload), uint32(len(payload)), uint32(qos)))
}

// Log writes a log line at level. Lines past limits.max_log are dropped by
// the host (and counted), never failing the invocation.
func Log(level Level, msg string) {
	hostLog(int32(level), unsafe.StringData(msg), uint32(len(msg)))
}

// Logf formats with fmt into a reused buffer and logs the line at level.
func Logf(level Level, format string, args ...any) {
	logBuf = fmt.Appendf(logBuf[:0], format, args...)
	hostLog(int32(level), unsafe.SliceData(logBuf), uint32(len(logBuf)))
	if cap(logBuf) > 16<<10 {
		logBuf = nil
	}
}

// KVStore is the function's durable key-value store (allow.kv in
// function.yaml). Writes take effect only if the invocation succeeds; reads
// see the invocation's own writes.
type KVStore struct{}

// KV is the function's key-value store.
var KV KVStore

// Get returns a copy of the value of key. The error is ErrNotFound when key
// has no value, ErrDenied without allow.kv, ErrUnavailable when the agent has
// no store, ErrInvalid for an empty key.
func (KVStore) Get(key string) ([]byte, error) {
	b, err := fetch("kv_get", key, scratch[:0], hostKVGet)
	scratch = b[:0]
	if err != nil {
		return nil, err
	}
	return append(make([]byte, 0, len(b)), b...), nil
}

// AppendGet appends the value of key to dst and returns the extended slice,
// so a caller that reuses dst reads without allocating. Errors as Get; on an
// error dst is returned unchanged.
func (KVStore) AppendGet(dst []byte, key string) ([]byte, error) {
	b, err := fetch("kv_get", key, dst, hostKVGet)
	if err != nil {
		return dst, err
	}
	return b, nil
}

// Set sets key to value (copied by the host). The error is ErrDenied
// without allow.kv, ErrOverLimit for a key over 1024 bytes or a value over
// the agent's largest copy, ErrInvalid for an empty or non-UTF-8 key.
func (KVStore) Set(key string, value []byte) error {
	return check("kv_set", key, hostKVSet(key, unsafe.SliceData(value), uint32(len(value))))
}

// Delete removes key; deleting a missing key is not an error. Errors as Set.
func (KVStore) Delete(key string) error {
	return check("kv_delete", key, hostKVDelete(key))
}

// Pins reads and writes GPIO pins by name ("GPIO17") under the grants
// allow.gpio_read and allow.gpio_write.
type Pins struct{}

// GPIO is the device's GPIO pins.
var GPIO Pins

// Read returns whether pin is high. The error is ErrDenied for a pin not in
// allow.gpio_read or allow.gpio_write, ErrUnavailable when the device has no
// such pin.
func (Pins) Read(pin string) (high bool, err error) {
	rc := hostGPIORead(pin)
	if rc < 0 {
		return false, check("gpio_read", pin, rc)
	}
	return rc == 1, nil
}

// Write sets pin high or low after the invocation succeeds. The error is
// ErrDenied for a pin not in allow.gpio_write, ErrUnavailable when the
// device has no such pin.
func (Pins) Write(pin string, high bool) error {
	var level uint32
	if high {
		level = 1
	}
	return check("gpio_write", pin, hostGPIOWrite(pin, level))
}
