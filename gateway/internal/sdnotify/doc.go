// Package sdnotify tells systemd about the agent's state through the
// $NOTIFY_SOCKET datagram socket: READY=1 once it serves, WATCHDOG=1
// periodically while healthy, STOPPING=1 on shutdown. Outside systemd
// (no $NOTIFY_SOCKET) every call is a no-op.
package sdnotify
