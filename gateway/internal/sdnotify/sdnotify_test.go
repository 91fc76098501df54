package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// listen opens a unixgram socket standing in for systemd's and returns its
// name and a channel of the datagrams it receives.
func listen(t *testing.T, name string) (string, <-chan string) {
	t.Helper()
	if name == "" {
		// Short path: sun_path holds 108 bytes, t.TempDir can be longer.
		dir, err := os.MkdirTemp("", "sdn")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		name = filepath.Join(dir, "notify")
	}
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: name, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 64)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(msgs)
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return name, msgs
}

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func next(t *testing.T, msgs <-chan string) string {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram within 5s")
		return ""
	}
}

func TestReadyAndStopping(t *testing.T) {
	for _, name := range []string{"", fmt.Sprintf("@edgefn-sdnotify-test-%d", os.Getpid())} {
		sock, msgs := listen(t, name)
		n, err := New(env(map[string]string{"NOTIFY_SOCKET": sock}), os.Getpid())
		if err != nil {
			t.Fatal(err)
		}
		if !n.Enabled() || n.WatchdogInterval() != 0 {
			t.Fatalf("%s: enabled %v interval %v, want true 0", sock, n.Enabled(), n.WatchdogInterval())
		}
		if err := n.Ready(); err != nil {
			t.Fatal(err)
		}
		if got := next(t, msgs); got != "READY=1" {
			t.Fatalf("%s: got %q, want READY=1", sock, got)
		}
		if err := n.Stopping(); err != nil {
			t.Fatal(err)
		}
		if got := next(t, msgs); got != "STOPPING=1" {
			t.Fatalf("%s: got %q, want STOPPING=1", sock, got)
		}
	}
}

func TestDisabledIsNoop(t *testing.T) {
	var nilN *Notifier
	n, err := New(env(nil), 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Notifier{nilN, n, {}} {
		if x.Enabled() || x.Ready() != nil || x.WatchdogInterval() != 0 {
			t.Fatal("a notifier without NOTIFY_SOCKET must do nothing")
		}
		if err := x.Watchdog(context.Background(), nil, nil); err != nil {
			t.Fatal(err)
		}
	}
}

func TestWatchdogEnv(t *testing.T) {
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "42"}), 42)
	if err != nil || n.WatchdogInterval() != 3*time.Second {
		t.Fatalf("interval %v err %v, want 3s", n.WatchdogInterval(), err)
	}
	n, _ = New(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "41"}), 42)
	if n.WatchdogInterval() != 0 {
		t.Fatal("a watchdog for another pid must be off")
	}
	_, err = New(env(map[string]string{"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "soon"}), 42)
	if err == nil || !strings.Contains(err.Error(), `"soon"`) {
		t.Fatalf("err %v, want one quoting the bad WATCHDOG_USEC", err)
	}
}

func TestWatchdogPingsWhileHealthy(t *testing.T) {
	sock, msgs := listen(t, "")
	n, err := New(env(map[string]string{"NOTIFY_SOCKET": sock, "WATCHDOG_USEC": "20000"}), os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sick := make(chan bool, 1)
	sick <- false
	skipped := make(chan error, 64)
	done := make(chan error)
	go func() {
		done <- n.Watchdog(ctx, func(context.Context) error {
			s := <-sick
			sick <- s
			if s {
				return errors.New("outbox stuck")
			}
			return nil
		}, func(err error) { skipped <- err })
	}()
	for i := 0; i < 3; i++ {
		if got := next(t, msgs); got != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", got)
		}
	}
	<-sick
	sick <- true
	select {
	case err := <-skipped:
		if !errors.Is(err, ErrUnhealthy) || !strings.Contains(err.Error(), "outbox stuck") {
			t.Fatalf("skip reason %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("an unhealthy agent must skip its pings")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNotifyUnreachable(t *testing.T) {
	n, _ := New(env(map[string]string{"NOTIFY_SOCKET": filepath.Join(t.TempDir(), "gone")}), 1)
	if err := n.Ready(); err == nil || !strings.Contains(err.Error(), "NOTIFY_SOCKET") {
		t.Fatalf("err %v, want one naming NOTIFY_SOCKET", err)
	}
}
