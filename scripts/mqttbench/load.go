package main

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// Topics of the load: devices publish readings on inTopic(i), every path
// under test turns each into one message on outTopic.
const outTopic = "relay/out"

func inTopic(pub int) string { return fmt.Sprintf("sensors/dev%d/temperature", pub) }

// scenario is one measured load.
type scenario struct {
	Name string `json:"name"`
	Msgs int    `json:"msgs"`
	Rate int    `json:"rate"` // messages per second over all publishers; 0: unpaced
}

// loadResult is what one scenario measured.
type loadResult struct {
	Sent      int           `json:"sent"`
	Received  int           `json:"received"`
	Dups      int           `json:"dups"`
	Reordered int           `json:"reordered"` // derived messages older than one already received from the same device
	Elapsed   time.Duration `json:"elapsed"`   // first publish to last derived message
	P50, P99  time.Duration `json:"-"`
	P50ms     float64       `json:"p50_ms"`
	P99ms     float64       `json:"p99_ms"`
	CPU       time.Duration `json:"cpu"` // utime+stime of the gateway-side processes over Elapsed
	CPUPerMsg float64       `json:"cpu_us_per_msg"`
	Rate      float64       `json:"rate"` // derived messages per second over Elapsed
}

// sink is the subscriber: it receives the derived messages and records the
// latency of each from the send time carried in its payload.
type sink struct {
	c mqtt.Client

	mu       sync.Mutex
	base, n  int
	lat      []time.Duration
	seen     []bool
	lastSeq  []int // per publisher
	got      int
	dups     int
	reorder  int
	stray    int
	last     time.Time
	progress atomic.Int64
}

func newSink(broker, id string, pubs int) (*sink, error) {
	s := &sink{lastSeq: make([]int, pubs)}
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(id).
		SetCleanSession(true).SetAutoReconnect(false).SetWriteTimeout(10 * time.Second)
	s.c = mqtt.NewClient(opts)
	if tok := s.c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("subscriber connect %s: %v", broker, tok.Error())
	}
	if tok := s.c.Subscribe(outTopic, 1, s.handle); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		s.c.Disconnect(0)
		return nil, fmt.Errorf("subscribe %s: %v", outTopic, tok.Error())
	}
	return s, nil
}

func (s *sink) close() { s.c.Disconnect(100) }

// reset starts counting messages with ids [base, base+n).
func (s *sink) reset(base, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.base, s.n = base, n
	s.lat = make([]time.Duration, n)
	s.seen = make([]bool, n)
	for i := range s.lastSeq {
		s.lastSeq[i] = -1
	}
	s.got, s.dups, s.reorder, s.stray = 0, 0, 0, 0
}

func (s *sink) handle(_ mqtt.Client, m mqtt.Message) {
	now := time.Now()
	p := m.Payload()
	pub, ok1 := field(p, `"p":`)
	seq, ok2 := field(p, `"s":`)
	sent, ok3 := field(p, `"t":`)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.progress.Add(1)
	i := seq - s.base
	if !ok1 || !ok2 || !ok3 || i < 0 || i >= s.n || pub < 0 || pub >= len(s.lastSeq) {
		s.stray++
		return
	}
	if s.seen[i] {
		s.dups++
		return
	}
	s.seen[i] = true
	s.lat[i] = now.Sub(time.Unix(0, int64(sent)))
	if seq < s.lastSeq[pub] {
		s.reorder++
	} else {
		s.lastSeq[pub] = seq
	}
	s.got++
	s.last = now
}

func (s *sink) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.got
}

// field reads the non-negative integer after key in a JSON payload.
func field(p []byte, key string) (int, bool) {
	i := bytes.Index(p, []byte(key))
	if i < 0 {
		return 0, false
	}
	j := i + len(key)
	k := j
	for k < len(p) && p[k] >= '0' && p[k] <= '9' {
		k++
	}
	v, err := strconv.Atoi(string(p[j:k]))
	return v, err == nil
}

// payload is a ~110-byte JSON reading; p, s and t identify it for the sink.
func payload(pub, seq int, t time.Time) []byte {
	return fmt.Appendf(nil, `{"sensor":"dev%d","celsius":21.5,"humidity":40,"p":%d,"s":%d,"t":%d,"unit":"C"}`, pub, pub, seq, t.UnixNano())
}

// publishers are the device connections.
type publishers struct {
	cs []mqtt.Client
}

func newPublishers(broker, prefix string, n int) (*publishers, error) {
	p := &publishers{}
	for i := 0; i < n; i++ {
		opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID(fmt.Sprintf("%s-pub%d", prefix, i)).
			SetCleanSession(true).SetAutoReconnect(false).SetWriteTimeout(10 * time.Second)
		c := mqtt.NewClient(opts)
		if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			p.close()
			return nil, fmt.Errorf("publisher connect %s: %v", broker, tok.Error())
		}
		p.cs = append(p.cs, c)
	}
	return p, nil
}

func (p *publishers) close() {
	for _, c := range p.cs {
		c.Disconnect(100)
	}
}

// warmup publishes until a derived message comes back (the path is
// subscribed end to end), then n more at 1,000/s, and waits for them.
func warmup(p *publishers, s *sink, base, n int) error {
	s.reset(base, n+1000)
	deadline := time.Now().Add(60 * time.Second)
	seq := base
	for s.count() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no derived message on %s within 60s of publishing", outTopic)
		}
		p.cs[0].Publish(inTopic(0), 1, false, payload(0, seq, time.Now()))
		seq++
		time.Sleep(50 * time.Millisecond)
	}
	run(p, s, scenario{Msgs: n, Rate: 1000}, seq, nil)
	return nil
}

// run publishes sc.Msgs messages with ids from base, paced at sc.Rate over
// all publishers (or unpaced: each publisher keeps window publishes in
// flight), waits for the derived messages and returns what it measured.
// cpu reads the gateway-side processes' CPU time (nil: not measured).
func run(p *publishers, s *sink, sc scenario, base int, cpu func() time.Duration) loadResult {
	const window = 32
	s.reset(base, sc.Msgs)
	n := len(p.cs)
	var cpu0 time.Duration
	if cpu != nil {
		cpu0 = cpu()
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	if sc.Rate > 0 {
		toks := make([]chan mqtt.Token, n)
		for i := range toks {
			toks[i] = make(chan mqtt.Token, sc.Msgs/n+1)
			wg.Add(1)
			go func(ch chan mqtt.Token) {
				defer wg.Done()
				for tok := range ch {
					tok.WaitTimeout(30 * time.Second)
				}
			}(toks[i])
		}
		tick := time.NewTicker(time.Millisecond)
		sent := 0
		for sent < sc.Msgs {
			due := min(sc.Msgs, int(time.Since(t0).Seconds()*float64(sc.Rate))+1)
			for ; sent < due; sent++ {
				pub := sent % n
				toks[pub] <- p.cs[pub].Publish(inTopic(pub), 1, false, payload(pub, base+sent, time.Now()))
			}
			if sent < sc.Msgs {
				<-tick.C
			}
		}
		tick.Stop()
		for _, ch := range toks {
			close(ch)
		}
	} else {
		per := (sc.Msgs + n - 1) / n
		for pub := 0; pub < n; pub++ {
			wg.Add(1)
			go func(pub int) {
				defer wg.Done()
				var inflight []mqtt.Token
				for j := 0; j < per; j++ {
					seq := j*n + pub
					if seq >= sc.Msgs {
						break
					}
					if len(inflight) == window {
						inflight[0].WaitTimeout(30 * time.Second)
						inflight = inflight[1:]
					}
					inflight = append(inflight, p.cs[pub].Publish(inTopic(pub), 1, false, payload(pub, base+seq, time.Now())))
				}
				for _, tok := range inflight {
					tok.WaitTimeout(30 * time.Second)
				}
			}(pub)
		}
	}
	wg.Wait()
	// Wait for the derived messages: give up after 10 s without progress.
	lastProgress, lastAt := s.progress.Load(), time.Now()
	for s.count() < sc.Msgs && time.Since(lastAt) < 10*time.Second {
		time.Sleep(5 * time.Millisecond)
		if v := s.progress.Load(); v != lastProgress {
			lastProgress, lastAt = v, time.Now()
		}
	}
	var cpuUsed time.Duration
	if cpu != nil {
		cpuUsed = cpu() - cpu0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	r := loadResult{Sent: sc.Msgs, Received: s.got, Dups: s.dups, Reordered: s.reorder, CPU: cpuUsed}
	if s.got > 0 {
		r.Elapsed = s.last.Sub(t0)
		var lat []time.Duration
		for i, ok := range s.seen {
			if ok {
				lat = append(lat, s.lat[i])
			}
		}
		slices.Sort(lat)
		r.P50, r.P99 = lat[len(lat)/2], lat[min(len(lat)-1, len(lat)*99/100)]
		r.P50ms, r.P99ms = ms(r.P50), ms(r.P99)
		r.Rate = float64(s.got) / r.Elapsed.Seconds()
		r.CPUPerMsg = float64(cpuUsed.Nanoseconds()) / 1e3 / float64(s.got)
	}
	return r
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
