package triggers

import (
	"hash/maphash"
	"sync"
	"time"
)

// Through an external MQTT 3.1.1 broker a message carries nothing but its
// topic and payload, so the agent's own publishes cannot take their chain
// depth along (no user properties before MQTT 5). chainMarks stands in for
// one: MQTT.Publish remembers (topic, payload hash) -> depth of each
// publish to a topic the trigger is subscribed to, and the first message
// that comes back with the same topic and payload takes that depth.
//
// Why it is sound: every mark is taken at most once, so a chain of n
// publishes produces at most n marked messages. A device that publishes the
// same topic and payload at the same moment can swap depths with the
// agent's message (its own message is counted deeper, the agent's starts a
// new chain), but each device message resets at most one mark: a device
// can restart a chain no faster than it could start one by publishing.
// Marks that never come back (QoS 0 lost, a publish the broker's ACL
// dropped) expire after chainMarkTTL; at most chainMarkMax are kept, the
// oldest evicted first — a message in flight is young, so the evicted ones
// are the lost ones. An evicted live mark is counted in status.
type chainMarks struct {
	seed maphash.Seed
	now  func() time.Time

	mu      sync.Mutex
	seq     uint64
	live    int
	byKey   map[uint64][]chainMark // oldest first
	fifo    []chainRef             // fifo[head:] oldest first
	head    int
	evicted uint64
}

const (
	// chainMarkTTL is how long a publish's mark waits for its message to
	// come back from the broker (a round trip takes milliseconds; this
	// covers a broker restart and the reconnect backoff).
	chainMarkTTL = 2 * time.Minute
	// chainMarkMax bounds the marks kept (about 100 bytes each).
	chainMarkMax = 4096
)

type chainMark struct {
	seq   uint64
	depth int
}

type chainRef struct {
	key uint64
	seq uint64
	at  time.Time
}

func newChainMarks() *chainMarks {
	return &chainMarks{seed: maphash.MakeSeed(), now: time.Now, byKey: map[uint64][]chainMark{}}
}

func (c *chainMarks) key(topic string, payload []byte) uint64 {
	var h maphash.Hash
	h.SetSeed(c.seed)
	h.WriteString(topic)
	h.WriteByte(0)
	h.Write(payload)
	return h.Sum64()
}

// add remembers that the message (topic, payload) was published at depth.
func (c *chainMarks) add(topic string, payload []byte, depth int) {
	k := c.key(topic, payload)
	now := c.now()
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(now)
	for c.live >= chainMarkMax {
		if c.popOldest() {
			c.evicted++
		}
	}
	c.seq++
	c.byKey[k] = append(c.byKey[k], chainMark{seq: c.seq, depth: depth})
	c.fifo = append(c.fifo, chainRef{key: k, seq: c.seq, at: now})
	c.live++
}

// take returns the depth of the oldest mark for (topic, payload) and
// forgets it; 0 when there is none (a message from a device).
func (c *chainMarks) take(topic string, payload []byte) int {
	k := c.key(topic, payload)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expire(c.now())
	ms := c.byKey[k]
	if len(ms) == 0 {
		return 0
	}
	d := ms[0].depth
	if len(ms) == 1 {
		delete(c.byKey, k)
	} else {
		c.byKey[k] = ms[1:]
	}
	c.live--
	return d
}

// stats returns the marks waiting and those evicted before their message
// came back.
func (c *chainMarks) stats() (live int, evicted uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.live, c.evicted
}

func (c *chainMarks) expire(now time.Time) {
	for c.head < len(c.fifo) && now.Sub(c.fifo[c.head].at) > chainMarkTTL {
		c.popOldest()
	}
}

// popOldest drops the oldest entry of the fifo and reports whether its mark
// was still waiting (not taken yet).
func (c *chainMarks) popOldest() bool {
	r := c.fifo[c.head]
	c.fifo[c.head] = chainRef{}
	c.head++
	if c.head > len(c.fifo)/2 && c.head > 64 {
		c.fifo = append(c.fifo[:0], c.fifo[c.head:]...)
		c.head = 0
	}
	// Marks of one key are taken and evicted oldest first, so a live mark
	// of r is the first of its key.
	ms := c.byKey[r.key]
	if len(ms) == 0 || ms[0].seq != r.seq {
		return false
	}
	if len(ms) == 1 {
		delete(c.byKey, r.key)
	} else {
		c.byKey[r.key] = ms[1:]
	}
	c.live--
	return true
}
