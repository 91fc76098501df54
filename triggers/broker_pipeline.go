package triggers

import (
	"context"
	"sync"
	"sync/atomic"
	"unsafe"

	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Pipelining a device's QoS 1 and 2 messages.
//
// mochi calls OnPublish on the client's read goroutine and sends the PUBACK
// when the hook returns, so a hook that waits for the commit holds one
// message of each device at a time, and a group commit carries at most one
// message per device. With an AsyncSink the hook returns as soon as the
// functions ran and their commits are queued, withholding the message
// (packets.ErrRejectPacket); when the commit is durable the message is
// injected back into mochi (Server.InjectPacket), which acknowledges and
// forwards it as it would have. While a device has messages waiting, its
// later messages (any QoS, matched or not) wait behind them, so PUBACKs and
// forwarding keep the order in which the device published: MQTT's
// "PUBACK in the order received" and per-topic order.

const (
	// maxPipelined bounds the messages of one connection waiting for
	// their commit (at most the broker's max_inflight).
	maxPipelined = 32
	// maxPipelinedBytes bounds their payload bytes; a message larger than
	// that still passes once it is alone.
	maxPipelinedBytes = 1 << 20
)

// pipeline is one connection's messages waiting to be acknowledged, in
// arrival order.
type pipeline struct {
	window int
	cl     *mqttsrv.Client
	h      *eventHook

	mu       sync.Mutex
	pending  []*pendingPublish
	bytes    int
	draining bool // a goroutine is injecting the done head of pending
	failed   bool // a message failed: the client is being disconnected
	freed    chan struct{}

	// injecting is the message being injected, so that OnPublish lets it
	// through instead of delivering it again.
	injecting atomic.Pointer[pendingPublish]
}

// pendingPublish is one withheld message.
type pendingPublish struct {
	pk   packets.Packet
	done bool
	err  error
	// answered tells whether the sink's answer (answer) came before
	// DeliverAsync returned (answeredEarly: the read goroutine settles it)
	// or after (answeredLate); see eventHook.pipeline.
	answered atomic.Int32
	answer   error
}

const (
	answeredEarly = 1 + iota
	answeredLate
)

func newPipeline(cl *mqttsrv.Client, h *eventHook, window int) *pipeline {
	return &pipeline{window: min(window, maxPipelined), cl: cl, h: h, freed: make(chan struct{}, 1)}
}

// empty reports whether nothing of the connection waits.
func (p *pipeline) empty() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending) == 0
}

// add queues pk behind the connection's waiting messages, waiting for room
// while the window is full (backpressure: the device's next message is not
// read meanwhile). It returns nil if the connection failed or ctx ended.
func (p *pipeline) add(ctx context.Context, pk packets.Packet) *pendingPublish {
	if len(pk.Payload) == 0 {
		// A payload of its own, so injected (below) tells it apart from
		// any packet read from the connection.
		pk.Payload = make([]byte, 0, 1)
	}
	// mochi resolved the topic alias: injected again, the packet must not
	// set the alias back over a newer mapping of the device's.
	pk.Properties.TopicAliasFlag, pk.Properties.TopicAlias = false, 0
	pp := &pendingPublish{pk: pk}
	for {
		p.mu.Lock()
		if p.failed {
			p.mu.Unlock()
			return nil
		}
		if n := len(p.pending); n == 0 || n < p.window && p.bytes+len(pk.Payload) <= maxPipelinedBytes {
			p.pending = append(p.pending, pp)
			p.bytes += len(pk.Payload)
			p.mu.Unlock()
			return pp
		}
		p.mu.Unlock()
		select {
		case <-p.freed:
		case <-ctx.Done():
			return nil
		}
	}
}

// injected reports whether pk is the message p is injecting back into
// mochi: the same payload array, which no packet read from the wire
// shares, so a device cannot pass a message off as one.
func (p *pipeline) injected(pk *packets.Packet) bool {
	pp := p.injecting.Load()
	return pp != nil && pp.pk.PacketID == pk.PacketID && len(pp.pk.Payload) == len(pk.Payload) &&
		unsafe.SliceData(pp.pk.Payload) == unsafe.SliceData(pk.Payload)
}

// settle marks pp done with err and releases the done messages at the head
// of the queue in order (the hook's release), unless a goroutine is at it
// already. On the connection's read goroutine (a message that waits for
// nothing, or whose sink answered before DeliverAsync returned) it releases
// them itself; a sink's answer from elsewhere (the store's completion
// goroutine) starts a goroutine of the connection's to do it, because
// release writes the PUBACK to the device's socket, which a device that
// does not read would block: it must hold up only its own connection.
func (p *pipeline) settle(pp *pendingPublish, err error, onReader bool) {
	p.mu.Lock()
	pp.done, pp.err = true, err
	if p.draining || len(p.pending) == 0 || !p.pending[0].done {
		p.mu.Unlock()
		return
	}
	p.draining = true
	p.mu.Unlock()
	if onReader {
		p.drain()
	} else {
		go p.drain()
	}
}

// drain releases the done messages at the head of the queue, in order,
// without p's lock, then clears draining. After a failed message (the
// hook's fail) the rest are dropped unacknowledged: the device resends them
// when it reconnects.
func (p *pipeline) drain() {
	p.mu.Lock()
	for len(p.pending) > 0 && p.pending[0].done {
		head := p.pending[0]
		p.pending[0] = nil
		p.pending = p.pending[1:]
		p.bytes -= len(head.pk.Payload)
		select {
		case p.freed <- struct{}{}:
		default:
		}
		if p.failed {
			continue
		}
		if head.err != nil {
			p.failed = true
		}
		p.mu.Unlock()
		if head.err != nil {
			p.h.fail(p.cl, head)
		} else {
			p.injecting.Store(head)
			p.h.release(p.cl, head)
			p.injecting.Store(nil)
		}
		p.mu.Lock()
	}
	p.draining = false
	p.mu.Unlock()
}

// pipelines maps each connected client to its pipeline.
type pipelines struct{ m sync.Map } // *mqttsrv.Client -> *pipeline

// get returns cl's pipeline, or nil if it has none.
func (ps *pipelines) get(cl *mqttsrv.Client) *pipeline {
	if v, ok := ps.m.Load(cl); ok {
		return v.(*pipeline)
	}
	return nil
}

// of returns cl's pipeline, creating it.
func (ps *pipelines) of(cl *mqttsrv.Client, h *eventHook, window int) *pipeline {
	if p := ps.get(cl); p != nil {
		return p
	}
	v, _ := ps.m.LoadOrStore(cl, newPipeline(cl, h, window))
	return v.(*pipeline)
}

// forget drops cl's pipeline when its connection ends; messages still
// waiting are released into a closed connection (not acknowledged).
func (ps *pipelines) forget(cl *mqttsrv.Client) { ps.m.Delete(cl) }
