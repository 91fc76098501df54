package fleettest

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/sync/fleet"
)

// SysInterval is the mosquitto config line Traffic needs: the $SYS
// counters it reads are republished every second.
const SysInterval = "sys_interval 1"

// Count is a number of messages and their bytes.
type Count struct {
	Messages int64 `json:"messages"`
	Bytes    int64 `json:"bytes"`
}

func (c Count) sub(o Count) Count { return Count{c.Messages - o.Messages, c.Bytes - o.Bytes} }

// Snapshot is what went through the broker up to a moment.
type Snapshot struct {
	// Published counts the PUBLISH packets clients sent the broker, by
	// topic class under the fleet prefix (desired, blobs, status, probe;
	// other:<first level> outside it), payload bytes plus topic.
	Published map[string]Count `json:"published"`
	// InBytes is mosquitto's $SYS/broker/publish/bytes/received (payload
	// bytes). Out is $SYS/broker/publish/{messages,bytes}/sent without the
	// deliveries to the measurement's own subscribers: what the broker
	// delivered to the fleet. (mosquitto 2.0.11's publish/messages/received
	// undercounts QoS 1 publishes from paho clients; Published counts them.)
	InBytes int64 `json:"publish_in_bytes"`
	Out     Count `json:"publish_out"`
	// WireIn and WireOut are $SYS/broker/bytes/{received,sent}: every MQTT
	// packet (CONNECT, SUBSCRIBE, PUBACK, PINGREQ...), WireOut less the
	// measurement's deliveries (payload + topic + 4 header bytes each).
	WireIn  int64 `json:"wire_in"`
	WireOut int64 `json:"wire_out"`
	// Retained is $SYS/broker/retained messages/count; StoreBytes is
	// $SYS/broker/store/messages/bytes (payload bytes the broker holds).
	Retained   int64 `json:"retained"`
	StoreBytes int64 `json:"store_bytes"`
}

// Sub is what went through between o and s (the gauges Retained and
// StoreBytes are s's).
func (s Snapshot) Sub(o Snapshot) Snapshot {
	d := Snapshot{Published: map[string]Count{}, InBytes: s.InBytes - o.InBytes, Out: s.Out.sub(o.Out),
		WireIn: s.WireIn - o.WireIn, WireOut: s.WireOut - o.WireOut, Retained: s.Retained, StoreBytes: s.StoreBytes}
	for k, c := range s.Published {
		if c = c.sub(o.Published[k]); c.Messages != 0 {
			d.Published[k] = c
		}
	}
	return d
}

// Traffic measures the broker: a subscriber on '#' classifies what clients
// publish; a subscriber on $SYS reads mosquitto's counters (the broker
// needs SysInterval).
type Traffic struct {
	t     testing.TB
	w     *Watcher // its deliveries are the measurement's too
	mu    sync.Mutex
	pub   map[string]Count
	own   Count // deliveries to Traffic's subscribers (payload bytes)
	ownT  int64 // and their topics' bytes
	sys   map[string]int64
	ticks int64 // $SYS/broker/uptime updates seen
}

// NewTraffic connects the counters to brokerURL; w (may be nil) is a
// watcher on the same broker whose deliveries are subtracted too.
func NewTraffic(t testing.TB, brokerURL string, w *Watcher) *Traffic {
	t.Helper()
	tr := &Traffic{t: t, w: w, pub: map[string]Count{}, sys: map[string]int64{}}
	prefix := fleet.DefaultPrefix + "/"
	d := fleet.Dial{Broker: brokerURL, AutoReconnect: true, OnConnect: func(cn *fleet.Conn) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = cn.Subscribe(ctx, "#", func(topic string, p []byte, retained bool) {
			if strings.HasPrefix(topic, "$") {
				return // the client routes $SYS here too; the broker does not match it
			}
			n := int64(len(topic) + len(p))
			tr.mu.Lock()
			defer tr.mu.Unlock()
			tr.own.Messages++
			tr.own.Bytes += int64(len(p))
			tr.ownT += int64(len(topic))
			if retained {
				return // sent on subscribe, not published now
			}
			class, _, _ := strings.Cut(topic, "/")
			class = "other:" + class
			if rest, ok := strings.CutPrefix(topic, prefix); ok {
				class, _, _ = strings.Cut(rest, "/")
			}
			c := tr.pub[class]
			tr.pub[class] = Count{c.Messages + 1, c.Bytes + n}
		})
		for _, f := range []string{"$SYS/broker/publish/+/+", "$SYS/broker/bytes/+", "$SYS/broker/retained messages/count", "$SYS/broker/store/messages/bytes", "$SYS/broker/uptime"} {
			_ = cn.Subscribe(ctx, f, func(topic string, p []byte, _ bool) {
				tr.mu.Lock()
				defer tr.mu.Unlock()
				tr.own.Messages++
				tr.own.Bytes += int64(len(p))
				tr.ownT += int64(len(topic))
				if topic == "$SYS/broker/uptime" {
					tr.ticks++
					return
				}
				if v, err := strconv.ParseInt(strings.Fields(string(p) + " x")[0], 10, 64); err == nil {
					tr.sys[topic] = v
				}
			})
		}
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cn, err := fleet.Connect(ctx, d, fleet.Topics{})
	if err != nil {
		t.Fatalf("fleettest: traffic: %v", err)
	}
	t.Cleanup(cn.Close)
	return tr
}

// Snapshot waits for two fresh $SYS updates (so the counters include
// everything before the call) and returns the counts.
func (tr *Traffic) Snapshot() Snapshot {
	tr.t.Helper()
	tr.mu.Lock()
	from := tr.ticks
	tr.mu.Unlock()
	deadline := time.Now().Add(15 * time.Second)
	for {
		tr.mu.Lock()
		n := tr.ticks
		tr.mu.Unlock()
		if n >= from+2 {
			break
		}
		if time.Now().After(deadline) {
			tr.t.Fatal("fleettest: no $SYS/broker/uptime updates from the broker in 15s: start mosquitto with fleettest.SysInterval")
		}
		time.Sleep(20 * time.Millisecond)
	}
	tr.mu.Lock()
	defer tr.mu.Unlock()
	own, ownT := tr.own, tr.ownT
	if tr.w != nil {
		c, topics := tr.w.Received()
		own.Messages += c.Messages
		own.Bytes += c.Bytes
		ownT += topics
	}
	s := Snapshot{Published: map[string]Count{},
		InBytes:    tr.sys["$SYS/broker/publish/bytes/received"],
		Out:        Count{tr.sys["$SYS/broker/publish/messages/sent"] - own.Messages, tr.sys["$SYS/broker/publish/bytes/sent"] - own.Bytes},
		WireIn:     tr.sys["$SYS/broker/bytes/received"],
		WireOut:    tr.sys["$SYS/broker/bytes/sent"] - own.Bytes - ownT - 4*own.Messages,
		Retained:   tr.sys["$SYS/broker/retained messages/count"],
		StoreBytes: tr.sys["$SYS/broker/store/messages/bytes"]}
	for k, v := range tr.pub {
		s.Published[k] = v
	}
	return s
}
