package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/edgefn/edgefn/internal/procstat"
	"github.com/edgefn/edgefn/scripts/internal/tool"
)

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error { *l = append(*l, v); return nil }

type options struct {
	bin       string
	functions string
	sizes     listFlag
	env       listFlag
	starts    int
	idle      time.Duration
	keepWarm  time.Duration
	rate      int
	load      time.Duration
	topic     string
	payload   string
}

func main() {
	var o options
	flag.StringVar(&o.bin, "bin", "dist/edgefn-linux-amd64", "agent binary to run (native architecture)")
	flag.StringVar(&o.functions, "functions", "examples", "functions_dir of the agent (make wasm builds its modules)")
	flag.Var(&o.sizes, "size", "binary whose size to report (repeatable)")
	flag.Var(&o.env, "env", "KEY=VALUE added to the agent's environment (repeatable), e.g. GODEBUG=madvdontneed=1")
	flag.IntVar(&o.starts, "starts", 5, "warm starts measured for start-to-ready (median reported)")
	flag.DurationVar(&o.idle, "idle", 10*time.Second, "idle period sampled after ready")
	flag.DurationVar(&o.keepWarm, "keep-warm", 0, "limits.default.keep_warm of the agent (0: its default, 5m); idle RSS is sampled after it, when the functions' compiled code is unloaded")
	flag.IntVar(&o.rate, "rate", 1000, "MQTT messages per second during the load phase (QoS 1)")
	flag.DurationVar(&o.load, "load", 20*time.Second, "length of the load phase (0: no load phase)")
	flag.StringVar(&o.topic, "topic", "sensors/bench/temperature", "topic of the load messages")
	flag.StringVar(&o.payload, "payload", `{"celsius": 31.5}`, "payload of the load messages")
	flag.Parse()
	tool.Exit("footprint", run(o, os.Stdout))
}

func run(o options, w io.Writer) error {
	fmt.Fprintln(w, "| measure | value | target |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	for _, p := range o.sizes {
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("binary size: %w (run make cross)", err)
		}
		fmt.Fprintf(w, "| size %s | %.1f MiB (%d bytes) | <= 20 MB |\n", filepath.Base(p), float64(st.Size())/(1<<20), st.Size())
	}
	dir, err := os.MkdirTemp("", "edgefn-footprint")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	fns, err := filepath.Abs(o.functions)
	if err != nil {
		return err
	}
	brokerAddr, err := tool.FreePort()
	if err != nil {
		return err
	}
	cfg := filepath.Join(dir, "edgefn.yaml")
	conf := fmt.Sprintf(`data_dir: %s
functions_dir: %s
log_level: warn
broker: { embedded: { listen: %q } }
admin: { listen: "127.0.0.1:0", tls: "off" }
gpio: { backend: simulated }
outbox: { durability: normal }
`, filepath.Join(dir, "data"), fns, brokerAddr)
	if o.keepWarm > 0 {
		conf += fmt.Sprintf("limits: { default: { keep_warm: %s } }\n", o.keepWarm)
	}
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		return err
	}
	env := append(os.Environ(), o.env...)
	logf, err := os.Create(filepath.Join(dir, "agent.log"))
	if err != nil {
		return err
	}
	defer logf.Close()

	// Cold start: compiles every function and fills the cache.
	a, err := start(o.bin, cfg, env, logf)
	if err != nil {
		return withLog(err, logf)
	}
	cold := a.ready
	if err := a.stop(); err != nil {
		return withLog(err, logf)
	}
	fmt.Fprintf(w, "| start to ready, cold cache (compiles %s) | %s | |\n", filepath.Base(fns), cold.Round(time.Millisecond))
	var warm []time.Duration
	for i := 0; i < o.starts; i++ {
		a, err = start(o.bin, cfg, env, logf)
		if err != nil {
			return withLog(err, logf)
		}
		warm = append(warm, a.ready)
		if i < o.starts-1 {
			if err := a.stop(); err != nil {
				return withLog(err, logf)
			}
		}
	}
	defer a.stop()
	fmt.Fprintf(w, "| start to ready, warm cache (median of %d) | %s (%s) | <= 1 s |\n", len(warm), median(warm).Round(time.Millisecond), durs(warm))

	if o.keepWarm > 0 {
		time.Sleep(o.keepWarm + time.Second) // the functions' code is unloaded after keep_warm
	}
	idle := a.sample(o.idle, 250*time.Millisecond)
	fmt.Fprintf(w, "| RSS idle, %s after ready%s (median; max) | %.1f MiB; %.1f MiB | <= 20 MB |\n", o.idle, keepNote(o.keepWarm), mib(medianInt(idle)), mib(slices.Max(idle)))
	pid := a.cmd.Process.Pid
	anon, _ := procstat.Status(pid, "RssAnon")
	file, _ := procstat.Status(pid, "RssFile")
	fmt.Fprintf(w, "| RSS idle split: anonymous (heap, guest memory, compiled code) / file (the binary's pages) | %.1f MiB / %.1f MiB | |\n", mib(anon), mib(file))

	if o.load <= 0 {
		return nil
	}
	res, err := load(o, brokerAddr, a)
	if err != nil {
		return withLog(err, logf)
	}
	fmt.Fprintf(w, "| MQTT load: QoS 1 published / acked / rate | %d / %d / %.0f msg/s | %d msg/s for %s |\n", res.sent, res.acked, res.rate, o.rate, o.load)
	fmt.Fprintf(w, "| MQTT load: function replies received (on actuators/fan/#) | %d | |\n", res.replies)
	fmt.Fprintf(w, "| RSS under load (median; max) | %.1f MiB; %.1f MiB | |\n", mib(medianInt(res.rss)), mib(slices.Max(res.rss)))
	after := a.sample(3*time.Second, 250*time.Millisecond)
	fmt.Fprintf(w, "| RSS 3 s after load | %.1f MiB | |\n", mib(after[len(after)-1]))
	anon, _ = procstat.Status(pid, "RssAnon")
	fmt.Fprintf(w, "| RSS anonymous 3 s after load | %.1f MiB | |\n", mib(anon))
	hwm, _ := procstat.Status(pid, "VmHWM")
	fmt.Fprintf(w, "| peak RSS (VmHWM) | %.1f MiB | |\n", mib(hwm))
	if len(o.env) > 0 {
		fmt.Fprintf(w, "\nagent environment: %s\n", strings.Join(o.env, " "))
	}
	return nil
}

func keepNote(k time.Duration) string {
	if k <= 0 {
		return ""
	}
	return fmt.Sprintf(" + keep_warm %s", k)
}

func withLog(err error, logf *os.File) error {
	b, _ := os.ReadFile(logf.Name())
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return fmt.Errorf("%w\nagent log:\n%s", err, b)
}

type agent struct {
	cmd   *exec.Cmd
	ready time.Duration
	done  chan error
}

// start runs the agent and waits for the "ready" line on its stdout.
func start(bin, cfg string, env []string, logf io.Writer) (*agent, error) {
	cmd := exec.Command(bin, "agent", "--config", cfg)
	cmd.Env = env
	cmd.Stderr = logf
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	a := &agent{cmd: cmd, done: make(chan error, 1)}
	readyc := make(chan time.Duration, 1)
	go func() {
		sc := bufio.NewScanner(out)
		seen := false
		for sc.Scan() {
			if !seen && strings.Contains(sc.Text(), " ready") {
				seen = true
				readyc <- time.Since(t0)
			}
		}
		a.done <- cmd.Wait()
	}()
	select {
	case a.ready = <-readyc:
		return a, nil
	case err := <-a.done:
		return nil, fmt.Errorf("agent exited before ready: %v", err)
	case <-time.After(5 * time.Minute):
		_ = cmd.Process.Kill()
		return nil, errors.New("agent not ready within 5 minutes")
	}
}

func (a *agent) stop() error {
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-a.done:
		if err != nil {
			return fmt.Errorf("agent exit: %w", err)
		}
		a.done <- nil
		return nil
	case <-time.After(60 * time.Second):
		_ = a.cmd.Process.Kill()
		return errors.New("agent did not stop within 60s of SIGTERM")
	}
}

// sample reads VmRSS every step for d.
func (a *agent) sample(d, step time.Duration) []int64 {
	var out []int64
	t := time.NewTicker(step)
	defer t.Stop()
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		<-t.C
		if v, err := procstat.Status(a.cmd.Process.Pid, "VmRSS"); err == nil {
			out = append(out, v)
		}
	}
	return out
}

type loadResult struct {
	sent, acked, replies int64
	rate                 float64
	rss                  []int64
}

// load publishes o.rate QoS 1 messages per second for o.load, sampling the
// agent's RSS meanwhile, and counts the function's replies.
func load(o options, broker string, a *agent) (loadResult, error) {
	var res loadResult
	var replies, acked atomic.Int64
	opts := mqtt.NewClientOptions().AddBroker("tcp://" + broker).SetClientID("footprint").
		SetCleanSession(true).SetMaxResumePubInFlight(0).SetWriteTimeout(10 * time.Second)
	c := mqtt.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("connect to the embedded broker %s: %v", broker, tok.Error())
	}
	defer c.Disconnect(250)
	if tok := c.Subscribe("actuators/fan/#", 0, func(mqtt.Client, mqtt.Message) { replies.Add(1) }); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return res, fmt.Errorf("subscribe: %v", tok.Error())
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.load)
	defer cancel()
	rssc := make(chan []int64)
	go func() { rssc <- a.sample(o.load, 500*time.Millisecond) }()
	pending := make(chan mqtt.Token, 10*o.rate)
	acks := make(chan struct{})
	go func() {
		for tok := range pending {
			if tok.WaitTimeout(30*time.Second) && tok.Error() == nil {
				acked.Add(1)
			}
		}
		close(acks)
	}()
	const tick = 10 * time.Millisecond
	per := max(1, o.rate/int(time.Second/tick))
	t := time.NewTicker(tick)
	t0 := time.Now()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-t.C:
			for i := 0; i < per; i++ {
				pending <- c.Publish(o.topic, 1, false, o.payload)
				res.sent++
			}
		}
	}
	t.Stop()
	res.rate = float64(res.sent) / time.Since(t0).Seconds()
	close(pending)
	<-acks
	res.rss = <-rssc
	// Let the function's last replies arrive.
	deadline := time.Now().Add(5 * time.Second)
	for replies.Load() < res.sent && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	res.acked = acked.Load()
	res.replies = replies.Load()
	return res, nil
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func medianInt(d []int64) int64 {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

func durs(d []time.Duration) string {
	var s []string
	for _, x := range d {
		s = append(s, x.Round(time.Millisecond).String())
	}
	return strings.Join(s, " ")
}
