package uplink

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// mqttClient is the part of the paho client the MQTT uplink uses.
type mqttClient interface {
	Connect() paho.Token
	Publish(topic string, qos byte, retained bool, payload interface{}) paho.Token
	Disconnect(quiesce uint)
}

// errAckTimeout ends a connection whose oldest publish got no PUBACK.
var errAckTimeout = errors.New("no PUBACK within ack_timeout")

// MQTT is an uplink that publishes each record as one QoS 1 message to a
// cloud broker, with a window of unacknowledged publishes. Create it with
// NewMQTT; run it with Run.
type MQTT struct {
	cfg  MQTTConfig
	src  Source
	log  *slog.Logger
	st   *tracker
	tls  *tls.Config
	dial func(opts *paho.ClientOptions) mqttClient

	enc encoder
}

var _ Link = (*MQTT)(nil)

// NewMQTT validates cfg, loads its TLS files and returns an MQTT uplink
// draining src. It does not connect; an unreachable broker shows up in
// State once Run starts. A nil logger discards logs.
func NewMQTT(cfg MQTTConfig, src Source, logger *slog.Logger) (*MQTT, error) {
	cfg, logger, err := prepare("mqtt", src, cfg, logger)
	if err != nil {
		return nil, err
	}
	m := &MQTT{
		cfg:  cfg,
		src:  src,
		log:  logger,
		st:   newTracker(cfg.Name, "mqtt"),
		dial: func(o *paho.ClientOptions) mqttClient { return paho.NewClient(o) },
	}
	if u, _ := url.Parse(cfg.Broker); u.Scheme == "ssl" || u.Scheme == "tls" || u.Scheme == "mqtts" || cfg.TLS.IsSet() {
		tc, err := linkTLS("mqtt", cfg.TLS, logger)
		if err != nil {
			return nil, err
		}
		m.tls = tc
	}
	return m, nil
}

// State returns a snapshot of the uplink's health.
func (m *MQTT) State() State { return m.st.snapshot(time.Now()) }

// Run publishes records until ctx is cancelled, then returns nil. Each
// connection starts from the oldest unconfirmed record, so whatever was
// unacknowledged when a connection (or the process) died is published
// again, with the same id. Run must not be called twice at once.
func (m *MQTT) Run(ctx context.Context) error {
	m.st.running(true)
	defer m.st.running(false)
	notify := m.src.Notify()
	failures := 0
	for ctx.Err() == nil {
		progressed, err := m.session(ctx, notify)
		m.st.held(0, time.Time{})
		if ctx.Err() != nil {
			break
		}
		if progressed {
			failures = 0
		}
		failures++
		wait := m.cfg.Backoff.delay(failures)
		if failures == 1 {
			m.log.Warn("cloud broker connection failed, retrying", "err", err, "retry_in", wait)
		} else {
			m.log.Debug("cloud broker connection failed, retrying", "err", err, "attempt", failures, "retry_in", wait)
		}
		m.peek(ctx)
		m.st.failure(time.Now(), err, true)
		sleep(ctx, wait)
	}
	return nil
}

// inflight is one publish waiting for its PUBACK.
type inflight struct {
	seq  uint64
	time time.Time // record time, for OldestAge
	tok  paho.Token
	sent time.Time
}

// session connects once and publishes until the connection fails or ctx
// ends. progressed reports whether anything was confirmed.
func (m *MQTT) session(ctx context.Context, notify <-chan struct{}) (progressed bool, err error) {
	lost := make(chan error, 1)
	opts := paho.NewClientOptions().
		AddBroker(m.cfg.Broker).
		SetClientID(m.cfg.ClientID).
		SetCleanSession(true). // we resend from the outbox, not from paho's store
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(m.cfg.KeepAlive).
		SetConnectTimeout(m.cfg.ConnectTimeout).
		SetWriteTimeout(m.cfg.AckTimeout).
		SetOrderMatters(true).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if m.cfg.Username != "" {
		opts.SetUsername(m.cfg.Username).SetPassword(m.cfg.Password)
	}
	if m.tls != nil {
		opts.SetTLSConfig(m.tls)
	}
	c := m.dial(opts)
	tok := c.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		c.Disconnect(0)
		return false, ctx.Err()
	}
	if err := tok.Error(); err != nil {
		return false, fmt.Errorf("connect %s: %w", m.cfg.Broker, err)
	}
	defer c.Disconnect(250)
	m.st.online(true)
	m.log.Info("connected to cloud broker", "broker", m.cfg.Broker)

	window := m.cfg.InFlight
	queue := make([]inflight, 0, window)
	// A new session is a new drain point: what piled up while the link was
	// down is the backlog lane, newer records take the live lane.
	lanes := newLanes(m.src, m.cfg.StrictOrder)
	if err := lanes.reset(ctx); err != nil {
		return false, fmt.Errorf("read outbox: %w", err)
	}
	ackTimer := time.NewTimer(time.Hour)
	defer ackTimer.Stop()
	idle := time.NewTimer(idlePoll)
	defer idle.Stop()
	var payload []byte
	for {
		// Fill the window.
		for len(queue) < window {
			m.st.refreshBacklog(ctx, m.src, time.Now())
			want := window - len(queue)
			recs, lane, err := lanes.next(ctx, want, int(m.cfg.MaxBytes))
			if err != nil {
				return progressed, fmt.Errorf("read outbox: %w", err)
			}
			for i := range recs {
				r := &recs[i]
				payload = m.enc.appendRecord(payload[:0], r)
				// paho keeps the slice until the PUBACK: give it its own.
				t := c.Publish(topicFor(m.cfg.Topic, r), 1, false, append([]byte(nil), payload...))
				queue = append(queue, inflight{seq: r.Seq, time: r.Time, tok: t, sent: time.Now()})
			}
			if len(recs) == 0 {
				break // both lanes are empty
			}
			lanes.advance(lane, recs[len(recs)-1].Seq)
		}
		m.holdState(queue)

		// Confirm the prefix whose PUBACKs all arrived.
		n := 0
		for n < len(queue) && isDone(queue[n].tok) {
			if err := queue[n].tok.Error(); err != nil {
				m.confirm(ctx, queue[:n])
				return progressed || n > 0, fmt.Errorf("publish seq %d: %w", queue[n].seq, err)
			}
			n++
		}
		if n > 0 {
			if err := m.confirm(ctx, queue[:n]); err != nil {
				return true, err
			}
			progressed = true
			queue = append(queue[:0], queue[n:]...)
			m.holdState(queue)
			continue // refill before waiting
		}

		// Wait for the oldest PUBACK, new records, a lost link or the end.
		var headDone <-chan struct{}
		if len(queue) > 0 {
			headDone = queue[0].tok.Done()
			ackTimer.Reset(time.Until(queue[0].sent.Add(m.cfg.AckTimeout)))
		}
		var more <-chan struct{}
		if len(queue) < window {
			more = notify
		}
		select {
		case <-ctx.Done():
			return progressed, ctx.Err()
		case err := <-lost:
			return progressed, fmt.Errorf("connection lost: %w", err)
		case <-headDone:
		case <-more:
		case <-ackTimer.C:
			if len(queue) > 0 && time.Since(queue[0].sent) >= m.cfg.AckTimeout {
				return progressed, fmt.Errorf("publish seq %d: %w", queue[0].seq, errAckTimeout)
			}
		case <-idle.C:
			idle.Reset(idlePoll)
		}
		ackTimer.Stop()
	}
}

// peek looks at the head of the Source while the link is down so State
// shows a backlog and its age.
func (m *MQTT) peek(ctx context.Context) {
	if _, ok := m.src.(Backlogger); ok {
		m.st.refreshBacklog(ctx, m.src, time.Now())
		return
	}
	recs, err := m.src.Pending(ctx, 0, m.cfg.InFlight, int(m.cfg.MaxBytes))
	if err != nil || len(recs) == 0 {
		m.st.seen(0, time.Time{})
		return
	}
	m.st.seen(len(recs), recs[0].Time)
}

func isDone(t paho.Token) bool {
	select {
	case <-t.Done():
		return true
	default:
		return false
	}
}

// confirm tells the Source about acknowledged publishes.
func (m *MQTT) confirm(ctx context.Context, acked []inflight) error {
	if len(acked) == 0 {
		return nil
	}
	seqs := make([]uint64, len(acked))
	for i := range acked {
		seqs[i] = acked[i].seq
	}
	if err := retrySource(ctx, m.st, m.log, m.cfg.Backoff, "confirm", func(ctx context.Context) error { return m.src.Confirm(ctx, seqs) }); err != nil {
		return err
	}
	m.st.success(time.Now(), len(acked))
	return nil
}

func (m *MQTT) holdState(queue []inflight) {
	if len(queue) == 0 {
		m.st.held(0, time.Time{})
		return
	}
	m.st.held(len(queue), queue[0].time)
}
