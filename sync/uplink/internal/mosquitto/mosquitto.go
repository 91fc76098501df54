package mosquitto

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Binary is where Debian installs the broker.
const Binary = "/usr/sbin/mosquitto"

// Options configures the broker.
type Options struct {
	// CAFile, CertFile, KeyFile turn on TLS for the listener.
	CAFile, CertFile, KeyFile string
	// RequireClientCert demands a client certificate signed by CAFile.
	RequireClientCert bool
	// Persistence keeps sessions and queued messages across a Stop/Start
	// (saved on a clean stop).
	Persistence bool
}

// Broker is one mosquitto process (restartable on the same port).
type Broker struct {
	t    testing.TB
	opts Options
	dir  string
	port int
	conf string

	mu   sync.Mutex
	cmd  *exec.Cmd
	out  *syncBuffer
	done chan struct{}
}

// Start writes the config and starts the broker; it is killed at the end of
// the test. The test is skipped when mosquitto is not installed.
func Start(t testing.TB, opts Options) *Broker {
	t.Helper()
	if _, err := os.Stat(Binary); err != nil {
		t.Skipf("mosquitto not installed (%s): run scripts/install-deps.sh", Binary)
	}
	b := &Broker{t: t, opts: opts, dir: t.TempDir(), port: freePort(t)}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	var c bytes.Buffer
	fmt.Fprintf(&c, "listener %d 127.0.0.1\nallow_anonymous true\n", b.port)
	if opts.CAFile != "" {
		fmt.Fprintf(&c, "cafile %s\ncertfile %s\nkeyfile %s\n", opts.CAFile, opts.CertFile, opts.KeyFile)
		if opts.RequireClientCert {
			c.WriteString("require_certificate true\n")
		}
	}
	if opts.Persistence {
		fmt.Fprintf(&c, "persistence true\npersistence_location %s/\nautosave_interval 0\n", b.dir)
	} else {
		c.WriteString("persistence false\n")
	}
	// A slow test subscriber must not lose QoS 1 messages to the default
	// queue limit of 1000.
	c.WriteString("max_queued_messages 0\nmax_inflight_messages 100\nlog_dest stderr\nlog_type error\nlog_type warning\nlog_type notice\n")
	if os.Getuid() == 0 {
		c.WriteString("user root\n") // else mosquitto drops to a user that cannot read TempDir
	}
	if err := os.WriteFile(b.conf, c.Bytes(), 0o600); err != nil {
		t.Fatalf("mosquitto: %v", err)
	}
	b.Start()
	t.Cleanup(func() {
		b.mu.Lock()
		cmd, done := b.cmd, b.done
		b.mu.Unlock()
		if cmd != nil {
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return b
}

// Addr is host:port.
func (b *Broker) Addr() string { return "127.0.0.1:" + strconv.Itoa(b.port) }

// URL is the broker URL for paho: tcp:// or ssl://.
func (b *Broker) URL() string {
	if b.opts.CAFile != "" {
		return "ssl://" + b.Addr()
	}
	return "tcp://" + b.Addr()
}

// Start starts the (stopped) broker and waits until it accepts connections.
func (b *Broker) Start() {
	b.t.Helper()
	cmd := exec.Command(Binary, "-c", b.conf)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		b.t.Fatalf("mosquitto: start: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	b.mu.Lock()
	b.cmd, b.out, b.done = cmd, out, done
	b.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", b.Addr(), time.Second)
		if err == nil {
			c.Close()
			return
		}
		select {
		case <-done:
			b.t.Fatalf("mosquitto exited at start: %s", out.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("mosquitto not listening on %s after 10s: %v; output: %s", b.Addr(), err, out.String())
		}
	}
}

// Stop stops the broker with SIGTERM (it saves persistence) and waits.
func (b *Broker) Stop() {
	b.mu.Lock()
	cmd, done := b.cmd, b.done
	b.cmd = nil
	b.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("mosquitto: free port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// syncBuffer collects the broker's output; exec copies into it from its own
// goroutine while a failing test may read it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
