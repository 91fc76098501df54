package triggers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultBrokerListen is the embedded broker's default listener.
const DefaultBrokerListen = ":1883"

// BrokerConfig configures the embedded MQTT broker.
type BrokerConfig struct {
	// Listen is the TCP address to listen on (default ":1883"; use
	// "127.0.0.1:0" for a free loopback port and read it with Addr).
	Listen string `yaml:"listen" json:"listen"`
	// Users may connect with a username and password.
	Users []BrokerUser `yaml:"users" json:"users,omitempty"`
	// AllowAnonymous lets clients without a username connect from any
	// address; by default only loopback clients may connect without one.
	AllowAnonymous bool `yaml:"allow_anonymous" json:"allow_anonymous"`
}

// Validate checks the configuration without listening and returns every
// problem, each naming its field.
func (c BrokerConfig) Validate() error {
	_, err := c.users()
	if c.Listen != "" {
		if _, _, perr := net.SplitHostPort(c.Listen); perr != nil {
			err = errors.Join(err, fmt.Errorf("broker.listen %q: %w", c.Listen, perr))
		}
	}
	return err
}

func (c BrokerConfig) users() (map[string]password, error) {
	var errs []error
	out := make(map[string]password, len(c.Users))
	for i, u := range c.Users {
		if u.Username == "" {
			errs = append(errs, fmt.Errorf("broker.users[%d].username: empty", i))
			continue
		}
		if _, dup := out[u.Username]; dup {
			errs = append(errs, fmt.Errorf("broker.users[%d].username %q: listed twice", i, u.Username))
			continue
		}
		p, err := parsePassword(u.Password)
		if err != nil {
			errs = append(errs, fmt.Errorf("broker.users[%d].password (user %q): %w", i, u.Username, err))
			continue
		}
		out[u.Username] = p
	}
	return out, errors.Join(errs...)
}

// BrokerStatus is a snapshot of the embedded broker's state.
type BrokerStatus struct {
	Addr    string `json:"addr"`
	Clients int64  `json:"clients"`
	// Delivered counts messages the sink committed.
	Delivered uint64 `json:"delivered"`
	// Failed counts messages the sink refused.
	Failed uint64 `json:"failed"`
	// Rejected counts QoS 1 publishes left without PUBACK (their client was
	// disconnected so it sends them again).
	Rejected uint64 `json:"rejected"`
	// AuthRefused counts connections refused for bad credentials.
	AuthRefused uint64 `json:"auth_refused"`
}

// Broker is the embedded MQTT broker (mochi-mqtt). Devices connect to it;
// every PUBLISH matching a subscription is handed to the Sink inside the
// broker's OnPublish hook, before the broker acknowledges it, so a device's
// QoS 1 PUBACK means the functions' effects are durable.
//
// Re-entrancy: Publish runs the broker's hooks in the caller's goroutine,
// so a Publish on a subscribed topic calls Sink.Deliver (with
// Meta[MetaOrigin] = OriginAgent) before it returns, in that goroutine. The
// sink must not block on such events (it may be inside a Deliver of its own
// already); the broker holds no lock while calling the sink, so Publish may
// be called from any goroutine, including from inside Sink.Deliver.
type Broker struct {
	cfg   BrokerConfig
	sink  Sink
	log   *slog.Logger
	users map[string]password
	idPfx string
	seq   atomic.Uint64
	subs  atomic.Pointer[[]string]

	ctx    context.Context // ends at Close: cancels Sink.Deliver calls
	cancel context.CancelFunc

	mu      sync.Mutex
	srv     *mqttsrv.Server
	tcp     *listeners.TCP
	started bool
	closed  bool

	delivered, failed, rejected, refused atomic.Uint64
}

// NewBroker checks cfg and returns a broker that delivers to sink. It does
// not listen: Start does.
func NewBroker(cfg BrokerConfig, sink Sink, log *slog.Logger) (*Broker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if sink == nil {
		return nil, errors.New("broker: nil sink")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if cfg.Listen == "" {
		cfg.Listen = DefaultBrokerListen
	}
	users, _ := cfg.users()
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:    cfg,
		sink:   sink,
		log:    log.With("trigger", "broker"),
		users:  users,
		idPfx:  "mqtt-" + randomHex(4) + "-",
		ctx:    ctx,
		cancel: cancel,
	}
	b.subs.Store(&[]string{})
	return b, nil
}

// Start listens on the configured address and serves clients. It fails if
// the address is taken or the broker was started before.
func (b *Broker) Start() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.started {
		return errors.New("broker: Start called twice")
	}
	b.started = true
	srv := mqttsrv.New(&mqttsrv.Options{
		InlineClient: true,
		Logger:       b.log,
	})
	auth := &authHook{users: b.users, allowAnonymous: b.cfg.AllowAnonymous, refused: func() { b.refused.Add(1) }}
	if err := srv.AddHook(auth, nil); err != nil {
		return fmt.Errorf("broker: add auth hook: %w", err)
	}
	if err := srv.AddHook(&eventHook{b: b, srv: srv}, nil); err != nil {
		return fmt.Errorf("broker: add event hook: %w", err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: "edgefn-tcp", Address: b.cfg.Listen})
	if err := srv.AddListener(tcp); err != nil {
		return fmt.Errorf("broker: listen on %s: %w", b.cfg.Listen, err)
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.srv, b.tcp = srv, tcp
	b.log.Info("embedded mqtt broker listening", "addr", tcp.Address())
	return nil
}

// Addr is the address the broker listens on (with the actual port when
// configured with port 0); empty before Start.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.tcp == nil {
		return ""
	}
	return b.tcp.Address()
}

// Run starts the broker, serves until ctx ends, then closes it (bounded by
// 5 seconds). It returns Start's error, or nil.
func (b *Broker) Run(ctx context.Context) error {
	if err := b.Start(); err != nil {
		return err
	}
	<-ctx.Done()
	cctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return b.Close(cctx)
}

// Close cancels Sink.Deliver calls in progress (their QoS 1 messages stay
// unacknowledged), stops the listener and disconnects every client. It
// returns ctx.Err() if that takes longer than ctx allows. Closing twice is
// a no-op.
func (b *Broker) Close(ctx context.Context) error {
	b.mu.Lock()
	srv := b.srv
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	b.cancel()
	if srv == nil {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- srv.Close() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("broker: close: %w", ctx.Err())
	}
}

// SetSubscriptions replaces the filters whose messages reach the sink. The
// QoS of a subscription is ignored: devices choose the QoS of what they
// publish. It fails, changing nothing, if a filter is malformed or a QoS is
// above 1.
func (b *Broker) SetSubscriptions(subs []Subscription) error {
	want, err := validateSubscriptions(subs)
	if err != nil {
		return fmt.Errorf("broker: set subscriptions: %w", err)
	}
	filters := make([]string, 0, len(want))
	for f := range want {
		filters = append(filters, f)
	}
	b.subs.Store(&filters)
	return nil
}

func (b *Broker) matches(topic string) bool {
	for _, f := range *b.subs.Load() {
		if edgefn.TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// Publish publishes a message through the broker's inline client: devices
// subscribed to topic receive it, and if it matches a subscription the sink
// gets it too (marked OriginAgent), synchronously, before Publish returns
// (see the re-entrancy note on Broker). The broker does not persist it: it
// returns once the message is queued to the connected subscribers. It
// fails with ErrNotRunning before Start or after Close, with an error
// naming the topic if it is not a valid topic name or qos is above 1, and
// with ctx.Err() if ctx has ended.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool) error {
	if err := checkPublish(topic, qos); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	b.mu.Lock()
	srv, closed := b.srv, b.closed
	b.mu.Unlock()
	if srv == nil || closed {
		return ErrNotRunning
	}
	if err := srv.Publish(topic, bytes.Clone(payload), retain, qos); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	return nil
}

// Status returns a snapshot of the broker's counters.
func (b *Broker) Status() BrokerStatus {
	st := BrokerStatus{
		Addr:        b.Addr(),
		Delivered:   b.delivered.Load(),
		Failed:      b.failed.Load(),
		Rejected:    b.rejected.Load(),
		AuthRefused: b.refused.Load(),
	}
	b.mu.Lock()
	if b.srv != nil {
		st.Clients = atomic.LoadInt64(&b.srv.Info.ClientsConnected)
	}
	b.mu.Unlock()
	return st
}

// eventHook hands matching publishes to the sink from mochi's OnPublish,
// which runs before the broker sends PUBACK and forwards the message.
type eventHook struct {
	mqttsrv.HookBase
	b   *Broker
	srv *mqttsrv.Server
}

func (h *eventHook) ID() string { return "edgefn-events" }

func (h *eventHook) Provides(x byte) bool { return x == mqttsrv.OnPublish }

// OnPublish delivers pk to the sink if its topic matches a subscription.
// On failure of a device's QoS 1 (or 2) message it returns
// packets.ErrRejectPacket, so mochi neither acknowledges nor forwards it,
// and closes the client's connection: MQTT clients resend unacknowledged
// messages only when they reconnect (with a persistent session, i.e.
// CleanSession false in MQTT 3.1.1).
func (h *eventHook) OnPublish(cl *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	if !b.matches(pk.TopicName) {
		return pk, nil
	}
	inline := cl.Net.Inline
	ev := edgefn.Event{
		ID:      b.idPfx + strconv.FormatUint(b.seq.Add(1), 10),
		Source:  edgefn.SourceMQTT,
		Subject: pk.TopicName,
		Time:    time.Now(),
		Payload: pk.Payload,
		Meta: map[string]string{
			"qos":       strconv.Itoa(int(pk.FixedHeader.Qos)),
			"retain":    strconv.FormatBool(pk.FixedHeader.Retain),
			"duplicate": strconv.FormatBool(pk.FixedHeader.Dup),
		},
	}
	if inline {
		ev.Meta[MetaOrigin] = OriginAgent
	}
	err := b.sink.Deliver(b.ctx, ev)
	if err == nil {
		b.delivered.Add(1)
		return pk, nil
	}
	b.failed.Add(1)
	if inline || pk.FixedHeader.Qos == 0 {
		// Nothing to withhold: still forward it to subscribed devices.
		b.log.Warn("mqtt message not committed", "topic", pk.TopicName, "qos", pk.FixedHeader.Qos, "origin_agent", inline, "error", err)
		return pk, nil
	}
	b.rejected.Add(1)
	b.log.Warn("mqtt QoS 1 message not committed: no PUBACK, disconnecting the client so it resends",
		"topic", pk.TopicName, "client", cl.ID, "error", err)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.srv.DisconnectClient(cl, packets.ErrImplementationSpecificError)
	} else {
		cl.Stop(fmt.Errorf("publish to %q not committed: %w", pk.TopicName, err))
	}
	return pk, packets.ErrRejectPacket
}
