package triggers

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/tlsclient"
)

// Subscription is one MQTT topic filter the gateway wants events for, with
// the maximum QoS to subscribe with (0 or 1).
type Subscription struct {
	Filter string `json:"filter"`
	QoS    byte   `json:"qos"`
}

// TLSConfig configures the TLS connection to an external broker; see
// tlsclient.Config.
type TLSConfig = tlsclient.Config

// MQTTConfig configures the external-broker trigger. Zero durations take
// the defaults documented on each field.
type MQTTConfig struct {
	// Brokers are the broker URLs, tried in order: tcp:// or mqtt:// for
	// plain TCP, ssl://, tls://, mqtts:// for TLS (default port 1883, 8883).
	Brokers []string `yaml:"brokers" json:"brokers"`
	// ClientID must be stable across restarts (derive it from the gateway
	// id): the broker keeps the persistent session under it.
	ClientID string `yaml:"client_id" json:"client_id"`
	Username string `yaml:"username" json:"username,omitempty"`
	Password string `yaml:"password" json:"-"`
	// TLS applies to ssl://, tls:// and mqtts:// brokers.
	TLS TLSConfig `yaml:"tls" json:"tls"`
	// KeepAlive is the MQTT keep-alive (default 30s).
	KeepAlive time.Duration `yaml:"keep_alive" json:"keep_alive"`
	// ConnectTimeout bounds one connection attempt (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// MaxReconnectInterval caps the reconnect backoff (default 30s).
	MaxReconnectInterval time.Duration `yaml:"max_reconnect_interval" json:"max_reconnect_interval"`
	// RedeliveryDelay is how long after a QoS 1 message could not be
	// committed the trigger drops the connection so the broker redelivers
	// it (default 5s; doubles while deliveries keep failing, up to 1 min).
	RedeliveryDelay time.Duration `yaml:"redelivery_delay" json:"redelivery_delay"`
}

const (
	defaultKeepAlive            = 30 * time.Second
	defaultConnectTimeout       = 10 * time.Second
	defaultMaxReconnectInterval = 30 * time.Second
	defaultRedeliveryDelay      = 5 * time.Second
	maxRedeliveryDelay          = time.Minute
	// disconnectQuiesce is how long Run's shutdown lets paho finish
	// in-flight work before closing the connection (milliseconds).
	disconnectQuiesce = 250
	// handlerDrainTimeout bounds how long Run waits for message handlers
	// still inside Sink.Deliver after the context ends.
	handlerDrainTimeout = 5 * time.Second
)

// withDefaults returns c with zero durations replaced by defaults.
func (c MQTTConfig) withDefaults() MQTTConfig {
	if c.KeepAlive == 0 {
		c.KeepAlive = defaultKeepAlive
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = defaultConnectTimeout
	}
	if c.MaxReconnectInterval == 0 {
		c.MaxReconnectInterval = defaultMaxReconnectInterval
	}
	if c.RedeliveryDelay == 0 {
		c.RedeliveryDelay = defaultRedeliveryDelay
	}
	return c
}

// Validate checks the configuration without touching the network (it
// checks that the TLS files exist) and returns every problem, each naming
// its field.
func (c MQTTConfig) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	if len(c.Brokers) == 0 {
		bad("brokers", "at least one broker URL is required")
	}
	for i, b := range c.Brokers {
		if _, _, err := parseBrokerURL(b); err != nil {
			bad(fmt.Sprintf("brokers[%d]", i), "%v", err)
		}
	}
	if c.ClientID == "" {
		bad("client_id", "required (a stable id, e.g. derived from the gateway id, keeps the persistent session)")
	}
	if c.Password != "" && c.Username == "" {
		bad("password", "set without username")
	}
	for _, e := range c.TLS.Problems() {
		var p *tlsclient.Problem
		if errors.As(e, &p) {
			bad("tls."+p.Field, "%s", p.Msg)
		}
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"keep_alive", c.KeepAlive}, {"connect_timeout", c.ConnectTimeout}, {"max_reconnect_interval", c.MaxReconnectInterval}, {"redelivery_delay", c.RedeliveryDelay}} {
		if d.v < 0 {
			bad(d.name, "%v is negative", d.v)
		}
	}
	if c.KeepAlive > 0 && c.KeepAlive < time.Second {
		bad("keep_alive", "%v is below the 1s MQTT resolution", c.KeepAlive)
	}
	return errors.Join(errs...)
}

// parseBrokerURL checks a broker URL and reports whether it uses TLS.
func parseBrokerURL(s string) (*url.URL, bool, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, false, fmt.Errorf("%q: %w", s, err)
	}
	var useTLS bool
	switch u.Scheme {
	case "tcp", "mqtt":
	case "ssl", "tls", "mqtts", "tcps":
		useTLS = true
	default:
		return nil, false, fmt.Errorf("%q: scheme %q not supported, use tcp://, mqtt://, ssl:// or mqtts://", s, u.Scheme)
	}
	if u.Hostname() == "" {
		return nil, false, fmt.Errorf("%q: no host", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n <= 0 || n > 65535 {
			return nil, false, fmt.Errorf("%q: bad port %q", s, p)
		}
	}
	return u, useTLS, nil
}

// validateSubscriptions checks filters and QoS and merges duplicates,
// keeping the highest QoS.
func validateSubscriptions(subs []Subscription) (map[string]byte, error) {
	var errs []error
	out := make(map[string]byte, len(subs))
	for i, s := range subs {
		if !edgefn.ValidTopicFilter(s.Filter) {
			errs = append(errs, fmt.Errorf("subscription[%d].filter %q: not a valid MQTT topic filter", i, s.Filter))
			continue
		}
		if s.QoS > 1 {
			errs = append(errs, fmt.Errorf("subscription[%d].qos %d for %q: only 0 and 1 are supported", i, s.QoS, s.Filter))
			continue
		}
		if q, ok := out[s.Filter]; !ok || s.QoS > q {
			out[s.Filter] = s.QoS
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// ErrNotRunning is returned by Publish when the trigger is not running.
var ErrNotRunning = errors.New("mqtt: not running")

// pahoClient is the part of the paho client the trigger uses.
type pahoClient interface {
	Connect() mqtt.Token
	Disconnect(quiesce uint)
	Subscribe(topic string, qos byte, callback mqtt.MessageHandler) mqtt.Token
	Unsubscribe(topics ...string) mqtt.Token
	Publish(topic string, qos byte, retained bool, payload any) mqtt.Token
}

// MQTTStatus is a snapshot of the trigger's connection state.
type MQTTStatus struct {
	Connected bool   `json:"connected"`
	LastError string `json:"last_error,omitempty"`
	// Reconnects counts connections established after the first.
	Reconnects uint64 `json:"reconnects"`
	// ForcedReconnects counts connections the trigger dropped itself to
	// get uncommitted QoS 1 messages redelivered.
	ForcedReconnects uint64 `json:"forced_reconnects"`
	// Delivered counts messages the sink committed. They are acked, except
	// one that arrived on an earlier connection or behind a refused message
	// of its topic: the broker resends it (at least once).
	Delivered uint64 `json:"delivered"`
	// Failed counts messages the sink refused: QoS 1 ones are left unacked
	// for redelivery, QoS 0 ones are lost.
	Failed uint64 `json:"failed"`
	// Unrouted counts messages matching no current subscription (left over
	// in the persistent session from an earlier filter set); they are acked
	// and dropped.
	Unrouted uint64 `json:"unrouted"`
	// Subscribed is the number of filters subscribed on the current
	// connection.
	Subscribed int `json:"subscribed"`
	// ChainMarks counts the agent's own publishes waiting to come back
	// from the broker with their chain depth; ChainMarksEvicted those
	// forgotten before they did (see docs/security.md).
	ChainMarks        int    `json:"chain_marks"`
	ChainMarksEvicted uint64 `json:"chain_marks_evicted"`
}

// MQTT is the trigger for an external broker: it subscribes with a
// persistent session, hands each received message to the Sink once and
// acknowledges a QoS 1 message only after the Sink committed it.
type MQTT struct {
	cfg    MQTTConfig
	sink   Sink
	async  AsyncSink // the sink, if it can acknowledge later: lanes pipeline then
	log    *slog.Logger
	tlsCfg *tls.Config
	idPfx  string
	seq    atomic.Uint64
	marks  *chainMarks

	running atomic.Bool
	kick    chan struct{} // reconcile subscriptions

	mu        sync.Mutex
	client    pahoClient
	ctx       context.Context // Run's context, for Sink.Deliver
	want      map[string]byte // filters the gateway asked for
	have      map[string]byte // filters subscribed on this connection
	conn      *droppableConn  // current network connection
	connected bool
	lastErr   string
	connects  uint64
	redeliver *time.Timer // pending forced reconnect
	delay     time.Duration
	handlers  *sync.WaitGroup // handlers of the current Run
	draining  bool
	pub       pahoClient       // the connection Publish uses
	slots     chan struct{}    // the window: one per message in lanes
	lanes     map[string]*lane // topics with messages waiting for the sink
	pending   int              // messages in lanes, over all topics
	gen       uint64           // connection generation: bumped on connect and loss
	held      map[string]bool  // topics whose QoS 1 message awaits redelivery on this connection

	forced, delivered, failed, unrouted atomic.Uint64
	obs                                 observer
}

// NewMQTT checks cfg, loads the TLS files and returns a trigger that
// delivers to sink. It does not connect: Run does.
func NewMQTT(cfg MQTTConfig, sink Sink, log *slog.Logger) (*MQTT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("mqtt: nil sink")
	}
	log = orDiscard(log)
	cfg = cfg.withDefaults()
	m := &MQTT{
		cfg:   cfg,
		sink:  sink,
		log:   log.With("trigger", "mqtt"),
		idPfx: "mqtt-" + randomHex(4) + "-",
		kick:  make(chan struct{}, 1),
		want:  map[string]byte{},
		have:  map[string]byte{},
		lanes: map[string]*lane{},
		slots: make(chan struct{}, window),
		held:  map[string]bool{},
		delay: cfg.RedeliveryDelay,
		marks: newChainMarks(),
	}
	m.async, _ = sink.(AsyncSink)
	for _, b := range cfg.Brokers {
		if _, useTLS, _ := parseBrokerURL(b); useTLS {
			t, err := loadTLS(cfg.TLS)
			if err != nil {
				return nil, err
			}
			if t.InsecureSkipVerify {
				m.log.Warn("TLS: the broker's certificate is not verified (tls.insecure_skip_verify)")
			}
			m.tlsCfg = t
			break
		}
	}
	return m, nil
}

func loadTLS(c TLSConfig) (*tls.Config, error) {
	t, err := c.Load()
	if err != nil {
		return nil, fmt.Errorf("mqtt.tls.%w", err)
	}
	return t, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}

// SetSubscriptions replaces the set of filters the trigger subscribes to:
// added filters are subscribed and removed ones unsubscribed, now if
// connected, else on the next connection. Duplicate filters keep the
// highest QoS. It fails, changing nothing, if a filter is malformed or a
// QoS is above 1.
func (m *MQTT) SetSubscriptions(subs []Subscription) error {
	want, err := validateSubscriptions(subs)
	if err != nil {
		return fmt.Errorf("mqtt: set subscriptions: %w", err)
	}
	m.mu.Lock()
	m.want = want
	m.mu.Unlock()
	m.signal()
	return nil
}

func (m *MQTT) signal() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// Status returns a snapshot of the connection state and counters.
func (m *MQTT) Status() MQTTStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	var rc uint64
	if m.connects > 1 {
		rc = m.connects - 1
	}
	marks, evicted := m.marks.stats()
	return MQTTStatus{
		Connected:         m.connected,
		LastError:         m.lastErr,
		Reconnects:        rc,
		ForcedReconnects:  m.forced.Load(),
		Delivered:         m.delivered.Load(),
		Failed:            m.failed.Load(),
		Unrouted:          m.unrouted.Load(),
		Subscribed:        len(m.have),
		ChainMarks:        marks,
		ChainMarksEvicted: evicted,
	}
}

func (m *MQTT) setErr(err error) {
	m.mu.Lock()
	m.lastErr = err.Error()
	m.mu.Unlock()
}

// Run connects (retrying with backoff until it succeeds), keeps the
// subscriptions in line with SetSubscriptions, hands messages to the sink
// and, when ctx ends, disconnects and waits (bounded) for handlers still in
// Sink.Deliver. It returns nil after ctx ends, or an error if the trigger is
// already running.
func (m *MQTT) Run(ctx context.Context) error {
	if !m.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: Run called while already running")
	}
	defer m.running.Store(false)

	common := func(clientID string) *mqtt.ClientOptions {
		opts := mqtt.NewClientOptions()
		for _, b := range m.cfg.Brokers {
			opts.AddBroker(b)
		}
		return opts.SetClientID(clientID).
			SetUsername(m.cfg.Username).
			SetPassword(m.cfg.Password).
			SetCleanSession(false).
			SetKeepAlive(m.cfg.KeepAlive).
			SetPingTimeout(m.cfg.ConnectTimeout).
			SetConnectTimeout(m.cfg.ConnectTimeout).
			SetWriteTimeout(m.cfg.ConnectTimeout).
			SetAutoReconnect(true).
			SetConnectRetry(true).
			SetConnectRetryInterval(time.Second).
			SetMaxReconnectInterval(m.cfg.MaxReconnectInterval)
	}
	opts := common(m.cfg.ClientID).
		SetAutoAckDisabled(true).
		// handle is called in arrival order and may wait for the window:
		// paho then stops reading this connection (backpressure).
		SetOrderMatters(true).
		// Subscriptions are re-sent by the trigger in OnConnect; paho's
		// replay of its own stored SUBSCRIBE packets would duplicate them.
		SetResumeSubs(false).
		SetDefaultPublishHandler(m.handle).
		SetOnConnectHandler(m.onConnect).
		SetConnectionLostHandler(m.onLost).
		SetCustomOpenConnectionFn(m.dial)
	// Publishes go out on their own connection: their PUBACKs must be read
	// while the receiving connection waits for the window, whose messages
	// wait for those PUBACKs.
	pubOpts := common(m.cfg.ClientID + "-pub").
		SetCustomOpenConnectionFn(m.dialBroker)

	var client, pub pahoClient = mqtt.NewClient(opts), mqtt.NewClient(pubOpts)
	m.mu.Lock()
	m.client, m.pub, m.ctx, m.draining = client, pub, ctx, false
	handlers := &sync.WaitGroup{}
	m.handlers = handlers
	m.have = map[string]byte{}
	m.mu.Unlock()

	pub.Connect() // retried by paho until it succeeds; Publish waits for it
	connTok := client.Connect()
	connDone := connTok.Done()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	for {
		select {
		case <-ctx.Done():
			m.shutdown(client, handlers)
			pub.Disconnect(disconnectQuiesce)
			m.mu.Lock()
			m.pub = nil
			m.mu.Unlock()
			return nil
		case <-connDone:
			connDone = nil
			if err := connTok.Error(); err != nil {
				m.setErr(fmt.Errorf("connect: %w", err))
			}
		case <-m.kick:
			if err := m.reconcile(ctx, client); err != nil {
				m.setErr(err)
				m.log.Warn("mqtt subscriptions not in place, retrying", "error", err)
				retry.Reset(time.Second)
			}
		case <-retry.C:
			m.signal()
		}
	}
}

// shutdown stops the redelivery timer, waits (bounded) for message
// handlers, then disconnects.
func (m *MQTT) shutdown(client pahoClient, handlers *sync.WaitGroup) {
	m.mu.Lock()
	m.draining = true
	if m.redeliver != nil {
		m.redeliver.Stop()
		m.redeliver = nil
	}
	m.mu.Unlock()
	// Handlers first: one that got its commit acks before the connection
	// goes (a PUBACK sent after Disconnect is lost and the broker would
	// redeliver a committed message); one still in Deliver sees ctx end and
	// leaves its message unacked, for redelivery on the next run.
	done := make(chan struct{})
	go func() { handlers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(handlerDrainTimeout):
		m.log.Warn("mqtt handlers still in Sink.Deliver after shutdown", "waited", handlerDrainTimeout)
	}
	client.Disconnect(disconnectQuiesce)
	m.mu.Lock()
	m.client, m.connected, m.conn = nil, false, nil
	m.have = map[string]byte{}
	m.mu.Unlock()
}

// reconcile subscribes to wanted filters not yet subscribed on this
// connection and unsubscribes from those no longer wanted.
func (m *MQTT) reconcile(ctx context.Context, client pahoClient) error {
	m.mu.Lock()
	if !m.connected {
		m.mu.Unlock()
		return nil // onConnect kicks again
	}
	var add []Subscription
	var remove []string
	for f, q := range m.want {
		if hq, ok := m.have[f]; !ok || hq != q {
			add = append(add, Subscription{f, q})
		}
	}
	for f := range m.have {
		if _, ok := m.want[f]; !ok {
			remove = append(remove, f)
		}
	}
	m.mu.Unlock()

	var errs []error
	for _, s := range add {
		// A nil callback routes the message to the default handler, once
		// per PUBLISH packet whatever filters it matches.
		if err := wait(ctx, client.Subscribe(s.Filter, s.QoS, nil), m.cfg.ConnectTimeout); err != nil {
			errs = append(errs, fmt.Errorf("subscribe %q: %w", s.Filter, err))
			continue
		}
		m.mu.Lock()
		m.have[s.Filter] = s.QoS
		m.mu.Unlock()
	}
	if len(remove) > 0 {
		if err := wait(ctx, client.Unsubscribe(remove...), m.cfg.ConnectTimeout); err != nil {
			errs = append(errs, fmt.Errorf("unsubscribe %q: %w", remove, err))
		} else {
			m.mu.Lock()
			for _, f := range remove {
				delete(m.have, f)
			}
			m.mu.Unlock()
		}
	}
	return errors.Join(errs...)
}

// wait waits for a paho token, bounded by ctx and timeout.
func wait(ctx context.Context, tok mqtt.Token, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %v", timeout)
	}
}

func (m *MQTT) onConnect(mqtt.Client) {
	m.mu.Lock()
	m.connected = true
	m.connects++
	m.lastErr = ""
	// Resubscribe everything: the broker keeps a persistent session's
	// subscriptions, but it may have lost the session (restart without
	// persistence, expiry).
	m.have = map[string]byte{}
	m.mu.Unlock()
	m.log.Info("mqtt connected", "client_id", m.cfg.ClientID)
	m.signal()
}

func (m *MQTT) onLost(_ mqtt.Client, err error) {
	m.mu.Lock()
	m.connected = false
	m.lastErr = "connection lost: " + err.Error()
	m.newConnLocked()
	m.have = map[string]byte{}
	m.mu.Unlock()
	m.log.Warn("mqtt connection lost, reconnecting", "error", err)
}

// newConnLocked starts a connection generation: messages still waiting
// from the previous connection are not delivered (the broker resends them
// on the new one, in order) and held topics are released.
func (m *MQTT) newConnLocked() {
	m.gen++
	clear(m.held)
}

// dial opens the receiving connection for paho and remembers it, so the
// trigger can drop it to force the broker to redeliver unacked messages.
func (m *MQTT) dial(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	conn, err := m.dialBroker(u, o)
	if err != nil {
		return nil, err
	}
	dc := &droppableConn{Conn: conn}
	m.mu.Lock()
	m.conn = dc
	// Before CONNECT is sent: every message of this connection carries the
	// new generation.
	m.newConnLocked()
	m.mu.Unlock()
	return dc, nil
}

// dialBroker opens a network connection to the broker at u (TLS per its
// scheme).
func (m *MQTT) dialBroker(u *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	_, useTLS, err := parseBrokerURL(u.String())
	if err != nil {
		return nil, err
	}
	host := u.Host
	if u.Port() == "" {
		if useTLS {
			host = net.JoinHostPort(u.Hostname(), "8883")
		} else {
			host = net.JoinHostPort(u.Hostname(), "1883")
		}
	}
	d := &net.Dialer{Timeout: o.ConnectTimeout}
	var conn net.Conn
	if useTLS {
		cfg := m.tlsCfg
		if cfg == nil {
			cfg = &tls.Config{MinVersion: tls.VersionTLS12}
		}
		conn, err = tls.DialWithDialer(d, "tcp", host, cfg)
	} else {
		conn, err = d.Dial("tcp", host)
	}
	if err != nil {
		m.setErr(fmt.Errorf("dial %s: %w", u.Redacted(), err))
		return nil, err
	}
	return conn, nil
}

// errDropped is what paho reads from a connection the trigger dropped.
var errDropped = errors.New("connection dropped by the trigger so the broker redelivers unacknowledged messages")

// droppableConn turns the read error of a connection closed by drop into
// errDropped: paho ignores "use of closed network connection" (it assumes
// its own Disconnect closed it) and would not reconnect.
type droppableConn struct {
	net.Conn
	dropped atomic.Bool
}

func (c *droppableConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if err != nil && c.dropped.Load() {
		err = errDropped
	}
	return n, err
}

func (c *droppableConn) drop() error {
	c.dropped.Store(true)
	return c.Conn.Close()
}

// window bounds the messages received and not yet through the sink, over
// all topics. When it is full, handle waits, paho stops reading the
// connection and the broker keeps the rest (mosquitto: up to its
// max_queued_messages). mosquitto 2.0 does not hold to its own
// max_inflight_messages towards a client that also publishes on the same
// connection, which is why the trigger publishes on a second one.
const window = 128

// lane holds the messages of one topic waiting for the sink, oldest first;
// one goroutine delivers them in turn and exits when the lane is empty.
// With an AsyncSink a QoS 1 message is handed on as soon as its commit is
// queued and waits in acks, in order, for its commit; it is acknowledged
// (and frees its place in the window) behind the ones before it.
type lane struct {
	msgs     []laneMsg
	running  bool // a goroutine delivers msgs
	acks     []*laneAck
	draining bool // a goroutine acknowledges the done head of acks
}

type laneMsg struct {
	msg mqtt.Message
	gen uint64 // connection it arrived on
}

// laneAck is a message handed to an AsyncSink, waiting for its commit.
type laneAck struct {
	ctx      context.Context
	lm       laneMsg
	depth    int
	handlers *sync.WaitGroup
	done     bool
	err      error
	// answered and answer: as pendingPublish's (broker_pipeline.go).
	answered atomic.Int32
	answer   error
}

// handle is paho's handler for every received PUBLISH packet. paho calls
// it in arrival order (SetOrderMatters(true)); it queues the message on its
// topic's lane, waiting while the window is full. Lanes run concurrently, each
// topic's messages go to the sink one after the other, so a device's
// readings are committed (and their records numbered) in the order it
// published them.
func (m *MQTT) handle(_ mqtt.Client, msg mqtt.Message) {
	m.obs.see(Seen{Topic: msg.Topic(), Payload: msg.Payload(), QoS: msg.Qos(), Retain: msg.Retained()})
	m.mu.Lock()
	if m.draining || m.ctx == nil {
		m.mu.Unlock()
		return // not acked: redelivered on the next run
	}
	topic := msg.Topic()
	routed := false
	for f := range m.want {
		if edgefn.TopicMatch(f, topic) {
			routed = true
			break
		}
	}
	if !routed {
		m.mu.Unlock()
		m.unrouted.Add(1)
		m.log.Debug("mqtt message matches no subscription, dropped", "topic", topic)
		msg.Ack()
		return
	}
	if msg.Qos() > 0 && m.held[topic] {
		// An earlier message on this topic awaits redelivery: this one
		// waits too (unacked), so the broker resends both in order.
		m.mu.Unlock()
		return
	}
	ctx, handlers := m.ctx, m.handlers
	handlers.Add(1)
	m.mu.Unlock()
	select {
	case m.slots <- struct{}{}:
	case <-ctx.Done():
		handlers.Done()
		return // not acked: redelivered on the next run
	}
	m.mu.Lock()
	m.pending++
	l := m.lanes[topic]
	if l == nil {
		l = &lane{}
		m.lanes[topic] = l
	}
	start := !l.running
	l.running = true
	l.msgs = append(l.msgs, laneMsg{msg, m.gen})
	m.mu.Unlock()
	if start {
		go m.runLane(ctx, topic, l, handlers)
	}
}

// runLane delivers the messages of one topic in order until none is left.
// A message that arrived on an earlier connection, or behind one awaiting
// redelivery, is skipped unacked: the broker resends it.
func (m *MQTT) runLane(ctx context.Context, topic string, l *lane, handlers *sync.WaitGroup) {
	for {
		m.mu.Lock()
		if len(l.msgs) == 0 {
			l.running = false
			m.dropLaneLocked(topic, l)
			m.mu.Unlock()
			return
		}
		lm := l.msgs[0]
		l.msgs[0] = laneMsg{}
		l.msgs = l.msgs[1:]
		skip := lm.gen != m.gen || (lm.msg.Qos() > 0 && m.held[topic])
		m.mu.Unlock()
		if !skip && m.async != nil && lm.msg.Qos() > 0 {
			m.deliverAsync(ctx, topic, l, lm, handlers) // frees its slot once acknowledged
			continue
		}
		if !skip {
			m.deliver(ctx, lm)
		}
		m.release(handlers)
	}
}

// dropLaneLocked forgets an idle lane (no message to deliver, none waiting
// for its commit). m.mu is held.
func (m *MQTT) dropLaneLocked(topic string, l *lane) {
	if !l.running && len(l.msgs) == 0 && len(l.acks) == 0 && m.lanes[topic] == l {
		delete(m.lanes, topic)
	}
}

// release frees a message's place in the window.
func (m *MQTT) release(handlers *sync.WaitGroup) {
	m.mu.Lock()
	m.pending--
	m.mu.Unlock()
	<-m.slots
	handlers.Done()
}

// event is the edgefn event of a received message.
func (m *MQTT) event(msg mqtt.Message) edgefn.Event {
	return edgefn.Event{
		ID:      m.idPfx + strconv.FormatUint(m.seq.Add(1), 10),
		Source:  edgefn.SourceMQTT,
		Subject: msg.Topic(),
		Time:    time.Now(),
		Payload: msg.Payload(),
		Meta: map[string]string{
			"qos":       strconv.Itoa(int(msg.Qos())),
			"retain":    strconv.FormatBool(msg.Retained()),
			"duplicate": strconv.FormatBool(msg.Duplicate()),
		},
		Depth: m.marks.take(msg.Topic(), msg.Payload()),
	}
}

// deliver hands one message to the sink and acknowledges it once the sink
// has committed it.
func (m *MQTT) deliver(ctx context.Context, lm laneMsg) {
	ev := m.event(lm.msg)
	m.settle(ctx, lm, ev.Depth, m.sink.Deliver(ctx, ev))
}

// deliverAsync hands a QoS 1 message to the AsyncSink and returns once its
// commit is queued; it is acknowledged in lane order once durable. The
// acknowledgement runs on the lane's goroutine if the sink answered at
// once, else on a goroutine of the lane's own: paho's Ack can wait on the
// connection, which must not hold up the store's completion goroutine.
func (m *MQTT) deliverAsync(ctx context.Context, topic string, l *lane, lm laneMsg, handlers *sync.WaitGroup) {
	ev := m.event(lm.msg)
	a := &laneAck{ctx: ctx, lm: lm, depth: ev.Depth, handlers: handlers}
	m.mu.Lock()
	l.acks = append(l.acks, a)
	m.mu.Unlock()
	m.async.DeliverAsync(ctx, ev, func(err error) {
		a.answer = err // read by the lane after the CompareAndSwap below fails
		if a.answered.CompareAndSwap(0, answeredEarly) {
			return
		}
		m.settleLane(topic, l, a, err, false)
	})
	if !a.answered.CompareAndSwap(0, answeredLate) {
		m.settleLane(topic, l, a, a.answer, true)
	}
}

// settleLane marks a done and acknowledges the done head of the lane's
// acks in order, unless a goroutine is at it.
func (m *MQTT) settleLane(topic string, l *lane, a *laneAck, err error, onLane bool) {
	m.mu.Lock()
	a.done, a.err = true, err
	if l.draining || len(l.acks) == 0 || !l.acks[0].done {
		m.mu.Unlock()
		return
	}
	l.draining = true
	m.mu.Unlock()
	if onLane {
		m.drainLane(topic, l)
	} else {
		go m.drainLane(topic, l)
	}
}

func (m *MQTT) drainLane(topic string, l *lane) {
	m.mu.Lock()
	for len(l.acks) > 0 && l.acks[0].done {
		a := l.acks[0]
		l.acks[0] = nil
		l.acks = l.acks[1:]
		m.mu.Unlock()
		m.settle(a.ctx, a.lm, a.depth, a.err)
		m.release(a.handlers)
		m.mu.Lock()
	}
	l.draining = false
	m.dropLaneLocked(topic, l)
	m.mu.Unlock()
}

// settle acknowledges a message the sink committed (err nil), or leaves it
// for redelivery. A message behind one of its topic awaiting redelivery is
// not acknowledged even if committed: the broker resends both, in order
// (at least once).
func (m *MQTT) settle(ctx context.Context, lm laneMsg, depth int, err error) {
	msg := lm.msg
	if err == nil {
		m.delivered.Add(1)
		m.mu.Lock()
		m.delay = m.cfg.RedeliveryDelay
		// On a later connection the packet id may name another message:
		// leave this one to the broker's resend (it runs again: at least
		// once).
		ack := lm.gen == m.gen && (msg.Qos() == 0 || !m.held[msg.Topic()])
		m.mu.Unlock()
		if ack {
			msg.Ack()
		}
		return
	}
	m.failed.Add(1)
	if depth > 0 && msg.Qos() > 0 {
		// Not acked: the redelivered copy keeps the depth.
		m.marks.add(msg.Topic(), msg.Payload(), depth)
	}
	if ctx.Err() != nil {
		return // shutting down: the broker redelivers after the next connect
	}
	if msg.Qos() == 0 {
		m.log.Warn("mqtt QoS 0 message not committed, lost", "topic", msg.Topic(), "error", err)
		return
	}
	m.log.Warn("mqtt QoS 1 message not committed, not acked", "topic", msg.Topic(), "error", err)
	m.mu.Lock()
	m.held[msg.Topic()] = true
	m.mu.Unlock()
	m.scheduleRedelivery()
}

// scheduleRedelivery drops the connection after the redelivery delay, once
// for any number of failures in that window: MQTT 3.1.1 brokers resend
// unacknowledged messages only when the session resumes on a new
// connection. The delay doubles while failures continue.
func (m *MQTT) scheduleRedelivery() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.redeliver != nil || m.draining {
		return
	}
	d := m.delay
	m.delay = min(2*m.delay, maxRedeliveryDelay)
	m.redeliver = time.AfterFunc(d, func() {
		m.mu.Lock()
		conn := m.conn
		m.redeliver = nil
		draining := m.draining
		m.mu.Unlock()
		if conn == nil || draining {
			return
		}
		m.forced.Add(1)
		m.log.Info("mqtt dropping the connection so the broker redelivers uncommitted messages", "after", d)
		_ = conn.drop()
	})
}

// Publish sends a message to the broker and waits until it is accepted
// (PUBACK for QoS 1, written for QoS 0), bounded by ctx. When the broker
// sends it back to this trigger (a subscribed topic), the event has Depth
// depth (see chainMarks). It fails with
// ErrNotRunning outside Run, with an error naming the topic if it is not a
// valid topic name or qos is above 1, and with ctx.Err() if ctx ends first
// (a QoS 1 message may still be sent after that, from paho's store).
func (m *MQTT) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, depth int) error {
	if err := checkPublish(topic, qos); err != nil {
		return err
	}
	m.mu.Lock()
	client := m.pub
	routed := false
	for f := range m.want {
		if routed = depth > 0 && edgefn.TopicMatch(f, topic); routed {
			break
		}
	}
	m.mu.Unlock()
	if client == nil {
		return ErrNotRunning
	}
	if routed {
		// Before publishing: the message can be back before Publish returns.
		m.marks.add(topic, payload, depth)
	}
	tok := client.Publish(topic, qos, retain, payload)
	select {
	case <-tok.Done():
		if err := tok.Error(); err != nil {
			return fmt.Errorf("mqtt: publish %q: %w", topic, err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mqtt: publish %q: %w", topic, ctx.Err())
	}
}

func checkPublish(topic string, qos byte) error {
	if !edgefn.ValidTopicName(topic) {
		return fmt.Errorf("mqtt: publish: topic %q is not a valid topic name (empty, or has + # or NUL)", topic)
	}
	if qos > 1 {
		return fmt.Errorf("mqtt: publish %q: qos %d not supported, use 0 or 1", topic, qos)
	}
	return nil
}
