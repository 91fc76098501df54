package main

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/internal/rawmqtt"
)

// `mqttbench conns`: what idle device connections cost the gateway side.
// N raw MQTT 3.1.1 clients (this process) connect, each subscribes at QoS 1
// to its own topic, and stay idle; the resident memory of the gateway-side
// processes before and after, divided by N, is the cost of one connection.
func connsMain(args []string) error {
	fs := flag.NewFlagSet("conns", flag.ExitOnError)
	n := fs.Int("n", 2000, "idle device connections")
	bin := fs.String("edgefn", "bin/edgefn", "agent binary")
	relay := fs.String("relay", "gateway/testdata/relay.wasm", "the agent's function (make wasm)")
	only := fs.String("only", "floor,mosquitto,edgefn", "paths to measure: floor (mochi with its defaults), mosquitto, edgefn (embedded broker, the agent's defaults)")
	settle := fs.Duration("settle", 5*time.Second, "wait after the last connection before measuring")
	profile := fs.String("profile", "", "directory for a heap profile of the agent with the connections open")
	_ = fs.Parse(args)
	self, dir, err := selfAndScratch("mqttbench-conns")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	e := &env{dir: dir, self: self, maxQueued: 1000, inflight: -1, logs: logf,
		brokerExtra: fmt.Sprintf(", max_clients: %d", *n)}
	for _, p := range []*string{bin, relay} {
		if *p, err = filepath.Abs(*p); err != nil {
			return err
		}
	}
	e.edgefn, e.relayWasm = *bin, *relay
	fmt.Printf("%d idle connections, each subscribed (QoS 1) to its own topic; RSS = VmRSS of the gateway-side processes, median of 3 s of samples\n\n", *n)
	fmt.Println("| path | RSS before (MiB) | RSS with the connections (MiB) | per connection (KiB) | anonymous per connection (KiB) |")
	fmt.Println("| --- | --- | --- | --- | --- |")
	for i, key := range strings.Split(*only, ",") {
		var r *running
		switch key {
		case "floor":
			r, err = startFloor(e, i)
		case "mosquitto":
			var p *proc
			var addr string
			if p, addr, err = e.startMosquitto(i); err == nil {
				r = &running{broker: addr, ps: procs{p}}
			}
		case "edgefn":
			r, err = startAgent(e, i, false, "emit", "normal")
		default:
			return fmt.Errorf("-only: unknown path %q", key)
		}
		if err != nil {
			return withLogTail(fmt.Errorf("%s: %w", key, err), logf)
		}
		err = measureConns(r, key, *n, *settle, *profile)
		r.stop()
		if err != nil {
			return withLogTail(fmt.Errorf("%s: %w", key, err), logf)
		}
	}
	return nil
}

func measureConns(r *running, key string, n int, settle time.Duration, profile string) error {
	time.Sleep(2 * time.Second)
	rss0, anon0 := medianRSS(r.ps, 3*time.Second)
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := 0; i < n; i++ {
		c, err := idleClient(r.broker, fmt.Sprintf("idle-%s-%d", key, i))
		if err != nil {
			return fmt.Errorf("connection %d: %w", i, err)
		}
		conns = append(conns, c)
	}
	time.Sleep(settle)
	rss1, anon1 := medianRSS(r.ps, 3*time.Second)
	if profile != "" && r.agent != nil {
		if err := <-profileAgent(r, profile, fmt.Sprintf("conns-%d.heap.pprof", n), "heap", 0); err != nil {
			fmt.Fprintf(os.Stderr, "heap profile: %v\n", err)
		}
	}
	// Every connection is still open.
	for i, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(time.Millisecond))
		if _, err := c.Read(make([]byte, 1)); !os.IsTimeout(err) {
			return fmt.Errorf("connection %d closed by the broker during the measurement: %v", i, err)
		}
	}
	fmt.Printf("| %s | %.1f | %.1f | %.1f | %.1f |\n", key, mib(rss0), mib(rss1),
		float64(rss1-rss0)/1024/float64(n), float64(anon1-anon0)/1024/float64(n))
	return nil
}

// idleClient connects as clientID (keepalive 10 minutes), subscribes at QoS 1
// to devices/<clientID>/cmd and checks both acknowledgements.
func idleClient(addr, clientID string) (net.Conn, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	fail := func(err error) (net.Conn, error) { c.Close(); return nil, err }
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	connect := rawmqtt.Connect(clientID)
	connect[len(connect)-len(clientID)-4], connect[len(connect)-len(clientID)-3] = 0x02, 0x58 // keepalive 600 s
	if _, err := c.Write(connect); err != nil {
		return fail(err)
	}
	ack := make([]byte, 5)
	if _, err := io.ReadFull(c, ack[:4]); err != nil || ack[0] != 0x20 || ack[3] != 0 {
		return fail(fmt.Errorf("CONNACK % x: %v", ack[:4], err))
	}
	topic := "devices/" + clientID + "/cmd"
	body := append([]byte{0, 1, byte(len(topic) >> 8), byte(len(topic))}, topic...)
	body = append(body, 1)
	if _, err := c.Write(append(rawmqtt.Header(0x82, len(body)), body...)); err != nil {
		return fail(err)
	}
	if _, err := io.ReadFull(c, ack); err != nil || ack[0] != 0x90 || ack[4] > 2 {
		return fail(fmt.Errorf("SUBACK % x: %v", ack, err))
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}

// medianRSS samples VmRSS and RssAnon (summed over ps) every 100 ms for d.
func medianRSS(ps procs, d time.Duration) (rss, anon int64) {
	var rs, as []int64
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		var r, a int64
		for _, p := range ps {
			v, _ := procstat.Status(p.pid(), "VmRSS")
			w, _ := procstat.Status(p.pid(), "RssAnon")
			r, a = r+v, a+w
		}
		rs, as = append(rs, r), append(as, a)
	}
	slices.Sort(rs)
	slices.Sort(as)
	return rs[len(rs)/2], as[len(as)/2]
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func withLogTail(err error, logf *os.File) error {
	b, _ := os.ReadFile(logf.Name())
	if len(b) > 3000 {
		b = b[len(b)-3000:]
	}
	return fmt.Errorf("%w\nlog:\n%s", err, b)
}
