package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/urfave/cli/v2"
)

func runCommand() *cli.Command {
	return &cli.Command{
		Name:      "run",
		Usage:     "run one event through a function locally, with no agent",
		ArgsUsage: "MODULE.wasm",
		Description: "Runs MODULE.wasm once in the sandbox with the given event and limits and prints\n" +
			"the outcome, what it emitted, published and wrote to kv, and its logs. kv starts\n" +
			"empty and lives in memory; there is no GPIO (gpio calls return -5).\n" +
			"Exit status: 0 when the function succeeded, 1 when it failed, 2 on usage errors.",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "data", Usage: "event payload: a string, or @FILE to read it from FILE"},
			&cli.StringFlag{Name: "subject", Value: "local", Usage: "event subject (MQTT topic, pin, timer spec…)"},
			&cli.StringFlag{Name: "source", Value: string(edgefn.SourceHTTP), Usage: "event source: mqtt, gpio, timer or http"},
			&cli.StringFlag{Name: "memory", Value: edgefn.DefaultLimits.Memory.String(), Usage: "memory limit (KiB, MiB)"},
			&cli.DurationFlag{Name: "timeout", Value: edgefn.DefaultLimits.Timeout, Usage: "deadline of the invocation"},
			&cli.StringSliceFlag{Name: "allow-publish", Usage: "MQTT topic filter the function may publish to (repeatable)"},
			&cli.BoolFlag{Name: "allow-kv", Usage: "let the function use kv"},
			&cli.BoolFlag{Name: "json", Usage: "print one JSON object"},
		},
		Action: runAction,
	}
}

func runAction(c *cli.Context) error {
	c, err := interleaved(c)
	if err != nil {
		return err
	}
	if c.NArg() != 1 {
		return usagef("run: want one MODULE.wasm argument, got %d", c.NArg())
	}
	path := c.Args().First()
	wasm, err := os.ReadFile(path)
	if err != nil {
		return usagef("run: %v", err)
	}
	var payload []byte
	if d := c.String("data"); strings.HasPrefix(d, "@") {
		if payload, err = os.ReadFile(d[1:]); err != nil {
			return usagef("run: --data: %v", err)
		}
	} else {
		payload = []byte(d)
	}
	src := edgefn.Source(c.String("source"))
	if !src.Valid() {
		return usagef("run: --source %q: use mqtt, gpio, timer or http", src)
	}
	mem, err := edgefn.ParseSize(c.String("memory"))
	if err != nil {
		return usagef("run: --memory: %v", err)
	}
	if c.Duration("timeout") <= 0 {
		return usagef("run: --timeout %s: must be positive", c.Duration("timeout"))
	}
	grants := edgefn.Grants{KV: c.Bool("allow-kv")}
	for _, f := range c.StringSlice("allow-publish") {
		if !edgefn.ValidTopicFilter(f) {
			return usagef("run: --allow-publish %q: not a valid MQTT topic filter", f)
		}
		grants.Publish = append(grants.Publish, f)
	}

	ctx := c.Context
	rt, err := sandbox.New(ctx, sandbox.Config{KV: &memoryKV{}})
	if err != nil {
		return err
	}
	defer rt.Close(context.WithoutCancel(ctx))
	name := strings.TrimSuffix(baseName(path), ".wasm")
	limits := edgefn.Limits{Memory: mem, Timeout: c.Duration("timeout"), Concurrency: 1}.WithDefaults(edgefn.DefaultLimits)
	fn, err := rt.Load(ctx, sandbox.Spec{Name: name, Version: 1, Limits: limits, Grants: grants}, wasm)
	if err != nil {
		return err
	}
	ev := edgefn.Event{ID: "run-1", Source: src, Subject: c.String("subject"), Time: time.Now(), Payload: payload}
	res := fn.Invoke(ctx, ev)

	if c.Bool("json") {
		err = printRunJSON(c.App.Writer, res)
	} else {
		printRunText(c.App.Writer, res)
	}
	if err != nil {
		return err
	}
	if res.Err != nil {
		return failedError{}
	}
	return nil
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

// memoryKV is the in-memory kv of `edgefn run`: empty at start, and the
// invocation's writes are only printed.
type memoryKV struct {
	mu   sync.Mutex
	data map[string][]byte
}

func (k *memoryKV) Get(_ context.Context, function, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.data[function+"\x00"+key]
	return v, ok, nil
}

func outcome(res *sandbox.Result) (string, string) {
	if res.Err == nil {
		return "ok", ""
	}
	if f := res.Failure(); f != nil {
		return string(f.Reason), f.Message
	}
	return string(edgefn.ReasonInternal), res.Err.Error()
}

func printRunText(w io.Writer, res *sandbox.Result) {
	o, msg := outcome(res)
	start := "warm"
	if res.Cold {
		start = "cold"
	}
	if msg != "" {
		o += ": " + msg
	}
	fmt.Fprintf(w, "outcome: %s (%s, %s start, memory %s)\n", o, res.Duration.Round(time.Microsecond), start, edgefn.Size(res.MemoryBytes))
	for _, e := range res.Effects {
		switch e.Kind {
		case edgefn.EffectEmit:
			fmt.Fprintf(w, "emit: %s\n", show(e.Payload))
		case edgefn.EffectPublish:
			fmt.Fprintf(w, "publish %s (qos %d): %s\n", e.Topic, e.QoS, show(e.Payload))
		case edgefn.EffectKVSet:
			fmt.Fprintf(w, "kv_set %s: %s\n", e.Key, show(e.Payload))
		case edgefn.EffectKVDelete:
			fmt.Fprintf(w, "kv_delete %s\n", e.Key)
		case edgefn.EffectGPIOWrite:
			fmt.Fprintf(w, "gpio_write %s: %v\n", e.Pin, e.High)
		}
	}
	for _, l := range res.Logs {
		fmt.Fprintf(w, "log %s: %s\n", l.Level, l.Message)
	}
	if res.LogsDropped > 0 {
		fmt.Fprintf(w, "logs dropped: %d (over max_log)\n", res.LogsDropped)
	}
}

// show prints a payload as text when it is UTF-8, else as base64.
func show(b []byte) string {
	if utf8.Valid(b) {
		return string(b)
	}
	return "base64:" + base64.StdEncoding.EncodeToString(b)
}

// jsonBytes is a payload in JSON: {"text": …} when UTF-8, else {"base64": …}.
type jsonBytes struct {
	Text   *string `json:"text,omitempty"`
	Base64 string  `json:"base64,omitempty"`
}

func toJSONBytes(b []byte) jsonBytes {
	if utf8.Valid(b) {
		s := string(b)
		return jsonBytes{Text: &s}
	}
	return jsonBytes{Base64: base64.StdEncoding.EncodeToString(b)}
}

type runJSON struct {
	Outcome     string        `json:"outcome"`
	Message     string        `json:"message"`
	DurationMS  float64       `json:"duration_ms"`
	Cold        bool          `json:"cold"`
	MemoryBytes uint64        `json:"memory_bytes"`
	ExitCode    int           `json:"exit_code"`
	Emitted     []jsonBytes   `json:"emitted"`
	Published   []jsonPublish `json:"published"`
	KV          []jsonKV      `json:"kv"`
	GPIO        []jsonGPIO    `json:"gpio"`
	Logs        []jsonLog     `json:"logs"`
	LogsDropped int           `json:"logs_dropped"`
}

type jsonPublish struct {
	Topic   string    `json:"topic"`
	QoS     byte      `json:"qos"`
	Payload jsonBytes `json:"payload"`
}

type jsonKV struct {
	Op    string     `json:"op"`
	Key   string     `json:"key"`
	Value *jsonBytes `json:"value,omitempty"`
}

type jsonGPIO struct {
	Pin  string `json:"pin"`
	High bool   `json:"high"`
}

type jsonLog struct {
	Time    time.Time `json:"time"`
	Level   string    `json:"level"`
	Message string    `json:"message"`
}

func printRunJSON(w io.Writer, res *sandbox.Result) error {
	o, msg := outcome(res)
	out := runJSON{
		Outcome: o, Message: msg, DurationMS: float64(res.Duration.Microseconds()) / 1000,
		Cold: res.Cold, MemoryBytes: res.MemoryBytes, ExitCode: res.ExitCode, LogsDropped: res.LogsDropped,
		Emitted: []jsonBytes{}, Published: []jsonPublish{}, KV: []jsonKV{}, GPIO: []jsonGPIO{}, Logs: []jsonLog{},
	}
	for _, e := range res.Effects {
		switch e.Kind {
		case edgefn.EffectEmit:
			out.Emitted = append(out.Emitted, toJSONBytes(e.Payload))
		case edgefn.EffectPublish:
			out.Published = append(out.Published, jsonPublish{Topic: e.Topic, QoS: e.QoS, Payload: toJSONBytes(e.Payload)})
		case edgefn.EffectKVSet:
			v := toJSONBytes(e.Payload)
			out.KV = append(out.KV, jsonKV{Op: "set", Key: e.Key, Value: &v})
		case edgefn.EffectKVDelete:
			out.KV = append(out.KV, jsonKV{Op: "delete", Key: e.Key})
		case edgefn.EffectGPIOWrite:
			out.GPIO = append(out.GPIO, jsonGPIO{Pin: e.Pin, High: e.High})
		}
	}
	for _, l := range res.Logs {
		out.Logs = append(out.Logs, jsonLog{Time: l.Time, Level: l.Level.String(), Message: l.Message})
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
