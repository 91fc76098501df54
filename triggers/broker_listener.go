package triggers

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// Errors a guarded connection's first read can end with.
var (
	errNotConnect      = errors.New("mqtt: first packet is not CONNECT")
	errConnectTooLarge = errors.New("mqtt: CONNECT packet too large")
)

// listenerStats counts what a guarded listener refused.
type listenerStats struct {
	open            atomic.Int64           // sockets accepted and not yet closed
	overLimit       atomic.Uint64          // closed at accept: too many sockets open
	badConnect      atomic.Uint64          // first packet not a CONNECT, or too large
	connectTimeouts atomic.Uint64          // no complete CONNECT before the deadline
	panics          atomic.Uint64          // connection handlers that panicked
	lastPanic       atomic.Pointer[string] // the last one's value and stack
}

// guardListener is a mochi listener (TCP, optionally TLS) that protects
// the broker before mochi reads anything: it caps open sockets, gives a
// socket a deadline to deliver its CONNECT, and refuses a first packet that
// is not a CONNECT or declares more than maxConnect bytes, before mochi
// allocates a buffer of the declared size.
type guardListener struct {
	id             string
	addr           string
	tls            *tls.Config
	maxConns       int64
	connectTimeout time.Duration
	maxConnect     int
	stats          *listenerStats
	log            *slog.Logger
	// onPanic cleans up after a connection whose handler panicked.
	onPanic func(net.Conn)

	ln     net.Listener
	end    atomic.Bool
	mu     sync.Mutex
	conns  map[*guardConn]struct{}
	served sync.WaitGroup
}

func (l *guardListener) ID() string       { return l.id }
func (l *guardListener) Protocol() string { return "tcp" }

func (l *guardListener) Address() string {
	if l.ln != nil {
		return l.ln.Addr().String()
	}
	return l.addr
}

// addrOrEmpty is Address, or "" for no listener (nil: the broker is not
// started, or has no TLS listener).
func (l *guardListener) addrOrEmpty() string {
	if l == nil {
		return ""
	}
	return l.Address()
}

func (l *guardListener) Init(log *slog.Logger) error {
	if l.log == nil {
		l.log = log
	}
	l.conns = map[*guardConn]struct{}{}
	ln, err := net.Listen("tcp", l.addr)
	if err != nil {
		return err
	}
	l.ln = ln
	return nil
}

// Serve accepts connections until Close and hands each to establish (mochi's
// connection handler) in its own goroutine.
func (l *guardListener) Serve(establish listeners.EstablishFn) {
	for {
		c, err := l.ln.Accept()
		if err != nil {
			return
		}
		if l.stats.open.Load() >= l.maxConns {
			l.stats.overLimit.Add(1)
			c.Close()
			continue
		}
		var nc net.Conn = c
		if l.tls != nil {
			nc = tls.Server(c, l.tls)
		}
		gc := &guardConn{Conn: nc, maxConnect: l.maxConnect}
		// The TLS handshake and the CONNECT must arrive by then; mochi
		// replaces the deadline with the keepalive's once it has the CONNECT.
		_ = nc.SetDeadline(time.Now().Add(l.connectTimeout))
		// Under mu, so that Close (which sets end, then takes mu) either
		// sees this connection or this loop sees end.
		l.mu.Lock()
		if l.end.Load() {
			l.mu.Unlock()
			c.Close()
			return
		}
		l.conns[gc] = struct{}{}
		l.served.Add(1)
		l.mu.Unlock()
		l.stats.open.Add(1)
		go func() {
			defer l.served.Done()
			err := l.establish(establish, gc)
			gc.Close()
			l.mu.Lock()
			delete(l.conns, gc)
			l.mu.Unlock()
			l.stats.open.Add(-1)
			switch {
			case err == nil:
			case !gc.connected.Load() && errors.Is(err, os.ErrDeadlineExceeded):
				l.stats.connectTimeouts.Add(1)
				l.log.Debug("mqtt socket closed: no CONNECT in time", "remote", c.RemoteAddr().String(), "timeout", l.connectTimeout)
			default:
				l.log.Debug("mqtt connection ended", "remote", c.RemoteAddr().String(), "error", err)
			}
			if errors.Is(err, errNotConnect) || errors.Is(err, errConnectTooLarge) {
				l.stats.badConnect.Add(1)
			}
		}()
	}
}

// establish runs mochi's handler for one connection. mochi's packet
// decoders can panic on malformed input (FuzzBrokerPackets found a
// SUBSCRIBE that indexes past its end); one client's bad packet must close
// its connection, not the agent.
func (l *guardListener) establish(establish listeners.EstablishFn, gc *guardConn) (err error) {
	defer func() {
		if r := recover(); r != nil {
			stack := string(debug.Stack())
			l.stats.lastPanic.Store(&stack)
			l.stats.panics.Add(1)
			err = fmt.Errorf("mqtt connection handler panicked: %v", r)
			l.log.Error("mqtt client sent a packet that crashed its handler; connection closed",
				"remote", gc.RemoteAddr().String(), "panic", fmt.Sprint(r), "stack", stack)
			gc.Close()
			if l.onPanic != nil {
				l.onPanic(gc)
			}
		}
	}()
	return establish(l.id, gc)
}

// Close stops accepting, has mochi close its clients, closes the sockets
// that never became clients, and waits for their handlers to return.
func (l *guardListener) Close(closeClients listeners.CloseFn) {
	if !l.end.CompareAndSwap(false, true) {
		return
	}
	if l.ln != nil {
		_ = l.ln.Close()
	}
	closeClients(l.id)
	l.mu.Lock()
	for gc := range l.conns {
		if !gc.connected.Load() {
			gc.Close()
		}
	}
	l.mu.Unlock()
	l.served.Wait()
}

// guardConn checks the fixed header of the first packet as it is read.
type guardConn struct {
	net.Conn
	maxConnect int
	sawConnect atomic.Bool // the first packet's header passed
	connected  atomic.Bool // mochi read the CONNECT (it then sets the keepalive deadline)

	hdr    int // bytes of the first fixed header seen so far
	remain int // its remaining length so far
	mult   int
}

// Read reads from the connection; until the first packet's fixed header is
// complete it checks it, closing the connection on a packet that is not a
// CONNECT or is longer than maxConnect.
func (c *guardConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if !c.sawConnect.Load() && n > 0 {
		if herr := c.inspect(p[:n]); herr != nil {
			c.Conn.Close()
			return 0, herr
		}
	}
	return n, err
}

// SetDeadline is called by mochi once it has read the CONNECT, to apply
// the client's keepalive.
func (c *guardConn) SetDeadline(t time.Time) error {
	c.connected.Store(true)
	return c.Conn.SetDeadline(t)
}

func (c *guardConn) inspect(b []byte) error {
	for _, x := range b {
		if c.hdr == 0 {
			if x != 0x10 { // CONNECT, flags 0 [MQTT-3.1.0-1] [MQTT-2.2.2-1]
				return errNotConnect
			}
			c.hdr, c.mult = 1, 1
			continue
		}
		c.remain += int(x&0x7f) * c.mult
		c.mult *= 128
		c.hdr++
		if c.remain > c.maxConnect {
			return fmt.Errorf("%w: declares %d+ bytes, the limit is %d", errConnectTooLarge, c.remain, c.maxConnect)
		}
		if x&0x80 == 0 {
			c.sawConnect.Store(true)
			return nil
		}
		if c.hdr == 5 {
			return errConnectTooLarge // a fifth length byte is malformed
		}
	}
	return nil
}
