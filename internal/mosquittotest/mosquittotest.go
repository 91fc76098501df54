package mosquittotest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testpki"
	"github.com/edgefn/edgefn/internal/testutil"
)

// Binary is where Debian's mosquitto package installs the broker.
const Binary = "/usr/sbin/mosquitto"

// installHint is what a test prints when mosquitto is missing.
const installHint = "mosquitto not found at " + Binary +
	": install it with `sudo apt-get install mosquitto mosquitto-clients` (scripts/install-deps.sh does)"

// startTimeout bounds how long Start and Restart wait for the port to accept
// connections.
const startTimeout = 10 * time.Second

// Option changes the broker configuration.
type Option func(*config)

type config struct {
	maxQueued   int
	maxInflight int
	tls         bool
	// ca, cert, key name the TLS listener's files (WithServerTLS);
	// empty: WithTLS makes its own.
	ca, cert, key string
	requireCert   bool
	extra         []string
}

// WithMaxQueuedMessages sets max_queued_messages (mosquitto's default of 1000
// drops QoS 1 messages for a slow persistent subscriber).
func WithMaxQueuedMessages(n int) Option { return func(c *config) { c.maxQueued = n } }

// WithMaxInflightMessages sets max_inflight_messages: how many QoS 1
// messages mosquitto sends a client before it waits for PUBACKs (default 20).
func WithMaxInflightMessages(n int) Option { return func(c *config) { c.maxInflight = n } }

// WithTLS adds a second, TLS listener with a server certificate for
// "localhost" and 127.0.0.1 signed by a fresh CA; see TLSURL and CAFile.
func WithTLS() Option { return func(c *config) { c.tls = true } }

// WithServerTLS adds a TLS listener (see TLSURL) with the given CA, server
// certificate and key, for tests that bring their own PKI; with
// requireClientCert, clients must present a certificate signed by ca.
func WithServerTLS(ca, cert, key string, requireClientCert bool) Option {
	return func(c *config) {
		c.tls, c.ca, c.cert, c.key, c.requireCert = true, ca, cert, key, requireClientCert
	}
}

// WithConfigLines appends raw lines to mosquitto.conf.
func WithConfigLines(lines ...string) Option {
	return func(c *config) { c.extra = append(c.extra, lines...) }
}

// Broker is a running mosquitto process owned by a test.
type Broker struct {
	t       testing.TB
	dir     string
	conf    string
	port    int
	tlsPort int
	caFile  string

	mu     sync.Mutex
	cmd    *exec.Cmd
	done   chan struct{}
	output *testutil.Buffer
}

// Start starts mosquitto on a free loopback port with persistence in
// t.TempDir(), waits until it accepts connections and stops it when the test
// ends. It fails the test if mosquitto is not installed or does not start.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Fatal(installHint)
	}
	var c config
	for _, o := range opts {
		o(&c)
	}
	b := &Broker{t: t, dir: t.TempDir()}
	b.port = freePort(t)
	var conf strings.Builder
	fmt.Fprintf(&conf, "per_listener_settings false\nallow_anonymous true\n")
	fmt.Fprintf(&conf, "persistence true\npersistence_location %s/\n", b.dir)
	fmt.Fprintf(&conf, "log_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\nlog_type information\n")
	fmt.Fprintf(&conf, "set_tcp_nodelay true\n")
	if os.Geteuid() == 0 {
		// Run as root, mosquitto drops to the "mosquitto" user, which cannot
		// read the test's private temp dir.
		fmt.Fprintf(&conf, "user root\n")
	}
	if c.maxQueued > 0 {
		fmt.Fprintf(&conf, "max_queued_messages %d\n", c.maxQueued)
	}
	if c.maxInflight > 0 {
		fmt.Fprintf(&conf, "max_inflight_messages %d\n", c.maxInflight)
	}
	for _, l := range c.extra {
		fmt.Fprintln(&conf, l)
	}
	fmt.Fprintf(&conf, "listener %d 127.0.0.1\n", b.port)
	if c.tls {
		b.tlsPort = freePort(t)
		ca, cert, key := c.ca, c.cert, c.key
		if ca == "" {
			pki := testpki.New(t)
			ca, cert, key = pki.CAFile, pki.ServerCert, pki.ServerKey
		}
		b.caFile = ca
		fmt.Fprintf(&conf, "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n", b.tlsPort, ca, cert, key)
		if c.requireCert {
			fmt.Fprintf(&conf, "require_certificate true\n")
		}
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(conf.String()), 0o600); err != nil {
		t.Fatalf("mosquittotest: write config: %v", err)
	}
	t.Cleanup(func() {
		b.Stop()
		if t.Failed() {
			// What mosquitto said (dropped messages, refused clients) is
			// often the reason a test failed.
			log := b.Log()
			t.Logf("mosquittotest: broker log (last 8 KiB):\n%s", log[max(0, len(log)-8<<10):])
		}
	})
	b.start()
	return b
}

// URL is the plain listener's address, tcp://127.0.0.1:PORT.
func (b *Broker) URL() string { return "tcp://127.0.0.1:" + strconv.Itoa(b.port) }

// Addr is the plain listener's host:port.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// Port is the plain listener's port.
func (b *Broker) Port() int { return b.port }

// TLSURL is the TLS listener's address, ssl://127.0.0.1:PORT; empty
// without WithTLS.
func (b *Broker) TLSURL() string {
	if b.tlsPort == 0 {
		return ""
	}
	return "ssl://127.0.0.1:" + strconv.Itoa(b.tlsPort)
}

// CAFile is the PEM file of the CA that signed the TLS listener's
// certificate; empty without WithTLS.
func (b *Broker) CAFile() string { return b.caFile }

// Pid is the running broker's process id (0 when stopped), for
// benchmarks that read its memory.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		return 0
	}
	return b.cmd.Process.Pid
}

// Dir is the broker's directory (config, persistence file).
func (b *Broker) Dir() string { return b.dir }

// Log returns what mosquitto wrote to stderr so far.
func (b *Broker) Log() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.output == nil {
		return ""
	}
	return b.output.String()
}

// Stop stops the broker gracefully (SIGTERM), which saves sessions and
// queued messages to the persistence file. Stopping a stopped broker does
// nothing.
func (b *Broker) Stop() { b.signal(syscall.SIGTERM) }

// Kill kills the broker (SIGKILL), as a crash would: what was not saved yet
// (mosquitto saves on exit and every autosave_interval) is lost.
func (b *Broker) Kill() { b.signal(syscall.SIGKILL) }

// Restart stops the broker gracefully and starts it again on the same port
// with the same persistence file.
func (b *Broker) Restart() {
	b.t.Helper()
	b.Stop()
	b.start()
}

// Start starts a stopped broker again on the same port with the same
// persistence file.
func (b *Broker) Start() {
	b.t.Helper()
	b.start()
}

func (b *Broker) signal(sig syscall.Signal) {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(startTimeout):
		_ = cmd.Process.Kill()
		<-done
	}
}

func (b *Broker) start() {
	b.t.Helper()
	b.mu.Lock()
	if b.cmd != nil {
		b.mu.Unlock()
		b.t.Fatal("mosquittotest: broker already running")
	}
	out := &testutil.Buffer{}
	if b.output != nil {
		_, _ = out.Write([]byte(b.output.String()))
	}
	cmd := exec.Command(Binary, "-c", b.conf)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.mu.Unlock()
		b.t.Fatalf("mosquittotest: start %s: %v", Binary, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.cmd, b.done, b.output = cmd, done, out
	b.mu.Unlock()

	ports := []int{b.port}
	if b.tlsPort != 0 {
		ports = append(ports, b.tlsPort)
	}
	deadline := time.Now().Add(startTimeout)
	for _, p := range ports {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(p), time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case <-done:
				b.mu.Lock()
				b.cmd = nil
				b.mu.Unlock()
				b.t.Fatalf("mosquittotest: mosquitto exited before listening on %d:\n%s", p, out.String())
			case <-time.After(10 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				b.Kill()
				b.t.Fatalf("mosquittotest: port %d not accepting connections after %v: %v\n%s", p, startTimeout, err, out.String())
			}
		}
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquittotest: find a free port: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
