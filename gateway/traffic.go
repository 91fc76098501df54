package gateway

import (
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/gateway/api"
	"github.com/edgefn/edgefn/gateway/internal/sse"
	"github.com/edgefn/edgefn/triggers"
)

// Bounds of the traffic tap.
const (
	tapSize        = 256  // messages kept for a new watcher
	tapPayload     = 1024 // bytes of a payload kept
	tapWatchers    = 16   // streams at once
	tapWatcherBuf  = 256  // messages a slow stream may lag before it misses some
	defaultTapLast = 20
)

// TrafficMessage is one MQTT message of GET /v1/traffic.
type TrafficMessage = api.TrafficMessage

// tap keeps the last MQTT messages the triggers saw and fans new ones out
// to the traffic streams. Everything in it is bounded: the ring, the
// payload bytes kept, the streams and each stream's lag. Its zero value is
// ready.
type tap struct {
	mu       sync.Mutex
	ring     [tapSize]TrafficMessage
	n, next  int
	seq      int64
	hist     history
	watchers map[*tapWatcher]struct{}
}

type tapWatcher struct {
	filter string
	ch     chan TrafficMessage
	missed int64 // under tap.mu
}

// observe records one message (triggers.Broker/MQTT.Observe).
func (t *tap) observe(s triggers.Seen) {
	now := time.Now()
	m := TrafficMessage{Time: now, Topic: s.Topic, QoS: s.QoS, Retain: s.Retain, Size: len(s.Payload)}
	if s.Agent {
		m.Origin = "agent"
	}
	p := s.Payload
	if len(p) > tapPayload {
		p, m.Truncated = p[:tapPayload], true
	}
	if m.Truncated && utf8.Valid(trimPartialRune(p)) {
		p = trimPartialRune(p)
	}
	m.Data = api.TextData(p)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.seq++
	m.Seq = t.seq
	t.ring[t.next] = m
	t.next = (t.next + 1) % tapSize
	t.n = min(t.n+1, tapSize)
	t.hist.add(now, 0, false)
	for w := range t.watchers {
		if !edgefn.TopicMatch(w.filter, m.Topic) {
			continue
		}
		select {
		case w.ch <- m:
		default:
			w.missed++
		}
	}
}

// trimPartialRune drops an incomplete UTF-8 sequence that a cut left at the
// end of p.
func trimPartialRune(p []byte) []byte {
	for i := 0; i < utf8.UTFMax && len(p) > 0; i++ {
		if r, size := utf8.DecodeLastRune(p); r != utf8.RuneError || size > 1 {
			return p
		}
		p = p[:len(p)-1]
	}
	return p
}

// stats is the number of messages seen and their recent rate.
func (t *tap) stats(now time.Time) (uint64, float64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return uint64(t.seq), t.hist.rate(now)
}

var errTooManyWatchers = errors.New("too many traffic streams open")

// watch returns the last n kept messages matching filter (oldest first)
// and a watcher for the next ones; stop with unwatch.
func (t *tap) watch(filter string, n int) ([]TrafficMessage, *tapWatcher, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.watchers) >= tapWatchers {
		return nil, nil, errTooManyWatchers
	}
	var last []TrafficMessage
	for i := 0; i < t.n && len(last) < n; i++ {
		m := t.ring[(t.next-1-i+2*tapSize)%tapSize]
		if edgefn.TopicMatch(filter, m.Topic) {
			last = append(last, m)
		}
	}
	for i, j := 0, len(last)-1; i < j; i, j = i+1, j-1 {
		last[i], last[j] = last[j], last[i]
	}
	w := &tapWatcher{filter: filter, ch: make(chan TrafficMessage, tapWatcherBuf)}
	if t.watchers == nil {
		t.watchers = map[*tapWatcher]struct{}{}
	}
	t.watchers[w] = struct{}{}
	return last, w, nil
}

func (t *tap) unwatch(w *tapWatcher) {
	t.mu.Lock()
	delete(t.watchers, w)
	t.mu.Unlock()
}

// takeMissed returns and resets the messages w missed.
func (t *tap) takeMissed(w *tapWatcher) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := w.missed
	w.missed = 0
	return n
}

// handleTraffic is GET /v1/traffic?filter=F&n=N: the last N kept messages
// matching the MQTT filter F (default "#", N default 20, at most 256),
// then every new one, as server-sent events named "message" whose data is
// a TrafficMessage; "missed" events say how many a slow reader lost.
func (g *Host) handleTraffic(w http.ResponseWriter, r *http.Request) {
	filter := r.URL.Query().Get("filter")
	if filter == "" {
		filter = "#"
	}
	if !edgefn.ValidTopicFilter(filter) {
		writeError(w, http.StatusBadRequest, fmt.Errorf("filter=%q: not an MQTT topic filter (use + for one level, # at the end for the rest)", filter))
		return
	}
	n, err := intParam(r, "n", defaultTapLast, 0, tapSize)
	if err != nil {
		writeError(w, http.StatusBadRequest, err)
		return
	}
	t := &g.live.tap
	last, watcher, err := t.watch(filter, int(n))
	if err != nil {
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("%w (at most %d): close one", err, tapWatchers))
		return
	}
	defer t.unwatch(watcher)
	s, err := sse.Start(w)
	if err != nil {
		return
	}
	for _, m := range last {
		if s.Event("message", m.Seq, m) != nil {
			return
		}
	}
	heartbeat := time.NewTicker(sse.Heartbeat)
	defer heartbeat.Stop()
	ctx, cancel := g.live.streamContext(r.Context())
	defer cancel()
	for {
		select {
		case m := <-watcher.ch:
			if missed := t.takeMissed(watcher); missed > 0 {
				if s.Event("missed", 0, missed) != nil {
					return
				}
			}
			if s.Event("message", m.Seq, m) != nil {
				return
			}
		case <-heartbeat.C:
			if s.Comment("heartbeat") != nil {
				return
			}
		case <-ctx.Done():
			return
		}
	}
}
