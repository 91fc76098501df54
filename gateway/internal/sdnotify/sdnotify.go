package sdnotify

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"
)

// Notifier sends sd_notify(3) messages to the socket systemd named in the
// environment. The zero value and a nil *Notifier are disabled: their
// methods do nothing and return nil.
type Notifier struct {
	socket   string
	interval time.Duration
}

// New reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID through getenv
// (os.Getenv in the agent). pid is this process's id (os.Getpid()): a
// WATCHDOG_PID naming another process disables the watchdog, as
// sd_watchdog_enabled(3) does. A malformed WATCHDOG_USEC is an error that
// quotes it; the notifier is then still usable for Ready and Stopping.
func New(getenv func(string) string, pid int) (*Notifier, error) {
	n := &Notifier{socket: getenv("NOTIFY_SOCKET")}
	usec := getenv("WATCHDOG_USEC")
	if usec == "" {
		return n, nil
	}
	if wpid := getenv("WATCHDOG_PID"); wpid != "" && wpid != strconv.Itoa(pid) {
		return n, nil
	}
	us, err := strconv.ParseUint(usec, 10, 63)
	if err != nil || us == 0 {
		return n, fmt.Errorf("sdnotify: WATCHDOG_USEC=%q is not a positive number of microseconds", usec)
	}
	n.interval = time.Duration(us) * time.Microsecond
	return n, nil
}

// Enabled reports whether a notify socket is set.
func (n *Notifier) Enabled() bool { return n != nil && n.socket != "" }

// WatchdogInterval is systemd's WatchdogSec, or 0 when the watchdog is off
// for this process.
func (n *Notifier) WatchdogInterval() time.Duration {
	if !n.Enabled() {
		return 0
	}
	return n.interval
}

// Notify sends one state string ("READY=1", "STATUS=...", several joined
// by newlines). It fails when the socket cannot be reached, which under
// systemd means the service manager went away.
func (n *Notifier) Notify(state string) error {
	if !n.Enabled() {
		return nil
	}
	// A leading '@' names an abstract socket; the net package maps it to
	// the NUL byte itself.
	conn, err := net.DialUnix("unixgram", nil, &net.UnixAddr{Name: n.socket, Net: "unixgram"})
	if err != nil {
		return fmt.Errorf("sdnotify: dial NOTIFY_SOCKET %s: %w", n.socket, err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte(state)); err != nil {
		return fmt.Errorf("sdnotify: send %q to %s: %w", state, n.socket, err)
	}
	return nil
}

// Ready tells systemd the agent serves (Type=notify units become active).
func (n *Notifier) Ready() error { return n.Notify("READY=1") }

// Stopping tells systemd the agent is shutting down.
func (n *Notifier) Stopping() error { return n.Notify("STOPPING=1") }

// ErrUnhealthy wraps the health check's error when Watchdog skips a ping.
var ErrUnhealthy = errors.New("sdnotify: health check failed, watchdog not pinged")

// Watchdog sends WATCHDOG=1 every half WatchdogInterval until ctx ends,
// and returns nil then. When healthy is not nil it runs before each ping
// with a deadline of one interval; a ping is skipped while it fails, so a
// hung or broken agent misses its deadline and systemd restarts it. onSkip
// (may be nil) hears each skipped ping's reason. Without a watchdog it
// returns at once.
func (n *Notifier) Watchdog(ctx context.Context, healthy func(context.Context) error, onSkip func(error)) error {
	iv := n.WatchdogInterval()
	if iv <= 0 {
		return nil
	}
	t := time.NewTicker(iv / 2)
	defer t.Stop()
	for {
		if err := n.ping(ctx, iv, healthy); err != nil && onSkip != nil {
			onSkip(err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

func (n *Notifier) ping(ctx context.Context, iv time.Duration, healthy func(context.Context) error) error {
	if healthy != nil {
		hctx, cancel := context.WithTimeout(ctx, iv)
		err := healthy(hctx)
		cancel()
		if err != nil {
			return fmt.Errorf("%w: %w", ErrUnhealthy, err)
		}
	}
	return n.Notify("WATCHDOG=1")
}
