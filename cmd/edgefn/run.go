package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/gateway"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/triggers"
	"github.com/urfave/cli/v2"
)

// runTarget is what `edgefn run` loads: a manifest's function, or a bare
// module with the flags' limits and grants.
type runTarget struct {
	spec     sandbox.Spec
	wasm     []byte
	manifest *edgefn.Manifest // nil for a bare module
	file     string           // the manifest's path
}

func loadRunTarget(c *cli.Context, arg string) (*runTarget, error) {
	t := &runTarget{}
	isDir := false
	if st, err := os.Stat(arg); err == nil && st.IsDir() {
		isDir = true
	}
	if ext := strings.ToLower(filepath.Ext(arg)); isDir || ext == ".yaml" || ext == ".yml" {
		m, file, err := readManifestArg("run", arg)
		if err != nil {
			return nil, err
		}
		t.manifest, t.file = m, file
		if t.wasm, err = os.ReadFile(manifestWasm(file, m)); err != nil {
			return nil, usagef("run: %s: wasm: %v (build it first: edgefn build %s)", file, err, arg)
		}
		env := maps.Clone(m.Env)
		t.spec = sandbox.Spec{Name: m.Name, Version: 1, Limits: m.Limits, Grants: m.Allow, Env: env, Isolation: m.Isolation}
	} else {
		wasm, err := os.ReadFile(arg)
		if err != nil {
			return nil, usagef("run: %v", err)
		}
		t.wasm = wasm
		t.spec = sandbox.Spec{Name: strings.TrimSuffix(baseName(arg), ".wasm"), Version: 1}
	}
	if t.manifest == nil || c.IsSet("memory") {
		mem, err := edgefn.ParseSize(c.String("memory"))
		if err != nil {
			return nil, usagef("run: --memory: %v", err)
		}
		t.spec.Limits.Memory = mem
	}
	if t.manifest == nil || c.IsSet("timeout") {
		if c.Duration("timeout") <= 0 {
			return nil, usagef("run: --timeout %s: must be positive", c.Duration("timeout"))
		}
		t.spec.Limits.Timeout = c.Duration("timeout")
	}
	if t.manifest == nil {
		t.spec.Limits.Concurrency = 1
	}
	t.spec.Limits = t.spec.Limits.WithDefaults(edgefn.DefaultLimits)
	if c.Bool("allow-kv") {
		t.spec.Grants.KV = true
	}
	for _, f := range c.StringSlice("allow-publish") {
		if !edgefn.ValidTopicFilter(f) {
			return nil, usagef("run: --allow-publish %q: not a valid MQTT topic filter", f)
		}
		t.spec.Grants.Publish = append(t.spec.Grants.Publish, f)
	}
	for _, kv := range c.StringSlice("env") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("run: --env %q: want K=V", kv)
		}
		if t.spec.Env == nil {
			t.spec.Env = map[string]string{}
		}
		t.spec.Env[k] = v
	}
	return t, nil
}

// runEvent builds the event: from --pin, else --source/--subject, else the
// manifest's first trigger, else an HTTP invoke of the function.
func runEvent(c *cli.Context, t *runTarget) (edgefn.Event, error) {
	var payload []byte
	if d := c.String("data"); strings.HasPrefix(d, "@") {
		var err error
		if payload, err = os.ReadFile(d[1:]); err != nil {
			return edgefn.Event{}, usagef("run: --data: %v", err)
		}
	} else {
		payload = []byte(d)
	}
	now := time.Now()
	if c.IsSet("file") {
		if c.IsSet("data") || c.IsSet("pin") {
			return edgefn.Event{}, usagef("run: --file: the file is the payload; leave out --data and --pin")
		}
		return runFileEvent(c.String("file"), t, now)
	}
	if pin := c.String("pin"); pin != "" {
		e := edgefn.Edge(c.String("edge"))
		if e != edgefn.EdgeRising && e != edgefn.EdgeFalling {
			return edgefn.Event{}, usagef("run: --edge %q: use rising or falling", e)
		}
		ev := triggers.GPIOEvent(pin, e, e == edgefn.EdgeRising, now)
		if c.IsSet("data") {
			ev.Payload = payload
		}
		ev.ID = "run-1"
		return ev, nil
	}
	src, subject, meta := edgefn.SourceHTTP, "local", map[string]string{}
	if t.manifest != nil {
		subject = t.manifest.Name
		if len(t.manifest.Triggers) > 0 {
			tr := t.manifest.Triggers[0]
			src = tr.Kind()
			switch src {
			case edgefn.SourceMQTT:
				subject = sampleTopic(tr.MQTT)
				meta = map[string]string{"qos": strconv.Itoa(int(tr.QoS)), "retain": "false", "duplicate": "false"}
			case edgefn.SourceGPIO:
				subject = tr.GPIO
			case edgefn.SourceTimer:
				subject = tr.Cron
				if subject == "" {
					subject = "@every " + tr.Every.String()
				}
				meta = map[string]string{triggers.MetaScheduled: strconv.FormatInt(now.UnixMilli(), 10)}
			case edgefn.SourceFile:
				subject = t.filesDir(tr)
			}
		}
	}
	if c.IsSet("source") {
		src = edgefn.Source(c.String("source"))
		if !src.Valid() {
			return edgefn.Event{}, usagef("run: --source %q: use mqtt, gpio, timer, file or http", src)
		}
	}
	if c.IsSet("subject") {
		subject = c.String("subject")
	}
	for _, kv := range c.StringSlice("meta") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return edgefn.Event{}, usagef("run: --meta %q: want K=V", kv)
		}
		meta[k] = v
	}
	return edgefn.Event{ID: "run-1", Source: src, Subject: subject, Time: now, Payload: payload, Meta: meta}, nil
}

// runFileEvent is the event of a files trigger for the file at path: its
// content, file.name and file.size; subject the directory of the
// manifest's files trigger (resolved next to the manifest), else the
// file's. A file over the trigger's max_size (without one, the largest
// max_size) is refused, as the agent refuses it.
func runFileEvent(path string, t *runTarget, now time.Time) (edgefn.Event, error) {
	max, dir := edgefn.MaxFileMaxSize, ""
	if t.manifest != nil {
		for _, tr := range t.manifest.Triggers {
			if tr.Kind() == edgefn.SourceFile {
				max, dir = tr.MaxSize, t.filesDir(tr)
				break
			}
		}
	}
	if dir == "" {
		abs, err := filepath.Abs(path)
		if err != nil {
			return edgefn.Event{}, usagef("run: --file: %v", err)
		}
		dir = filepath.Dir(abs)
	}
	f, err := os.Open(path)
	if err != nil {
		return edgefn.Event{}, usagef("run: --file: %v", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return edgefn.Event{}, usagef("run: --file: %v", err)
	}
	if !st.Mode().IsRegular() {
		return edgefn.Event{}, usagef("run: --file %s: not a regular file (a files trigger rejects it)", path)
	}
	data, err := io.ReadAll(io.LimitReader(f, int64(max)+1))
	if err != nil {
		return edgefn.Event{}, fmt.Errorf("run: --file %s: %v", path, err)
	}
	if int64(len(data)) > int64(max) {
		return edgefn.Event{}, fmt.Errorf("run: --file %s: %d bytes, over the trigger's max_size %s (the agent moves it to .rejected without running the function)", path, st.Size(), max)
	}
	ev := triggers.FileEvent(dir, filepath.Base(path), int64(len(data)))
	ev.ID, ev.Time, ev.Payload = "run-1", now, data
	return ev, nil
}

// filesDir is the directory of the files trigger tr as the agent would
// watch it when loading the manifest from its functions_dir: relative
// paths next to the manifest.
func (t *runTarget) filesDir(tr edgefn.Trigger) string {
	if filepath.IsAbs(tr.Files) || t.file == "" {
		return tr.Files
	}
	d, err := filepath.Abs(filepath.Join(filepath.Dir(t.file), tr.Files))
	if err != nil {
		return tr.Files
	}
	return d
}

// sampleTopic turns a topic filter into a topic it matches: "+" levels
// become "x", a trailing "#" becomes "run".
func sampleTopic(filter string) string {
	levels := strings.Split(filter, "/")
	for i, l := range levels {
		switch l {
		case "+":
			levels[i] = "x"
		case "#":
			levels[i] = "run"
		}
	}
	return strings.Join(levels, "/")
}

// simulatedGPIO opens a simulated chip with the default pins plus those
// the manifest names, with the --high inputs pulled up.
func simulatedGPIO(c *cli.Context, t *runTarget) (*devices.GPIO, error) {
	var pins []string
	for i := range devices.DefaultSimulatedPins {
		pins = append(pins, fmt.Sprintf("GPIO%d", i))
	}
	if t.manifest != nil {
		for _, cl := range devices.ManifestClaims(t.manifest.Name, t.manifest) {
			if !slices.Contains(pins, cl.Pin) {
				pins = append(pins, cl.Pin)
			}
		}
	}
	high := c.StringSlice("high")
	for _, p := range high {
		if !slices.Contains(pins, p) {
			pins = append(pins, p)
		}
	}
	g, err := devices.Open(devices.Config{Backend: devices.BackendSimulated, Pins: pins})
	if err != nil {
		return nil, err
	}
	for _, p := range high {
		if err := g.Inject(p, true); err != nil {
			g.Close()
			return nil, usagef("run: --high %s: %v", p, err)
		}
	}
	return g, nil
}

func runAction(c *cli.Context) error {
	t, err := loadRunTarget(c, c.Args().First())
	if err != nil {
		return err
	}
	ev, err := runEvent(c, t)
	if err != nil {
		return err
	}
	kv, err := openRunKV(c.String("kv-file"))
	if err != nil {
		return err
	}
	gp, err := simulatedGPIO(c, t)
	if err != nil {
		return err
	}
	defer gp.Close()

	ctx := c.Context
	rt, err := sandbox.New(ctx, sandbox.Config{KV: kv, GPIO: gp})
	if err != nil {
		return err
	}
	defer rt.Close(context.WithoutCancel(ctx))
	fn, err := rt.Load(ctx, t.spec, t.wasm)
	if err != nil {
		return err
	}
	res := fn.Invoke(ctx, ev)
	if res.Err == nil {
		if err := kv.apply(t.spec.Name, res.Effects); err != nil {
			return err
		}
	}

	if c.Bool("json") {
		// The shape of invoke --json: the same api.Invocation, with no
		// record ids (nothing was committed) and no version.
		if err := printJSON(c.App.Writer, gateway.Invocation(t.spec.Name, 0, res, nil)); err != nil {
			return err
		}
	} else {
		printRunText(c.App.Writer, res)
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

// runKV is the kv of `edgefn run`: a map, empty at start or read from
// --kv-file, where a successful invocation's writes are applied (and
// saved to the file). A JSON file rather than the agent's SQLite: it is
// read and edited by hand to set up a test, and does not depend on the
// outbox's schema.
type runKV struct {
	mu   sync.Mutex
	file string
	// data maps function to key to value.
	data map[string]map[string]jsonBytes
}

func openRunKV(file string) (*runKV, error) {
	k := &runKV{file: file, data: map[string]map[string]jsonBytes{}}
	if file == "" {
		return k, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return k, nil
	} else if err != nil {
		return nil, fmt.Errorf("run: --kv-file: %w", err)
	}
	if err := json.Unmarshal(b, &k.data); err != nil {
		return nil, fmt.Errorf("run: --kv-file %s: %w", file, err)
	}
	if k.data == nil {
		k.data = map[string]map[string]jsonBytes{}
	}
	return k, nil
}

func (k *runKV) Get(_ context.Context, function, key string) ([]byte, bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	v, ok := k.data[function][key]
	if !ok {
		return nil, false, nil
	}
	b, err := v.bytes()
	return b, true, err
}

// apply applies the kv writes of effects and saves the file.
func (k *runKV) apply(function string, effects []edgefn.Effect) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	changed := false
	for _, e := range effects {
		switch e.Kind {
		case edgefn.EffectKVSet:
			if k.data[function] == nil {
				k.data[function] = map[string]jsonBytes{}
			}
			k.data[function][e.Key] = toJSONBytes(e.Payload)
			changed = true
		case edgefn.EffectKVDelete:
			delete(k.data[function], e.Key)
			changed = true
		}
	}
	if !changed || k.file == "" {
		return nil
	}
	b, err := json.MarshalIndent(k.data, "", "  ")
	if err != nil {
		return err
	}
	tmp := k.file + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("run: --kv-file: %w", err)
	}
	return os.Rename(tmp, k.file)
}

func outcome(res *sandbox.Result) (string, string) {
	if res.Err == nil {
		return "ok", ""
	}
	if f := res.Failure(); f != nil {
		return string(f.Reason), f.Detail()
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

func (j jsonBytes) bytes() ([]byte, error) {
	if j.Text != nil {
		return []byte(*j.Text), nil
	}
	return base64.StdEncoding.DecodeString(j.Base64)
}

func toJSONBytes(b []byte) jsonBytes {
	if utf8.Valid(b) {
		s := string(b)
		return jsonBytes{Text: &s}
	}
	return jsonBytes{Base64: base64.StdEncoding.EncodeToString(b)}
}
