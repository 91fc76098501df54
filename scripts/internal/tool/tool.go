package tool

import (
	"fmt"
	"net"
	"os"
)

// Exit ends the program with status 1 after printing "name: err" on
// stderr when err is not nil; with a nil err it returns.
func Exit(name string, err error) {
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// FreePort returns a loopback address, host:port, that nothing listened on
// a moment ago.
func FreePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}
