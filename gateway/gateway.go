package gateway

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/sandbox"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/triggers"
)

// publisher applies function publishes: the embedded broker or the
// external MQTT client.
type publisher interface {
	Publish(ctx context.Context, topic string, payload []byte, qos byte, retain bool, depth int) error
}

// gpioDevice is what the gateway needs of the GPIO backend.
type gpioDevice interface {
	Has(pin string) bool
	Read(ctx context.Context, pin string) (bool, error)
	Write(pin string, high bool) error
	CheckClaims([]devices.Claim) error
}

// idleWorker is how long a function's worker waits for the next event
// before it exits (scale to zero).
const idleWorker = 30 * time.Second

// Host holds the deployed functions and runs the event pipeline: it routes
// every event to the functions it triggers, invokes them in the sandbox,
// commits their effects to the outbox and applies them. Agent builds it in
// Run; the tests build it with newHost.
type Host struct {
	cfg *Config
	log *slog.Logger

	store   *outbox.Store
	rt      *sandbox.Runtime
	reg     *registry
	trusted []ed25519.PublicKey // admin.trusted_keys: activations need signed statements
	metrics *metrics
	pub     publisher
	gpio    gpioDevice

	// commitDeadline and publishDeadline bound a commit (30 s) and a
	// publish after it (10 s) with contexts shared by the events of the
	// same tick, instead of a timer per event.
	commitDeadline  *sharedDeadline
	publishDeadline *sharedDeadline

	deployMu sync.Mutex // serializes deploy, rollback and remove
	mu       sync.RWMutex
	fns      map[string]*deployed
	routes   atomic.Pointer[routes]
	// onRoutes are called with the active manifests and the new routing
	// table after every change, to update subscriptions, timers and GPIO
	// watches.
	onRoutes []func(map[string]*edgefn.Manifest, *routes)

	// statusParts report the state of the broker, timers and GPIO.
	statusParts statusParts
	// uplinks report their state for status and metrics.
	uplinks []func() uplink.State
	// extraRoutes are admin API routes of the parts (GPIO injection).
	extraRoutes map[string]http.HandlerFunc

	// live feeds the web console and the streaming endpoints.
	live liveState

	evSeq   atomic.Uint64
	evBase  string
	started time.Time
	bg      sync.WaitGroup
}

var _ triggers.Sink = (*Host)(nil)

// newHost makes a Host around an opened outbox and sandbox runtime;
// Run and the tests use it.
func newHost(cfg *Config, log *slog.Logger, store *outbox.Store, rt *sandbox.Runtime) (*Host, error) {
	reg, err := newRegistry(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	trusted, err := trustedKeys(cfg.Admin.TrustedKeys)
	if err != nil {
		return nil, err
	}
	g := &Host{
		cfg: cfg, log: log, store: store, rt: rt, reg: reg, trusted: trusted, metrics: newMetrics(),
		commitDeadline: newSharedDeadline(30 * time.Second), publishDeadline: newSharedDeadline(10 * time.Second),
		fns: map[string]*deployed{}, extraRoutes: map[string]http.HandlerFunc{},
		started: time.Now(),
		evBase:  strconv.FormatInt(time.Now().UnixNano(), 36),
	}
	g.routes.Store(buildRoutes(nil))
	g.metrics.reg.MustRegister(newStateCollector(g))
	return g, nil
}

func (g *Host) uplinkStates() []uplink.State {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]uplink.State, 0, len(g.uplinks))
	for _, f := range g.uplinks {
		out = append(out, f())
	}
	return out
}

// NewEventID returns an id unique on this gateway across restarts.
func (g *Host) NewEventID() string {
	return g.evBase + "-" + strconv.FormatUint(g.evSeq.Add(1), 36)
}

// refreshRoutes rebuilds the routing table from the active versions and
// tells the triggers.
func (g *Host) refreshRoutes() {
	g.mu.RLock()
	ms := make(map[string]*edgefn.Manifest, len(g.fns))
	for name, d := range g.fns {
		if v := d.cur.Load(); v != nil {
			ms[name] = v.manifest
		}
	}
	hooks := g.onRoutes
	g.mu.RUnlock()
	r := buildRoutes(ms)
	g.routes.Store(r)
	for _, h := range hooks {
		h(ms, r)
	}
}

// Deliver routes an event to every function it triggers and waits until
// their effects are durable. It implements triggers.Sink.
//
// A QoS 1 MQTT message from a device waits for room in a full queue
// (backpressure: it stays unacknowledged); other events are dropped when a
// queue is full, counted and logged. QoS 0 messages and the agent's own
// publishes seen again by the embedded broker are queued without waiting
// for their result: there is nothing to acknowledge, and a chain of
// functions cannot deadlock on itself.
func (g *Host) Deliver(ctx context.Context, ev edgefn.Event) error {
	targets, wait, fireAndForget := g.route(&ev)
	if len(targets) == 0 {
		return nil
	}
	if !fireAndForget {
		// A caller that waits for its one function: run it on this
		// goroutine when it can start at once.
		if d, err := g.inlineSlot(ctx, targets); d != nil || err != nil {
			if err != nil {
				return err
			}
			return errors.Join(g.runInline(d, &job{ev: ev, enqueued: time.Now()}).Err)
		}
	}
	var dones []chan outcome
	var errs []error
	for _, name := range targets {
		g.mu.RLock()
		d := g.fns[name]
		g.mu.RUnlock()
		if d == nil {
			continue
		}
		j := &job{ev: ev}
		if !fireAndForget {
			j.done = make(chan outcome, 1)
		}
		if err := d.q.offer(ctx, j, wait); err != nil {
			if f := (*edgefn.Failure)(nil); errors.As(err, &f) {
				d.stats.dropped(f.Reason)
			}
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		if j.done != nil {
			dones = append(dones, j.done)
		}
	}
	for _, done := range dones {
		select {
		case o := <-done:
			if o.Err != nil {
				errs = append(errs, o.Err)
			}
		case <-ctx.Done():
			errs = append(errs, ctx.Err())
			return errors.Join(errs...)
		}
	}
	return errors.Join(errs...)
}

// route fills in ev's id and time and returns the functions it triggers,
// whether a full queue makes it wait (a device's QoS 1 message: it waits
// for room and for its commit, and is acked after) and whether it is
// fire-and-forget. A QoS 0 message has nothing to acknowledge: it is
// queued or dropped and the device's connection moves on; so are the
// agent's own publishes seen again (a chain cannot deadlock on itself).
// Timer fires and GPIO edges wait for their result, so a slow function
// skips timer slots instead of piling them up.
func (g *Host) route(ev *edgefn.Event) (targets []string, wait, fireAndForget bool) {
	if ev.ID == "" {
		ev.ID = g.NewEventID()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	ownPublish := ev.Meta[triggers.MetaOrigin] == triggers.OriginAgent
	qos1 := ev.Source == edgefn.SourceMQTT && ev.Meta["qos"] != "" && ev.Meta["qos"] != "0"
	return g.routes.Load().match(ev), qos1 && !ownPublish, ownPublish || (ev.Source == edgefn.SourceMQTT && !qos1)
}

// DeliverAsync implements triggers.AsyncSink: a device's QoS 1 message is
// delivered as by Deliver, but DeliverAsync returns as soon as its
// functions have run and their commits are queued, and durable receives
// what Deliver would have returned once the effects are durable. The
// caller can take the device's next message meanwhile, so one group commit
// carries many messages of one device; commits stay in the order of the
// caller's calls. Other events are delivered by Deliver, then durable is
// called.
func (g *Host) DeliverAsync(ctx context.Context, ev edgefn.Event, durable func(error)) {
	targets, wait, _ := g.route(&ev)
	if !wait || len(targets) == 0 {
		durable(g.Deliver(ctx, ev))
		return
	}
	all := &joined{left: len(targets), then: durable}
	if d, err := g.inlineSlot(ctx, targets); d != nil || err != nil {
		if err != nil {
			durable(err)
			return
		}
		g.runInlineAsync(d, &job{ev: ev, enqueued: time.Now(), then: all.add})
		return
	}
	var accepted []chan struct{}
	for _, name := range targets {
		g.mu.RLock()
		d := g.fns[name]
		g.mu.RUnlock()
		if d == nil {
			all.add(outcome{})
			continue
		}
		j := &job{ev: ev, then: all.add, accepted: make(chan struct{})}
		if err := d.q.offer(ctx, j, true); err != nil {
			if f := (*edgefn.Failure)(nil); errors.As(err, &f) {
				d.stats.dropped(f.Reason)
			}
			all.add(outcome{Err: fmt.Errorf("%s: %w", name, err)})
			continue
		}
		accepted = append(accepted, j.accepted)
	}
	// Return once every commit is queued, so the caller's next message
	// commits after this one.
	for _, a := range accepted {
		select {
		case <-a:
		case <-ctx.Done():
			return // durable follows when the jobs end
		}
	}
}

// inlineSlot returns the function of an event that triggers just one,
// holding a worker slot for the caller to run it on its own goroutine
// (queue.tryInline), or nil when it cannot start at once; ctx.Err() if
// ctx ended (no slot held then).
func (g *Host) inlineSlot(ctx context.Context, targets []string) (*deployed, error) {
	if len(targets) != 1 {
		return nil, nil
	}
	g.mu.RLock()
	d := g.fns[targets[0]]
	g.mu.RUnlock()
	if d == nil || !d.q.tryInline() {
		return nil, nil
	}
	if err := ctx.Err(); err != nil {
		d.q.inlineDone()
		return nil, err
	}
	return d, nil
}

// joined gathers the outcomes of one event's functions and passes their
// errors, joined, to then once the last arrived.
type joined struct {
	mu   sync.Mutex
	left int
	errs []error
	then func(error)
}

func (j *joined) add(o outcome) {
	j.mu.Lock()
	if o.Err != nil {
		j.errs = append(j.errs, o.Err)
	}
	j.left--
	last := j.left == 0
	j.mu.Unlock()
	if last {
		j.then(errors.Join(j.errs...))
	}
}

// Invoke runs one function synchronously for an HTTP invoke and returns its
// result once durable.
func (g *Host) Invoke(ctx context.Context, name string, payload []byte, meta map[string]string) (*invocationResult, error) {
	return g.InvokeAs(ctx, name, edgefn.SourceHTTP, name, payload, meta)
}

// InvokeAs is Invoke with the event shaped like another trigger's: its
// source and subject (an MQTT topic, a pin), for functions that read them.
func (g *Host) InvokeAs(ctx context.Context, name string, source edgefn.Source, subject string, payload []byte, meta map[string]string) (*invocationResult, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	ev := edgefn.Event{ID: g.NewEventID(), Source: source, Subject: subject, Time: time.Now(), Payload: payload, Meta: meta}
	return g.invokeEvent(ctx, name, ev, false)
}

// invokeEvent runs function name for ev and returns its result once
// durable. wait says whether to wait for room in a full queue (else the
// event is refused with ReasonQueueFull).
func (g *Host) invokeEvent(ctx context.Context, name string, ev edgefn.Event, wait bool) (*invocationResult, error) {
	g.mu.RLock()
	d := g.fns[name]
	g.mu.RUnlock()
	if d == nil {
		return nil, &NotFoundError{What: fmt.Sprintf("function %q", name)}
	}
	j := &job{ev: ev, done: make(chan outcome, 1)}
	if err := d.q.offer(ctx, j, wait); err != nil {
		if f := (*edgefn.Failure)(nil); errors.As(err, &f) {
			d.stats.dropped(f.Reason)
		}
		return nil, err
	}
	select {
	case o := <-j.done:
		return o.Result, o.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// loadStored activates every function stored in the registry, then the
// manifests of the functions dir (deploying those that changed). A
// function that fails to load is reported by name and skipped.
func (g *Host) loadStored(ctx context.Context) {
	names, err := g.reg.names()
	if err != nil {
		g.log.Error("list deployed functions", "err", err)
	}
	for _, name := range names {
		act, err := g.reg.active(name)
		if err != nil {
			g.log.Error("function skipped", "function", name, "err", err)
			continue
		}
		sv, err := g.startVersion(name, act)
		if err != nil {
			g.log.Error("function skipped", "function", name, "version", act, "err", err)
			continue
		}
		v, err := g.loadVersion(ctx, sv)
		if err != nil {
			if ctx.Err() != nil {
				g.log.Info("loading interrupted: the agent is stopping", "function", name)
				return
			}
			g.log.Error("function skipped", "function", name, "version", act, "err", err)
			continue
		}
		g.activate(v)
		g.log.Info("loaded", "function", name, "version", sv.Meta.Version)
	}
	g.loadFunctionsDir(ctx)
}

// loadFunctionsDir deploys the manifests of the functions dir whose
// content changed (an unchanged one is a no-op). An invalid manifest is
// reported by name and skipped; the others still load.
func (g *Host) loadFunctionsDir(ctx context.Context) {
	if g.cfg.FunctionsDir == "" {
		return
	}
	files, err := manifestFiles(g.cfg.FunctionsDir)
	if err != nil {
		g.log.Error("functions dir", "dir", g.cfg.FunctionsDir, "err", err)
		return
	}
	for _, f := range files {
		_, raw, wasm, err := readManifestFile(f)
		if err != nil {
			g.log.Error("manifest skipped", "file", f, "err", err)
			continue
		}
		if _, err := g.Deploy(ctx, filepath.Base(f), raw, wasm, f, nil); err != nil {
			if ctx.Err() != nil {
				g.log.Info("loading interrupted: the agent is stopping", "file", f)
				return
			}
			g.log.Error("manifest skipped", "file", f, "err", err)
		}
	}
}

// drain stops every function's queue, bounded by ctx, and waits for
// pending commits.
func (g *Host) drain(ctx context.Context) error {
	g.mu.RLock()
	ds := make([]*deployed, 0, len(g.fns))
	for _, d := range g.fns {
		ds = append(ds, d)
	}
	g.mu.RUnlock()
	var wg sync.WaitGroup
	errs := make([]error, len(ds))
	for i, d := range ds {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = d.q.close(ctx)
			d.pending.Wait()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// ensureDataDir creates the data dir (0700) and checks it is writable,
// with an error that says what to do.
func ensureDataDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("data dir %s: %w (set data_dir in the config to a writable directory)", dir, err)
	}
	f, err := os.CreateTemp(dir, ".probe-")
	if err != nil {
		return fmt.Errorf("data dir %s is not writable: %w (set data_dir in the config to a writable directory)", dir, err)
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}
