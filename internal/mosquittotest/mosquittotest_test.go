package mosquittotest

import (
	"net"
	"testing"
)

func TestStartStopRestart(t *testing.T) {
	b := Start(t)
	dial := func() error {
		c, err := net.Dial("tcp", b.Addr())
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial(); err != nil {
		t.Fatalf("dial running broker: %v", err)
	}
	b.Stop()
	if err := dial(); err == nil {
		t.Fatal("stopped broker still accepts connections")
	}
	b.Start()
	if err := dial(); err != nil {
		t.Fatalf("dial restarted broker: %v", err)
	}
	b.Restart()
	if err := dial(); err != nil {
		t.Fatalf("dial after Restart: %v", err)
	}
}

func TestTLS(t *testing.T) {
	b := Start(t, WithTLS(), WithMaxQueuedMessages(5000))
	if b.TLSURL() == "" || b.CAFile() == "" {
		t.Fatal("WithTLS: no TLS URL or CA file")
	}
}
