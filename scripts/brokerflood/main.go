package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"sync"
	"time"

	"github.com/edgefn/edgefn/internal/rawmqtt"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:1883", "broker address")
	mode := flag.String("mode", "connect", "connect, publish or silent")
	n := flag.Int("n", 2, "connections")
	size := flag.Int("size", 150<<20, "declared packet length in bytes (connect, publish)")
	wait := flag.Duration("wait", 15*time.Second, "silent: how long to hold the sockets before counting")
	flag.Parse()
	if *mode == "silent" {
		silent(*addr, *n, *wait)
		return
	}
	if *mode != "connect" && *mode != "publish" {
		log.Fatalf("-mode %q: use connect, publish or silent", *mode)
	}
	var wg sync.WaitGroup
	for i := range *n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fmt.Println(flood(*addr, *mode, i, *size))
		}()
	}
	wg.Wait()
}

// flood sends one packet declaring size bytes and streams them.
func flood(addr, mode string, i, size int) string {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return fmt.Sprintf("conn %d: %v", i, err)
	}
	defer c.Close()
	// A CONNECT that starts like a real one (MQTT 3.1.1, username and
	// password flags), then zeros.
	prefix := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0xC2, 0, 60}
	header := append(rawmqtt.Header(0x10, size), prefix...)
	size -= len(prefix)
	if mode == "publish" {
		if _, err := c.Write(rawmqtt.Connect(fmt.Sprintf("flood%d", i))); err != nil {
			return fmt.Sprintf("conn %d: CONNECT: %v", i, err)
		}
		ack := make([]byte, 4)
		if _, err := io.ReadFull(c, ack); err != nil || ack[3] != 0 {
			return fmt.Sprintf("conn %d: CONNACK %x: %v", i, ack, err)
		}
		size += len(prefix)
		header = append(rawmqtt.Header(0x30, size), 0, 1, 'x') // topic "x"
		size -= 3
	}
	sent, err := rawmqtt.Stream(c, header, size)
	if err != nil {
		return fmt.Sprintf("conn %d: the broker closed the connection after %d bytes: %v", i, sent, err)
	}
	// Stay until the broker answers or hangs up, as an attacker would, so
	// that it handles the whole packet.
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, _ = c.Read(make([]byte, 1))
	return fmt.Sprintf("conn %d: the broker read all %d bytes", i, sent)
}

// silent opens n sockets that send nothing and reports, after wait, how
// many the broker has closed.
func silent(addr string, n int, wait time.Duration) {
	var conns []net.Conn
	for range n {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			fmt.Printf("socket %d: %v\n", len(conns), err)
			break
		}
		conns = append(conns, c)
	}
	fmt.Printf("opened %d silent sockets\n", len(conns))
	time.Sleep(wait) // the measurement: what the broker did meanwhile
	closed := 0
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		var ne net.Error
		if _, err := c.Read(make([]byte, 1)); err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			closed++
		}
		c.Close()
	}
	fmt.Printf("after %v: %d of %d closed by the broker\n", wait, closed, len(conns))
	if closed < len(conns) {
		os.Exit(1)
	}
}
