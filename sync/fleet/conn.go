package fleet

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
)

// Dial says how to reach the broker.
type Dial struct {
	Broker   string // tcp://, mqtt://, ssl://, tls://, mqtts://
	ClientID string // default: random
	Username string
	Password string
	TLS      *tls.Config
	// Will, if set, is published retained by the broker when the
	// connection is lost without a disconnect.
	WillTopic   string
	WillPayload []byte
	// OnConnect runs on every (re)connection, before anything else is
	// delivered; the agent subscribes there.
	OnConnect func(*Conn)
	// AutoReconnect keeps reconnecting after a lost connection (the agent);
	// off for the CLI, which fails instead.
	AutoReconnect bool
	// Resubscribe reconnects after a lost connection (without retrying
	// a failed first connect) and subscribes again to every filter
	// subscribed through the Conn and not unsubscribed: a clean session
	// forgets them. The CLI's --watch survives a broker restart with it.
	Resubscribe bool
	// OnLost, if set, runs once when the connection drops (not on Close).
	OnLost func()
}

// Conn is a connection to the broker.
type Conn struct {
	c     paho.Client
	topic Topics

	mu   sync.Mutex
	subs map[string]paho.MessageHandler // with Dial.Resubscribe
}

// Connect connects, waiting at most until ctx is done.
func Connect(ctx context.Context, d Dial, t Topics) (*Conn, error) {
	if d.ClientID == "" {
		d.ClientID = "edgefn-fleet-" + randomHex(6)
	}
	cn := &Conn{topic: t}
	o := paho.NewClientOptions().AddBroker(d.Broker).SetClientID(d.ClientID).
		SetCleanSession(true).SetOrderMatters(true).
		SetAutoReconnect(d.AutoReconnect || d.Resubscribe).SetConnectRetry(d.AutoReconnect).
		SetMaxReconnectInterval(5 * time.Second).SetConnectTimeout(10 * time.Second).
		SetKeepAlive(30 * time.Second)
	if d.Username != "" {
		o.SetUsername(d.Username).SetPassword(d.Password)
	}
	if d.TLS != nil {
		o.SetTLSConfig(d.TLS)
	}
	if d.WillTopic != "" {
		o.SetBinaryWill(d.WillTopic, d.WillPayload, 1, true)
	}
	if d.Resubscribe {
		cn.subs = map[string]paho.MessageHandler{}
	}
	if d.OnLost != nil {
		o.SetConnectionLostHandler(func(paho.Client, error) { d.OnLost() })
	}
	if d.OnConnect != nil || d.Resubscribe {
		o.SetOnConnectHandler(func(paho.Client) {
			go func() {
				cn.resubscribe()
				if d.OnConnect != nil {
					d.OnConnect(cn)
				}
			}()
		})
	}
	cn.c = paho.NewClient(o)
	tok := cn.c.Connect()
	if err := wait(ctx, tok); err != nil {
		cn.c.Disconnect(0)
		return nil, fmt.Errorf("connect %s: %w", d.Broker, err)
	}
	return cn, nil
}

// Close disconnects cleanly (no last will).
func (cn *Conn) Close() { cn.c.Disconnect(250) }

// Topics is the connection's topic layout.
func (cn *Conn) Topics() Topics { return cn.topic }

func wait(ctx context.Context, tok paho.Token) error {
	select {
	case <-tok.Done():
		return tok.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Publish publishes at QoS 1 and waits for the PUBACK.
func (cn *Conn) Publish(ctx context.Context, topic string, payload []byte, retained bool) error {
	if err := wait(ctx, cn.c.Publish(topic, 1, retained, payload)); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

// Subscribe subscribes at QoS 1; handler runs for each message, in order.
func (cn *Conn) Subscribe(ctx context.Context, filter string, handler func(topic string, payload []byte, retained bool)) error {
	h := func(_ paho.Client, m paho.Message) {
		handler(m.Topic(), m.Payload(), m.Retained())
	}
	cn.mu.Lock()
	if cn.subs != nil {
		cn.subs[filter] = h
	}
	cn.mu.Unlock()
	if err := wait(ctx, cn.c.Subscribe(filter, 1, h)); err != nil {
		return fmt.Errorf("subscribe %s: %w", filter, err)
	}
	return nil
}

// resubscribe subscribes again after a reconnection (Dial.Resubscribe);
// on the first connection there is nothing to subscribe yet.
func (cn *Conn) resubscribe() {
	cn.mu.Lock()
	hs := make(map[string]paho.MessageHandler, len(cn.subs))
	for f, h := range cn.subs {
		hs[f] = h
	}
	cn.mu.Unlock()
	for f, h := range hs {
		cn.c.Subscribe(f, 1, h)
	}
}

// Unsubscribe drops a subscription.
func (cn *Conn) Unsubscribe(ctx context.Context, filter string) error {
	cn.mu.Lock()
	if cn.subs != nil {
		delete(cn.subs, filter)
	}
	cn.mu.Unlock()
	return wait(ctx, cn.c.Unsubscribe(filter))
}

// DefaultChunkSize fits brokers that cap messages at 128 KiB (AWS IoT
// Core) with room for the MQTT header and topic.
const DefaultChunkSize = 96 * 1024

// PublishBlob publishes b as retained chunks under its SHA-256 and returns
// the Module that names them.
func (cn *Conn) PublishBlob(ctx context.Context, b []byte, chunkSize int) (Module, error) {
	if chunkSize <= 0 {
		chunkSize = DefaultChunkSize
	}
	sum := sha256.Sum256(b)
	m := Module{SHA256: hex.EncodeToString(sum[:]), Size: int64(len(b)), ChunkSize: chunkSize}
	if len(b) == 0 {
		return Module{}, errors.New("empty module")
	}
	toks := make([]paho.Token, 0, m.Chunks())
	for i := range m.Chunks() {
		end := min((i+1)*chunkSize, len(b))
		toks = append(toks, cn.c.Publish(cn.topic.Chunk(m.SHA256, i), 1, true, b[i*chunkSize:end]))
	}
	for i, tok := range toks {
		if err := wait(ctx, tok); err != nil {
			return Module{}, fmt.Errorf("publish chunk %d of %d: %w", i, len(toks), err)
		}
	}
	return m, nil
}

// FetchWindow is how many chunk topics FetchBlob subscribes to at once
// (AWS IoT Core's limit of filters per SUBSCRIBE).
const FetchWindow = 8

// waitUntil checks cond each time changed signals, until it holds or ctx
// ends.
func waitUntil(ctx context.Context, changed <-chan struct{}, cond func() bool) error {
	for !cond() {
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

// ErrBlobMismatch says the fetched chunks do not hash to the module's
// SHA-256 (a tampered or partly overwritten blob).
var ErrBlobMismatch = errors.New("module bytes do not match their sha256")

// MissingChunksError says which chunks of a blob had not arrived when a
// fetch ended (its context done): Missing are those of the window of
// chunk topics being waited for (chunk topics are numbered from 0), the
// ones the fetch was blocked on.
type MissingChunksError struct {
	SHA256  string
	Chunks  int   // the blob's number of chunks
	Arrived int   // how many had arrived
	Missing []int // the missing chunks of the window being waited for
	// After, if set, is the fetch's bound: the error then says "missing
	// after <After>".
	After time.Duration
	Err   error // the context's error
}

func (e *MissingChunksError) Error() string {
	var which string
	switch {
	case len(e.Missing) == 1:
		which = fmt.Sprintf("chunk %d", e.Missing[0])
	case len(e.Missing) <= 4:
		which = "chunks " + strings.Trim(fmt.Sprint(e.Missing), "[]")
	default:
		which = fmt.Sprintf("chunks %s ... (%d)", strings.Trim(fmt.Sprint(e.Missing[:4]), "[]"), len(e.Missing))
	}
	if e.After > 0 {
		return fmt.Sprintf("blob %s %s of %d missing after %v (%d of %d chunks arrived)", e.SHA256, which, e.Chunks, e.After, e.Arrived, e.Chunks)
	}
	return fmt.Sprintf("blob %s %s of %d missing (%d of %d chunks arrived): %v", e.SHA256, which, e.Chunks, e.Arrived, e.Chunks, e.Err)
}

func (e *MissingChunksError) Unwrap() error { return e.Err }

// FetchBlob collects the retained chunks of m and checks them against its
// SHA-256 and size. It waits until every chunk arrived or ctx is done.
func (cn *Conn) FetchBlob(ctx context.Context, m Module, maxSize int64) ([]byte, error) {
	if m.Size > maxSize {
		return nil, fmt.Errorf("module of %d bytes is above the %d this gateway fetches", m.Size, maxSize)
	}
	n := m.Chunks()
	if n == 0 {
		return nil, fmt.Errorf("module %s has no chunks", m.SHA256)
	}
	var mu sync.Mutex
	chunks := make([][]byte, n)
	have := 0
	more := make(chan struct{}, 1) // a chunk arrived
	prefix := cn.topic.Chunk(m.SHA256, 0)
	prefix = prefix[:len(prefix)-1]
	handler := func(_ paho.Client, msg paho.Message) {
		i, err := strconv.Atoi(strings.TrimPrefix(msg.Topic(), prefix))
		if err != nil || i < 0 || i >= n {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if chunks[i] == nil {
			have++
		}
		chunks[i] = append([]byte(nil), msg.Payload()...)
		select {
		case more <- struct{}{}:
		default:
		}
	}
	// Each chunk topic is subscribed to exactly, FetchWindow at a time:
	// AWS IoT Core sends no retained message to a filter with a
	// wildcard and takes at most 8 filters per SUBSCRIBE.
	for from := 0; from < n; from += FetchWindow {
		to := min(from+FetchWindow, n)
		filters := make(map[string]byte, to-from)
		for i := from; i < to; i++ {
			filters[cn.topic.Chunk(m.SHA256, i)] = 1
		}
		if err := wait(ctx, cn.c.SubscribeMultiple(filters, handler)); err != nil {
			return nil, fmt.Errorf("module %.12s: subscribe to chunks %d-%d: %w", m.SHA256, from, to-1, err)
		}
		arrived := func() bool {
			mu.Lock()
			defer mu.Unlock()
			for i := from; i < to; i++ {
				if chunks[i] == nil {
					return false
				}
			}
			return true
		}
		err := waitUntil(ctx, more, arrived)
		topics := slices.Collect(maps.Keys(filters))
		_ = wait(context.Background(), cn.c.Unsubscribe(topics...))
		if err != nil {
			mu.Lock()
			defer mu.Unlock()
			e := &MissingChunksError{SHA256: m.SHA256, Chunks: n, Arrived: have, Err: err}
			for i := from; i < to; i++ {
				if chunks[i] == nil {
					e.Missing = append(e.Missing, i)
				}
			}
			return nil, e
		}
	}
	mu.Lock()
	defer mu.Unlock()
	out := make([]byte, 0, m.Size)
	for _, c := range chunks {
		out = append(out, c...)
	}
	sum := sha256.Sum256(out)
	if int64(len(out)) != m.Size || hex.EncodeToString(sum[:]) != m.SHA256 {
		return nil, fmt.Errorf("module %.12s: %w (%d bytes, sha256 %x...)", m.SHA256, ErrBlobMismatch, len(out), sum[:6])
	}
	return out, nil
}

// Retained returns the retained messages currently matching filter, by
// topic. It knows it has them all once a probe it publishes after
// subscribing comes back: the broker queues retained messages on
// subscribe, before it handles the probe.
func (cn *Conn) Retained(ctx context.Context, filter string) (map[string][]byte, error) {
	var mu sync.Mutex
	got := map[string][]byte{}
	if err := cn.Subscribe(ctx, filter, func(topic string, p []byte, retained bool) {
		if retained && len(p) > 0 {
			mu.Lock()
			got[topic] = append([]byte(nil), p...)
			mu.Unlock()
		}
	}); err != nil {
		return nil, err
	}
	defer func() { _ = cn.Unsubscribe(context.Background(), filter) }()
	probe := cn.topic.prefix() + "/probe/" + randomHex(8)
	back := make(chan struct{}, 1)
	if err := cn.Subscribe(ctx, probe, func(string, []byte, bool) {
		select {
		case back <- struct{}{}:
		default:
		}
	}); err != nil {
		return nil, err
	}
	defer func() { _ = cn.Unsubscribe(context.Background(), probe) }()
	if err := cn.Publish(ctx, probe, []byte("x"), false); err != nil {
		return nil, err
	}
	select {
	case <-back:
	case <-ctx.Done():
		return nil, fmt.Errorf("retained %s: %w", filter, ctx.Err())
	}
	mu.Lock()
	defer mu.Unlock()
	return got, nil
}
