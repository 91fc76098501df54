package tool

import (
	"net"
	"testing"
)

func TestFreePort(t *testing.T) {
	addr, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("FreePort gave %s, which cannot be listened on: %v", addr, err)
	}
	ln.Close()
}

func TestExitNil(t *testing.T) {
	Exit("tool", nil) // returns: a nil error does not end the program
}
