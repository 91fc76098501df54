package gateway

import (
	"context"
	"fmt"
	"net/http"
	"runtime/debug"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/edgefn/edgefn"

	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/gateway/console"
	"github.com/edgefn/edgefn/gateway/internal/sse"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/triggers"
)

// liveState is what the console and the streaming endpoints share: the
// traffic tap, the GPIO view and the signal that ends every stream when
// the admin server shuts down (http.Server.Shutdown waits for handlers, and
// a stream would otherwise hold it for the whole grace period). Its zero
// value is ready.
type liveState struct {
	tap        tap
	version    string
	gpio       func() console.GPIO
	logStreams atomic.Int32

	once   sync.Once
	closed chan struct{}
}

func (l *liveState) done() <-chan struct{} {
	l.once.Do(func() { l.closed = make(chan struct{}) })
	return l.closed
}

// streamContext is a stream's context: ctx (its request's), also ended
// when the admin server stops every stream.
func (l *liveState) streamContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	done := l.done()
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

// stop ends every stream; the admin server calls it on shutdown.
func (l *liveState) stop() {
	l.done()
	select {
	case <-l.closed:
	default:
		close(l.closed)
	}
}

// wireConsole feeds the traffic tap from the MQTT trigger (embedded broker
// or external client), gives the console the GPIO pins and adds GET
// /v1/traffic to the API.
func (a *Agent) wireConsole(devs *devices.GPIO, mqtt interface{ Observe(func(triggers.Seen)) }) {
	g := a.Host
	g.live.version = a.Version
	mqtt.Observe(g.live.tap.observe)
	g.live.gpio = func() console.GPIO {
		out := console.GPIO{Backend: devs.Backend()}
		for _, p := range devs.Pins() {
			out.Pins = append(out.Pins, console.Pin{Name: p.Name, Mode: string(p.Mode), High: p.High})
		}
		return out
	}
	g.extraRoutes["GET /v1/traffic"] = g.handleTraffic
}

// consoleHandler serves the web console at / and hands every other path
// (the API, with its bearer-token check) to api.
func (g *Host) consoleHandler(token string, api http.Handler) http.Handler {
	cfg := console.Config{
		CheckToken: func(presented string) bool { return tokenOK(presented, token) },
		Source:     consoleSource{g},
		LogEvents:  http.HandlerFunc(g.handleLogEvents),
		Next:       api,
		Logger:     g.log.With("part", "console"),
	}
	if g.live.gpio != nil { // an agent, with triggers
		cfg.TrafficEvents = http.HandlerFunc(g.handleTraffic)
	}
	c, err := console.New(cfg)
	if err != nil {
		// The templates are embedded: this is a bug caught by any test.
		panic(err)
	}
	return c
}

// consoleSource gives the console the gateway's state.
type consoleSource struct{ g *Host }

func (s consoleSource) Overview(ctx context.Context) console.Overview {
	g := s.g
	now := time.Now()
	o := console.Overview{Gateway: g.cfg.GatewayID, Version: g.live.version, Started: g.started, Uptime: now.Sub(g.started)}
	if o.Version == "" {
		o.Version = buildVersion()
	}
	g.mu.RLock()
	o.Functions = len(g.fns)
	broker := g.statusParts.broker
	g.mu.RUnlock()
	if broker != nil {
		st := broker()
		o.Broker = console.Broker{Kind: st.Kind, Addr: st.Addr, Connected: st.Connected || st.Kind == "embedded", Clients: st.Clients,
			Delivered: st.Delivered, Failed: st.Failed, LastError: st.LastError}
	}
	o.Broker.Messages, o.Broker.PerSecond = g.live.tap.stats(now)
	for _, u := range g.uplinkStates() {
		o.Uplinks = append(o.Uplinks, console.Uplink{Name: u.Name, Kind: u.Kind, Online: u.Online, Backlog: u.Backlog, LastSuccess: u.LastSuccess, LastError: u.LastError})
	}
	if g.store != nil {
		st, err := g.store.Stats(ctx)
		if err != nil {
			o.Outbox.Err = err.Error()
		}
		o.Outbox.Depth, o.Outbox.Bytes, o.Outbox.MaxBytes, o.Outbox.OldestAge, o.Outbox.DeadLetters = st.Depth, st.Bytes, st.MaxBytes, st.OldestAge, st.DeadLetters
		o.Outbox.Drops = counts(st.Drops)
	}
	if g.live.gpio != nil {
		o.GPIO = g.live.gpio()
	}
	return o
}

func counts[K ~string](m map[K]int64) []console.Count {
	out := make([]console.Count, 0, len(m))
	for k, n := range m {
		out = append(out, console.Count{Name: string(k), N: n})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s consoleSource) Functions(context.Context) []console.Function {
	g := s.g
	now := time.Now()
	g.mu.RLock()
	ds := make([]*deployed, 0, len(g.fns))
	for _, d := range g.fns {
		ds = append(ds, d)
	}
	g.mu.RUnlock()
	out := make([]console.Function, 0, len(ds))
	for _, d := range ds {
		f, _ := g.consoleFunction(d, now)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// consoleFunction is d's row and its last hour.
func (g *Host) consoleFunction(d *deployed, now time.Time) (console.Function, []console.Minute) {
	fi := g.functionInfo(d)
	d.stats.mu.Lock()
	rate, hour := d.stats.hist.rate(now), d.stats.hist.lastHour(now)
	d.stats.mu.Unlock()
	return console.Function{
		Name: fi.Name, Version: fi.Version, Triggers: fi.Triggers, State: fi.State,
		Invocations: fi.Stats.Invocations, PerSecond: rate, P50: fi.Stats.P50, P99: fi.Stats.P99,
		Failures: counts(fi.Stats.Errors), Cold: fi.Stats.Cold, Warm: fi.Stats.Warm, QueueDepth: fi.Stats.QueueDepth,
	}, hour
}

// consoleFailures is how many of a function's last failures its page
// lists, looked for among its last consoleLogScan log lines.
const (
	consoleFailures = 10
	consoleLogScan  = 500
)

func (s consoleSource) Function(ctx context.Context, name string) (console.FunctionDetail, bool) {
	g := s.g
	g.mu.RLock()
	d := g.fns[name]
	g.mu.RUnlock()
	if d == nil {
		return console.FunctionDetail{}, false
	}
	var fd console.FunctionDetail
	fd.Function, fd.Hour = g.consoleFunction(d, time.Now())
	vs, _ := g.reg.versions(name)
	for _, n := range vs {
		v := console.Version{N: n, Active: n == fd.Version}
		if m, err := g.reg.meta(name, n); err == nil {
			v.Deployed, v.Hash, v.Origin = m.Deployed, m.Hash, m.Origin
		}
		fd.Versions = append(fd.Versions, v)
	}
	if g.store != nil {
		ents, err := g.store.Logs(ctx, name, time.Time{}, consoleLogScan)
		if err == nil {
			for i := len(ents) - 1; i >= 0 && len(fd.LastFailures) < consoleFailures; i-- {
				if e := ents[i]; e.Reason != "" {
					fd.LastFailures = append(fd.LastFailures, console.Failure{Time: e.Time, Reason: string(e.Reason), Message: e.Message, EventID: e.EventID})
				}
			}
		}
	}
	return fd, true
}

// Bounds of the log streams.
const (
	maxLogStreams  = 16                     // open at once
	logStreamFirst = 50                     // lines sent when a stream opens
	logStreamBatch = 200                    // lines read per poll
	logStreamPoll  = 500 * time.Millisecond // how often the log ring is read
)

// handleLogEvents streams a function's log ring as server-sent events
// named "log" whose data is a LogEntry: its last lines, then new ones as
// they are committed. A reconnecting EventSource resumes after the last id
// it got.
func (g *Host) handleLogEvents(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	if !edgefn.ValidName(name) {
		writeError(w, http.StatusNotFound, &NotFoundError{What: fmt.Sprintf("function %q", name)})
		return
	}
	if g.live.logStreams.Add(1) > maxLogStreams {
		g.live.logStreams.Add(-1)
		writeError(w, http.StatusServiceUnavailable, fmt.Errorf("too many log streams open (at most %d): close one", maxLogStreams))
		return
	}
	defer g.live.logStreams.Add(-1)
	after := sse.LastID(r)
	first := logStreamFirst
	if after > 0 {
		first = logStreamBatch
	}
	ents, err := g.store.Logs(r.Context(), name, time.Time{}, first)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err)
		return
	}
	s, err := sse.Start(w)
	if err != nil {
		return
	}
	send := func(ents []outbox.LogEntry) error {
		for _, e := range ents {
			if e.ID <= after {
				continue
			}
			if err := s.Event("log", e.ID, logEntry(e)); err != nil {
				return err
			}
			after = e.ID
		}
		return nil
	}
	if send(ents) != nil {
		return
	}
	poll := time.NewTicker(logStreamPoll)
	defer poll.Stop()
	quiet := 0
	ctx, cancel := g.live.streamContext(r.Context())
	defer cancel()
	for {
		select {
		case <-poll.C:
			ents, err := g.store.Logs(ctx, name, time.Time{}, logStreamBatch)
			if err != nil {
				return
			}
			if err := send(ents); err != nil {
				return
			}
			if quiet++; time.Duration(quiet)*logStreamPoll >= sse.Heartbeat {
				quiet = 0
				if s.Comment("heartbeat") != nil {
					return
				}
			}
		case <-ctx.Done():
			return
		}
	}
}

// buildVersion is the module version and VCS revision of the binary, for
// an agent whose caller did not set Agent.Version.
func buildVersion() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "unknown"
	}
	v := bi.Main.Version
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			v += " (" + s.Value[:12] + ")"
		}
	}
	return v
}
