package triggers

import (
	"bytes"
	"sync"
	"sync/atomic"
	"time"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// brokerStats counts what the embedded broker refused or dropped.
type brokerStats struct {
	listenerStats
	refused         atomic.Uint64 // connections refused by authentication or ACL
	aclDenied       atomic.Uint64 // publishes, subscriptions and deliveries denied
	retainedRefused atomic.Uint64 // retained messages kept as plain ones: budget full
	sessionsEvicted atomic.Uint64 // persistent sessions ended for a new one: too many
	authLog         logLimiter
	aclLog          logLimiter
	retainLog       logLimiter
}

// logLimiter lets one log line through per interval, so a device cannot
// flood the log with refusals.
type logLimiter struct{ next atomic.Int64 }

const logInterval = 10 * time.Second

func (l *logLimiter) allow() bool {
	now := time.Now().UnixNano()
	n := l.next.Load()
	return now >= n && l.next.CompareAndSwap(n, now+int64(logInterval))
}

// retainHook keeps the retained messages within a budget of count and
// payload bytes. A retained publish (or will) that would exceed it is
// delivered as a plain message, not retained.
type retainHook struct {
	mqttsrv.HookBase
	maxCount int
	maxBytes int64
	stats    *brokerStats

	mu    sync.Mutex
	sizes map[string]int // topic → payload bytes of its retained message
	bytes int64
}

func (h *retainHook) ID() string { return "edgefn-retain-budget" }

func (h *retainHook) Provides(b byte) bool {
	return bytes.Contains([]byte{mqttsrv.OnPublish, mqttsrv.OnWill, mqttsrv.OnRetainMessage, mqttsrv.OnRetainedExpired}, []byte{b})
}

// fits reports whether retaining size bytes on topic stays in budget.
func (h *retainHook) fits(topic string, size int) bool {
	if size == 0 {
		return true // deletes the retained message
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	old, had := h.sizes[topic]
	n := len(h.sizes)
	if !had {
		n++
	}
	return n <= h.maxCount && h.bytes-int64(old)+int64(size) <= h.maxBytes
}

func (h *retainHook) refuse(client, topic string) {
	h.stats.retainedRefused.Add(1)
	if h.stats.retainLog.allow() {
		h.Log.Warn("mqtt retained message not kept: retained budget full (max_retained, max_retained_bytes)",
			"client", client, "topic", topic, "refused_total", h.stats.retainedRefused.Load())
	}
}

// OnPublish clears the retain flag of a publish over budget.
func (h *retainHook) OnPublish(cl *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	if pk.FixedHeader.Retain && !h.fits(pk.TopicName, len(pk.Payload)) {
		pk.FixedHeader.Retain = false
		h.refuse(cl.ID, pk.TopicName)
	}
	return pk, nil
}

// OnWill clears the retain flag of a will over budget.
func (h *retainHook) OnWill(cl *mqttsrv.Client, w mqttsrv.Will) (mqttsrv.Will, error) {
	if w.Retain && !h.fits(w.TopicName, len(w.Payload)) {
		w.Retain = false
		h.refuse(cl.ID, w.TopicName)
	}
	return w, nil
}

// OnRetainMessage accounts for a message mochi retained or deleted.
func (h *retainHook) OnRetainMessage(_ *mqttsrv.Client, pk packets.Packet, _ int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bytes -= int64(h.sizes[pk.TopicName])
	if len(pk.Payload) == 0 {
		delete(h.sizes, pk.TopicName)
		return
	}
	h.sizes[pk.TopicName] = len(pk.Payload)
	h.bytes += int64(len(pk.Payload))
}

// OnRetainedExpired accounts for a retained message that expired.
func (h *retainHook) OnRetainedExpired(topic string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.bytes -= int64(h.sizes[topic])
	delete(h.sizes, topic)
}

// usage returns the retained messages' count and bytes.
func (h *retainHook) usage() (int, int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sizes), h.bytes
}
