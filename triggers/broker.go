package triggers

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/strictyaml"
	mqttsrv "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// DefaultBrokerListen is the embedded broker's default listener.
const DefaultBrokerListen = ":1883"

// Defaults of the embedded broker's limits (see BrokerConfig).
const (
	DefaultMaxPacketSize    = 256 * edgefn.KiB
	DefaultMaxConnectSize   = 8 * edgefn.KiB
	DefaultMaxClients       = 1000
	DefaultConnectTimeout   = 10 * time.Second
	DefaultMaxRetained      = 1000
	DefaultMaxRetainedBytes = 8 * edgefn.MiB
	DefaultMaxQueued        = 256
	DefaultMaxInflight      = 64
	DefaultMaxSubscriptions = 100
	DefaultSessionExpiry    = 24 * time.Hour
	DefaultReadBuffer       = 1 * edgefn.KiB
	// maxMQTTPacket is the largest remaining length MQTT can encode.
	maxMQTTPacket = 268435455
)

// BrokerConfig configures the embedded MQTT broker. Zero limits take the
// defaults above.
type BrokerConfig struct {
	// Listen is the TCP address to listen on (default ":1883"; use
	// "127.0.0.1:0" for a free loopback port and read it with Addr).
	Listen string `yaml:"listen" json:"listen"`
	// Users may connect with a username and password (or a client
	// certificate); each may use only the topics its ACL lists.
	Users []BrokerUser `yaml:"users" json:"users,omitempty"`
	// AllowAnonymous lets clients without a username connect from any
	// address; by default only loopback clients may connect without one.
	// Remote anonymous clients get the Anonymous ACL.
	AllowAnonymous bool `yaml:"allow_anonymous" json:"allow_anonymous"`
	// Anonymous is the ACL of clients without a username, except loopback
	// ones while LocalFullAccess holds.
	Anonymous BrokerACL `yaml:"anonymous" json:"anonymous"`
	// LocalFullAccess (default true) gives anonymous loopback clients (the
	// device's own tools) every topic, $SYS included. False puts them under
	// the Anonymous ACL.
	LocalFullAccess *bool `yaml:"local_full_access" json:"local_full_access,omitempty"`

	// MaxPacketSize bounds every packet a client sends (default 256 KiB);
	// larger ones close the connection before they are read.
	MaxPacketSize edgefn.Size `yaml:"max_packet_size" json:"max_packet_size"`
	// MaxConnectSize bounds the first packet, the CONNECT with its will
	// (default 8 KiB); checked from its header, before authentication.
	MaxConnectSize edgefn.Size `yaml:"max_connect_size" json:"max_connect_size"`
	// MaxClients bounds connected clients (default 1000); sockets beyond
	// twice that, connected or not, are closed as they are accepted; a new
	// session beyond twice that, connected or persistent, ends the
	// persistent session disconnected longest.
	MaxClients int `yaml:"max_clients" json:"max_clients"`
	// ConnectTimeout is how long a new socket has to complete TLS and send
	// its CONNECT (default 10s).
	ConnectTimeout time.Duration `yaml:"connect_timeout" json:"connect_timeout"`
	// MaxRetained and MaxRetainedBytes bound the retained messages
	// (default 1000 messages, 8 MiB of payload); a retained publish beyond
	// them is delivered but not retained.
	MaxRetained      int         `yaml:"max_retained" json:"max_retained"`
	MaxRetainedBytes edgefn.Size `yaml:"max_retained_bytes" json:"max_retained_bytes"`
	// MaxQueued bounds the messages waiting to be written to one client
	// (default 256); beyond it messages to that client are dropped.
	MaxQueued int `yaml:"max_queued" json:"max_queued"`
	// MaxInflight bounds the QoS 1/2 messages held for one client, online
	// or in its persistent session (default 64).
	MaxInflight int `yaml:"max_inflight" json:"max_inflight"`
	// MaxSubscriptions bounds the filters one client subscribes to (default
	// 100); more are refused in the SUBACK.
	MaxSubscriptions int `yaml:"max_subscriptions" json:"max_subscriptions"`
	// SessionExpiry bounds how long a disconnected persistent session is
	// kept (default 24h).
	SessionExpiry time.Duration `yaml:"session_expiry" json:"session_expiry"`
	// ReadBuffer is each client's read buffer (default 1 KiB, mochi's 2 KiB
	// halved: an idle device costs the broker about 30 KiB, most of it the
	// stacks of its two goroutines; docs/performance.md). A packet larger
	// than it is read in more than one step.
	ReadBuffer edgefn.Size `yaml:"read_buffer" json:"read_buffer"`

	// TLS adds a TLS listener.
	TLS BrokerTLS `yaml:"tls" json:"tls"`
}

// BrokerTLS configures the embedded broker's TLS listener.
type BrokerTLS struct {
	// Listen is its address (e.g. ":8883"); empty: no TLS listener.
	Listen string `yaml:"listen" json:"listen,omitempty"`
	// CertFile and KeyFile are its certificate; empty: Certificate.
	CertFile string `yaml:"cert_file" json:"cert_file,omitempty"`
	KeyFile  string `yaml:"key_file" json:"key_file,omitempty"`
	// ClientCAFile holds PEM CAs whose client certificates authenticate
	// their common name as a user, without a password.
	ClientCAFile string `yaml:"client_ca_file" json:"client_ca_file,omitempty"`
	// ClientCerts is "optional" (default: clients may present a
	// certificate or use a password) or "require" (every TLS client must
	// present one); only with ClientCAFile.
	ClientCerts string `yaml:"client_certs" json:"client_certs,omitempty"`
	// Certificate is used when CertFile is empty; the agent sets it to a
	// self-signed certificate it keeps in its data dir.
	Certificate *tls.Certificate `yaml:"-" json:"-"`
}

// FieldError is one problem in a BrokerConfig or an MQTTConfig: the field,
// as named under broker.embedded or broker.external in the agent config
// ("users[0].password"), and what is wrong with it. Validate joins them with
// errors.Join; pick them out with errors.As.
type FieldError = strictyaml.FieldError

// Validate checks the configuration without listening and returns every
// problem as a *FieldError.
func (c BrokerConfig) Validate() error {
	_, err := c.users()
	bad := func(field, format string, args ...any) {
		err = errors.Join(err, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	for f, addr := range map[string]string{"listen": c.Listen, "tls.listen": c.TLS.Listen} {
		if addr != "" {
			if _, _, perr := net.SplitHostPort(addr); perr != nil {
				bad(f, "%q: %v", addr, perr)
			}
		}
	}
	err = errors.Join(err, c.Anonymous.validate("anonymous"))
	if c.MaxPacketSize < 0 || c.MaxPacketSize > maxMQTTPacket || (c.MaxPacketSize != 0 && c.MaxPacketSize < edgefn.KiB) {
		bad("max_packet_size", "%d: use 1 KiB to 256 MiB", c.MaxPacketSize)
	}
	if c.MaxConnectSize < 0 || (c.MaxConnectSize != 0 && (c.MaxConnectSize < 64 || c.MaxConnectSize > c.withDefaults().MaxPacketSize)) {
		bad("max_connect_size", "%d: use 64 bytes up to max_packet_size", c.MaxConnectSize)
	}
	for f, v := range map[string]int{"max_clients": c.MaxClients, "max_retained": c.MaxRetained, "max_queued": c.MaxQueued,
		"max_subscriptions": c.MaxSubscriptions} {
		if v < 0 || v > 1<<20 {
			bad(f, "%d: use 1 to 1048576 (0: the default)", v)
		}
	}
	if c.MaxInflight < 0 || c.MaxInflight > 65535 {
		bad("max_inflight", "%d: use 1 to 65535 (0: the default)", c.MaxInflight)
	}
	if c.ReadBuffer < 0 || (c.ReadBuffer != 0 && (c.ReadBuffer < 256 || c.ReadBuffer > 64*edgefn.KiB)) {
		bad("read_buffer", "%s: use 256B to 64KiB (0: the default)", c.ReadBuffer)
	}
	if c.MaxRetainedBytes < 0 {
		bad("max_retained_bytes", "%d: must not be negative", c.MaxRetainedBytes)
	}
	if c.SessionExpiry > 136*365*24*time.Hour {
		bad("session_expiry", "%v: at most 136 years (MQTT counts seconds in 32 bits)", c.SessionExpiry)
	}
	for f, d := range map[string]time.Duration{"connect_timeout": c.ConnectTimeout, "session_expiry": c.SessionExpiry} {
		if d < 0 {
			bad(f, "%v: must not be negative", d)
		}
	}
	t := c.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("tls", "set cert_file and key_file, or neither (the agent's self-signed certificate)")
	}
	switch t.ClientCerts {
	case "", "optional", "require":
		if t.ClientCerts != "" && t.ClientCAFile == "" {
			bad("tls.client_certs", "%q: needs client_ca_file", t.ClientCerts)
		}
	default:
		bad("tls.client_certs", "%q: use optional or require", t.ClientCerts)
	}
	if t.Listen == "" && (t.CertFile != "" || t.ClientCAFile != "") {
		bad("tls", "certificate files set but no tls.listen address")
	}
	return err
}

// withDefaults fills in the zero limits.
func (c BrokerConfig) withDefaults() BrokerConfig {
	t := true
	orDefault(&c.Listen, DefaultBrokerListen)
	orDefault(&c.LocalFullAccess, &t)
	orDefault(&c.MaxPacketSize, DefaultMaxPacketSize)
	orDefault(&c.MaxConnectSize, min(DefaultMaxConnectSize, c.MaxPacketSize))
	orDefault(&c.MaxClients, DefaultMaxClients)
	orDefault(&c.MaxRetained, DefaultMaxRetained)
	orDefault(&c.MaxQueued, DefaultMaxQueued)
	orDefault(&c.MaxInflight, DefaultMaxInflight)
	orDefault(&c.MaxSubscriptions, DefaultMaxSubscriptions)
	orDefault(&c.MaxRetainedBytes, DefaultMaxRetainedBytes)
	orDefault(&c.ConnectTimeout, DefaultConnectTimeout)
	orDefault(&c.SessionExpiry, DefaultSessionExpiry)
	orDefault(&c.ReadBuffer, DefaultReadBuffer)
	if c.TLS.ClientCAFile != "" {
		orDefault(&c.TLS.ClientCerts, "optional")
	}
	return c
}

// orDefault sets *v to d if it is the zero value.
func orDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

func (c BrokerConfig) users() (map[string]brokerUser, error) {
	var errs []error
	out := make(map[string]brokerUser, len(c.Users))
	for i, u := range c.Users {
		if u.Username == "" {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("users[%d].username", i), Problem: "empty"})
			continue
		}
		if _, dup := out[u.Username]; dup {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("users[%d].username", i), Problem: fmt.Sprintf("%q: listed twice", u.Username)})
			continue
		}
		if u.Password == "" && c.TLS.ClientCAFile == "" {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("users[%d].password", i), Problem: fmt.Sprintf("user %q: empty (a user without a password needs tls.client_ca_file)", u.Username)})
			continue
		}
		p, err := parsePassword(u.Password)
		if err != nil {
			errs = append(errs, &FieldError{Field: fmt.Sprintf("users[%d].password", i), Problem: fmt.Sprintf("user %q: %v", u.Username, err)})
			continue
		}
		if err := u.acl().validate(fmt.Sprintf("users[%d]", i)); err != nil {
			errs = append(errs, err)
			continue
		}
		out[u.Username] = brokerUser{pw: p, acl: u.acl()}
	}
	return out, errors.Join(errs...)
}

// tlsConfig builds the TLS listener's configuration: TLS 1.2 with AEAD
// suites, or 1.3.
func (t BrokerTLS) tlsConfig() (*tls.Config, error) {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
	}
	switch {
	case t.CertFile != "":
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("broker.tls: %s / %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case t.Certificate != nil:
		cfg.Certificates = []tls.Certificate{*t.Certificate}
	default:
		return nil, errors.New("broker.tls: no certificate: set cert_file and key_file")
	}
	if t.ClientCAFile != "" {
		pem, err := os.ReadFile(t.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("broker.tls.client_ca_file: %w", err)
		}
		cfg.ClientCAs = x509.NewCertPool()
		if !cfg.ClientCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("broker.tls.client_ca_file %s: no PEM certificate in it", t.ClientCAFile)
		}
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
		if t.ClientCerts == "require" {
			cfg.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return cfg, nil
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
	// AuthRefused counts connections refused: bad credentials, a will
	// outside the publish ACL, another user's client id.
	AuthRefused uint64 `json:"auth_refused"`
	// TLSAddr is the TLS listener's address, if any.
	TLSAddr string `json:"tls_addr,omitempty"`
	// Sockets counts open sockets, clients or not yet.
	Sockets int64 `json:"sockets"`
	// SocketsRefused counts sockets closed on accept (max_clients × 2 open).
	SocketsRefused uint64 `json:"sockets_refused"`
	// BadConnects counts sockets closed because the first packet was not a
	// CONNECT or was larger than max_connect_size.
	BadConnects uint64 `json:"bad_connects"`
	// ConnectTimeouts counts sockets closed for not sending a CONNECT
	// within connect_timeout.
	ConnectTimeouts uint64 `json:"connect_timeouts"`
	// ACLDenied counts publishes, subscriptions and deliveries the ACLs
	// refused.
	ACLDenied uint64 `json:"acl_denied"`
	// Retained and RetainedBytes are the retained messages kept;
	// RetainedRefused counts those not kept because the budget was full.
	Retained        int    `json:"retained"`
	RetainedBytes   int64  `json:"retained_bytes"`
	RetainedRefused uint64 `json:"retained_refused"`
	// HandlerPanics counts connections closed because a malformed packet
	// crashed mochi's handler for them (the broker goes on).
	HandlerPanics uint64 `json:"handler_panics"`
	// SessionsEvicted counts persistent sessions ended early to make room
	// for new ones (more than 2 × max_clients sessions).
	SessionsEvicted uint64 `json:"sessions_evicted"`
	// Dropped counts messages dropped because a client's queue was full.
	Dropped int64 `json:"dropped"`
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
	users map[string]brokerUser
	tls   *tls.Config
	idPfx string
	seq   atomic.Uint64
	subs  atomic.Pointer[[]string]

	ctx    context.Context // ends at Close: cancels Sink.Deliver calls
	cancel context.CancelFunc

	mu      sync.Mutex
	srv     *mqttsrv.Server
	tcp     *guardListener
	tlsLn   *guardListener
	retain  *retainHook
	events  *eventHook
	inline  *mqttsrv.Client // publishes of the agent, taken at Start (a device could reuse its id)
	started bool
	closed  bool

	stats                       brokerStats
	delivered, failed, rejected atomic.Uint64
	obs                         observer
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
	log = orDiscard(log)
	cfg = cfg.withDefaults()
	users, _ := cfg.users()
	var tlsCfg *tls.Config
	if cfg.TLS.Listen != "" {
		var err error
		if tlsCfg, err = cfg.TLS.tlsConfig(); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	b := &Broker{
		cfg:    cfg,
		sink:   sink,
		log:    log.With("trigger", "broker"),
		users:  users,
		tls:    tlsCfg,
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
	c := b.cfg
	caps := mqttsrv.NewDefaultServerCapabilities()
	caps.MaximumPacketSize = uint32(c.MaxPacketSize)
	caps.MaximumClients = int64(c.MaxClients)
	caps.MaximumClientWritesPending = int32(c.MaxQueued)
	caps.MaximumInflight = uint16(c.MaxInflight)
	caps.ReceiveMaximum = uint16(c.MaxInflight)
	caps.MaximumSessionExpiryInterval = uint32(c.SessionExpiry / time.Second)
	caps.TopicAliasMaximum = 64 // mochi's default, 65535, lets a client grow a map that large
	srv := mqttsrv.New(&mqttsrv.Options{
		InlineClient:            true,
		Logger:                  b.log,
		Capabilities:            caps,
		ClientNetReadBufferSize: int(c.ReadBuffer),
	})
	inline, ok := srv.Clients.Get(mqttsrv.InlineClientId)
	if !ok {
		return errors.New("broker: no inline client")
	}
	b.retain = &retainHook{maxCount: c.MaxRetained, maxBytes: int64(c.MaxRetainedBytes), stats: &b.stats, sizes: map[string]int{}}
	auth := &authHook{users: b.users, anonymous: c.Anonymous, allowAnonymous: c.AllowAnonymous,
		localFull: *c.LocalFullAccess, maxSubs: c.MaxSubscriptions, maxSessions: 2 * c.MaxClients,
		maxExpiry: caps.MaximumSessionExpiryInterval, srv: srv, stats: &b.stats}
	b.events = &eventHook{b: b, srv: srv}
	if as, ok := b.sink.(AsyncSink); ok {
		b.events.async = as
	}
	// Order matters for OnPublish: the retained budget clears the retain
	// flag before the event hook builds the event.
	for _, h := range []mqttsrv.Hook{auth, b.retain, b.events} {
		if err := srv.AddHook(h, nil); err != nil {
			return fmt.Errorf("broker: add hook %s: %w", h.ID(), err)
		}
	}
	// A client whose handler panicked skipped mochi's cleanup: end its
	// session so it does not linger as a connected client.
	onPanic := func(conn net.Conn) {
		for _, cl := range srv.Clients.GetAll() {
			if !cl.Net.Inline && cl.Net.Conn == conn {
				srv.UnsubscribeClient(cl)
				cl.ClearInflights()
				srv.Clients.Delete(cl.ID)
				auth.forget(cl)
			}
		}
	}
	listener := func(id, addr string, tc *tls.Config) *guardListener {
		return &guardListener{id: id, addr: addr, tls: tc, maxConns: 2 * int64(c.MaxClients), connectTimeout: c.ConnectTimeout,
			maxConnect: int(c.MaxConnectSize), stats: &b.stats.listenerStats, log: b.log, onPanic: onPanic}
	}
	tcp := listener("edgefn-tcp", c.Listen, nil)
	if err := srv.AddListener(tcp); err != nil {
		return fmt.Errorf("broker: listen on %s: %w", c.Listen, err)
	}
	var tlsLn *guardListener
	if b.tls != nil {
		tlsLn = listener("edgefn-tls", c.TLS.Listen, b.tls)
		if err := srv.AddListener(tlsLn); err != nil {
			_ = srv.Close()
			return fmt.Errorf("broker: TLS listen on %s: %w", c.TLS.Listen, err)
		}
	}
	if err := srv.Serve(); err != nil {
		_ = srv.Close()
		return fmt.Errorf("broker: serve: %w", err)
	}
	b.srv, b.inline, b.tcp, b.tlsLn = srv, inline, tcp, tlsLn
	b.log.Info("embedded mqtt broker listening", "addr", tcp.Address())
	if tlsLn != nil {
		b.log.Info("embedded mqtt broker listening with TLS", "addr", tlsLn.Address(), "client_certs", c.TLS.ClientCerts)
	}
	return nil
}

// Addr is the address the broker listens on (with the actual port when
// configured with port 0); empty before Start.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tcp.addrOrEmpty()
}

// TLSAddr is the TLS listener's address; empty before Start or without one.
func (b *Broker) TLSAddr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.tlsLn.addrOrEmpty()
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
// gets it too (marked OriginAgent, with Event.Depth = depth), synchronously,
// before Publish returns (see the re-entrancy note on Broker). The broker
// does not persist it: it returns once the message is queued to the
// connected subscribers. It fails with ErrNotRunning before Start or after
// Close, with an error naming the topic if it is not a valid topic name or
// qos is above 1, and with ctx.Err() if ctx has ended.
func (b *Broker) Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, depth int) error {
	if err := checkPublish(topic, qos); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	b.mu.Lock()
	srv, inline, closed := b.srv, b.inline, b.closed
	b.mu.Unlock()
	if srv == nil || closed {
		return ErrNotRunning
	}
	// As mochi's Server.Publish, plus the chain depth: the hooks run in
	// this goroutine and OnPublish takes the depth back off the packet.
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Retain: retain},
		TopicName:   topic,
		Payload:     bytes.Clone(payload),
		PacketID:    uint16(qos), // mochi's validity check wants one; the inline client never acks
	}
	if depth > 0 {
		pk.Properties.User = []packets.UserProperty{{Key: depthProperty, Val: strconv.Itoa(depth)}}
	}
	if err := srv.InjectPacket(inline, pk); err != nil {
		return fmt.Errorf("broker: publish %q: %w", topic, err)
	}
	return nil
}

// Status returns a snapshot of the broker's counters.
func (b *Broker) Status() BrokerStatus {
	st := BrokerStatus{
		Addr:            b.Addr(),
		TLSAddr:         b.TLSAddr(),
		Delivered:       b.delivered.Load(),
		Failed:          b.failed.Load(),
		Rejected:        b.rejected.Load(),
		AuthRefused:     b.stats.refused.Load(),
		Sockets:         b.stats.open.Load(),
		SocketsRefused:  b.stats.overLimit.Load(),
		BadConnects:     b.stats.badConnect.Load(),
		ConnectTimeouts: b.stats.connectTimeouts.Load(),
		ACLDenied:       b.stats.aclDenied.Load(),
		RetainedRefused: b.stats.retainedRefused.Load(),
		SessionsEvicted: b.stats.sessionsEvicted.Load(),
		HandlerPanics:   b.stats.panics.Load(),
	}
	b.mu.Lock()
	if b.srv != nil {
		st.Clients = atomic.LoadInt64(&b.srv.Info.ClientsConnected)
		st.Dropped = atomic.LoadInt64(&b.srv.Info.MessagesDropped)
		st.Retained, st.RetainedBytes = b.retain.usage()
	}
	b.mu.Unlock()
	return st
}

// eventHook hands matching publishes to the sink from mochi's OnPublish,
// which runs before the broker sends PUBACK and forwards the message.
type eventHook struct {
	mqttsrv.HookBase
	b     *Broker
	srv   *mqttsrv.Server
	async AsyncSink // the sink, if it can acknowledge later (broker_pipeline.go)
	pipes pipelines
}

func (h *eventHook) ID() string { return "edgefn-events" }

func (h *eventHook) Provides(x byte) bool { return x == mqttsrv.OnPublish || x == mqttsrv.OnDisconnect }

// OnDisconnect forgets the connection's pipeline.
func (h *eventHook) OnDisconnect(cl *mqttsrv.Client, _ error, _ bool) { h.pipes.forget(cl) }

// OnPublish delivers pk to the sink if its topic matches a subscription.
// On failure of a device's QoS 1 (or 2) message it returns
// packets.ErrRejectPacket, so mochi neither acknowledges nor forwards it,
// and closes the client's connection: MQTT clients resend unacknowledged
// messages only when they reconnect (with a persistent session, i.e.
// CleanSession false in MQTT 3.1.1). With an AsyncSink a device's QoS 1
// and 2 messages are pipelined (broker_pipeline.go).
func (h *eventHook) OnPublish(cl *mqttsrv.Client, pk packets.Packet) (packets.Packet, error) {
	b := h.b
	inline := cl.Net.Inline
	var pl *pipeline
	if h.async != nil && !inline {
		pl = h.pipes.get(cl)
		if pl != nil && pl.injected(&pk) {
			return pk, nil // its commit is durable: mochi acknowledges and forwards it now
		}
	}
	depth := 0
	if inline {
		depth, pk.Properties.User = takeDepth(pk.Properties.User)
	}
	b.obs.see(Seen{Topic: pk.TopicName, Payload: pk.Payload, QoS: pk.FixedHeader.Qos, Retain: pk.FixedHeader.Retain, Agent: inline})
	matched := b.matches(pk.TopicName)
	qos := pk.FixedHeader.Qos
	if h.async != nil && !inline && (matched && qos > 0 || pl != nil && !pl.empty()) {
		return h.pipeline(cl, pl, pk, matched)
	}
	if !matched {
		return pk, nil
	}
	ev := b.event(pk, inline, depth)
	err := b.sink.Deliver(b.ctx, ev)
	if err == nil {
		b.delivered.Add(1)
		return pk, nil
	}
	b.failed.Add(1)
	if inline || qos == 0 {
		// Nothing to withhold: still forward it to subscribed devices.
		b.log.Warn("mqtt message not committed", "topic", pk.TopicName, "qos", qos, "origin_agent", inline, "error", err)
		return pk, nil
	}
	h.reject(cl, pk.TopicName, err)
	return pk, packets.ErrRejectPacket
}

// pipeline withholds a device's message behind the ones of its connection
// still waiting for their commit; a matched QoS 1 or 2 message is handed to
// the sink to acknowledge once durable, a QoS 0 one is delivered now.
func (h *eventHook) pipeline(cl *mqttsrv.Client, pl *pipeline, pk packets.Packet, matched bool) (packets.Packet, error) {
	b := h.b
	if pl == nil {
		pl = h.pipes.of(cl, h, b.cfg.MaxInflight)
	}
	pp := pl.add(b.ctx, pk)
	if pp == nil {
		return pk, packets.ErrRejectPacket // the connection failed or the broker closes: not acknowledged
	}
	if !matched {
		pl.settle(pp, nil, true)
		return pk, packets.ErrRejectPacket
	}
	ev := b.event(pk, false, 0)
	if pk.FixedHeader.Qos == 0 {
		if err := b.sink.Deliver(b.ctx, ev); err != nil {
			b.failed.Add(1)
			b.log.Warn("mqtt message not committed", "topic", pk.TopicName, "qos", 0, "origin_agent", false, "error", err)
		} else {
			b.delivered.Add(1)
		}
		pl.settle(pp, nil, true)
		return pk, packets.ErrRejectPacket
	}
	h.async.DeliverAsync(b.ctx, ev, func(err error) {
		if err == nil {
			b.delivered.Add(1)
		} else {
			b.failed.Add(1)
		}
		pp.answer = err // read by the read goroutine after the CompareAndSwap below fails
		if pp.answered.CompareAndSwap(0, answeredEarly) {
			return // DeliverAsync has not returned: the read goroutine settles it
		}
		pl.settle(pp, err, false)
	})
	if !pp.answered.CompareAndSwap(0, answeredLate) {
		pl.settle(pp, pp.answer, true)
	}
	return pk, packets.ErrRejectPacket
}

// release hands a withheld message whose commit is durable back to mochi,
// which acknowledges it and forwards it to subscribers (OnPublish lets it
// through: pipeline.injected). Once the broker closes it is left
// unacknowledged.
func (h *eventHook) release(cl *mqttsrv.Client, pp *pendingPublish) {
	if h.b.ctx.Err() != nil {
		return
	}
	if err := h.srv.InjectPacket(cl, pp.pk); err != nil {
		h.b.log.Debug("mqtt message committed but not acknowledged: connection gone", "topic", pp.pk.TopicName, "client", cl.ID, "error", err)
		return
	}
	// InjectPacket counted the message as received a second time.
	atomic.AddInt64(&h.srv.Info.PacketsReceived, -1)
	atomic.AddInt64(&h.srv.Info.MessagesReceived, -1)
}

// fail disconnects a client whose withheld message failed to commit.
func (h *eventHook) fail(cl *mqttsrv.Client, pp *pendingPublish) {
	h.reject(cl, pp.pk.TopicName, pp.err)
}

// reject counts a device's QoS 1 message left without PUBACK and closes
// its connection, so it resends.
func (h *eventHook) reject(cl *mqttsrv.Client, topic string, err error) {
	h.b.rejected.Add(1)
	h.b.log.Warn("mqtt QoS 1 message not committed: no PUBACK, disconnecting the client so it resends",
		"topic", topic, "client", cl.ID, "error", err)
	if cl.Properties.ProtocolVersion == 5 {
		_ = h.srv.DisconnectClient(cl, packets.ErrImplementationSpecificError)
	} else {
		cl.Stop(fmt.Errorf("publish to %q not committed: %w", topic, err))
	}
}

// event is the edgefn event of a publish.
func (b *Broker) event(pk packets.Packet, inline bool, depth int) edgefn.Event {
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
		ev.Depth = depth
	}
	return ev
}

// depthProperty is the MQTT v5 user property in which the agent's own
// publishes carry their chain depth from Publish to OnPublish. Only the
// inline client's is read, and it is taken off before the message goes to
// subscribers.
const depthProperty = "edgefn-chain-depth"

// takeDepth returns the chain depth in props and props without it.
func takeDepth(props []packets.UserProperty) (int, []packets.UserProperty) {
	for i, p := range props {
		if p.Key == depthProperty {
			d, _ := strconv.Atoi(p.Val)
			return d, append(props[:i:i], props[i+1:]...)
		}
	}
	return 0, props
}
