package gateway

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"reflect"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/sync/fleet"
)

// fleetGateway is the registry as the fleet agent (sync/fleet) sees it.
type fleetGateway struct {
	g *Host
	// sums caches the manifest and module SHA-256 of a version by its
	// content hash: listing must not reread every module each minute.
	mu   sync.Mutex
	sums map[string][2]string
}

func (f *fleetGateway) Installed(ctx context.Context) ([]fleet.Installed, error) {
	fis := f.g.functions()
	out := make([]fleet.Installed, 0, len(fis))
	for _, fi := range fis {
		if fi.Version == 0 {
			continue
		}
		meta, err := f.g.reg.meta(fi.Name, fi.Version)
		if err != nil {
			continue
		}
		sums, err := f.sumsOf(fi.Name, meta)
		if err != nil {
			continue
		}
		name := fi.Name
		in := fleet.Installed{Name: fi.Name, Version: fi.Version, ManifestSHA: sums[0], ModuleSHA256: sums[1], Origin: fleet.OriginLocal,
			Health:   fleet.Health{Invocations: fi.Stats.Invocations, P99: fleet.Millis(fi.Stats.P99)},
			P99Since: func(since time.Time) time.Duration { return f.g.p99Since(name, since) }}
		if meta.Origin == fleet.OriginFleet {
			in.Origin = fleet.OriginFleet
		}
		if len(fi.Stats.Errors) > 0 {
			in.Health.Failures = map[string]int64{}
			for r, n := range fi.Stats.Errors {
				in.Health.Failures[string(r)] = n
			}
		}
		out = append(out, in)
	}
	return out, nil
}

func (f *fleetGateway) sumsOf(name string, meta versionMeta) ([2]string, error) {
	f.mu.Lock()
	s, ok := f.sums[meta.Hash]
	f.mu.Unlock()
	if ok {
		return s, nil
	}
	sv, err := f.g.reg.load(name, meta.Version)
	if err != nil {
		return s, err
	}
	m, w := sha256.Sum256(sv.Manifest), sha256.Sum256(sv.Wasm)
	s = [2]string{hex.EncodeToString(m[:]), hex.EncodeToString(w[:])}
	f.mu.Lock()
	f.sums[meta.Hash] = s
	f.mu.Unlock()
	return s, nil
}

func (f *fleetGateway) Deploy(ctx context.Context, manifest, wasm []byte, sg activation.Signed) (int, error) {
	meta, err := f.g.Deploy(ctx, "fleet document", manifest, wasm, fleet.OriginFleet, &sg)
	return meta.Version, err
}

func (f *fleetGateway) Remove(ctx context.Context, name string) error { return f.g.Remove(ctx, name) }

// Counts sums the invocations and the failures (drops included) of every
// function since the agent started, from memory.
func (f *fleetGateway) Counts() (invocations, failures int64) {
	for _, d := range f.g.deployedFns() {
		d.stats.mu.Lock()
		invocations += d.stats.invocations
		for _, c := range d.stats.errors {
			failures += c
		}
		d.stats.mu.Unlock()
	}
	return invocations, failures
}

func (g *Host) deployedFns() []*deployed {
	g.mu.RLock()
	defer g.mu.RUnlock()
	ds := make([]*deployed, 0, len(g.fns))
	for _, d := range g.fns {
		ds = append(ds, d)
	}
	return ds
}

// p99Since is the p99 duration of the invocations of name from the minute
// of since on, from the per-minute histograms.
func (g *Host) p99Since(name string, since time.Time) time.Duration {
	g.mu.RLock()
	d := g.fns[name]
	g.mu.RUnlock()
	if d == nil {
		return 0
	}
	d.stats.mu.Lock()
	defer d.stats.mu.Unlock()
	var sum histMinute
	from, to := since.Unix()/60, time.Now().Unix()/60
	for i := range d.stats.hist.mins {
		m := &d.stats.hist.mins[i]
		if m.at >= from && m.at <= to {
			for b, c := range m.buckets {
				sum.buckets[b] += c
			}
		}
	}
	return sum.quantile(0.99)
}

// fleetRunner runs the fleet agent of the config's fleet section, and
// replaces it when a reload changes that section.
type fleetRunner struct {
	a   *Agent
	mu  sync.Mutex
	ctx context.Context // the agent's intake; nil before start
	cfg *fleet.Config
	// stop ends the running fleet agent and waits for it (nil: none).
	stop func()
}

// start runs the fleet agent, if configured, until ctx ends.
func (r *fleetRunner) start(ctx context.Context, g *errgroup.Group) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ctx = ctx
	if r.cfg != nil {
		if err := r.runLocked(r.cfg); err != nil {
			return err
		}
	}
	g.Go(func() error {
		<-ctx.Done()
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.stop != nil {
			r.stop()
			r.stop = nil
		}
		return nil
	})
	return nil
}

func (r *fleetRunner) runLocked(cfg *fleet.Config) error {
	fa, err := r.a.fleetAgent(cfg)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(r.ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := fa.Run(ctx); err != nil && ctx.Err() == nil {
			r.a.log.Error("fleet agent stopped", "err", err)
		}
	}()
	r.stop = func() { cancel(); <-done }
	return nil
}

// reload replaces the running fleet agent when the fleet section changed:
// the old one says goodbye (status offline), the new one connects.
func (r *fleetRunner) reload(next *fleet.Config) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if reflect.DeepEqual(next, r.cfg) {
		return
	}
	r.cfg = next
	if r.ctx == nil || r.ctx.Err() != nil {
		return // not started, or shutting down
	}
	if r.stop != nil {
		r.stop()
		r.stop = nil
	}
	if next == nil {
		r.a.log.Info("reload: fleet section removed: fleet agent stopped (functions it placed stay)")
		return
	}
	if err := r.runLocked(next); err != nil {
		r.a.log.Error("reload: fleet section refused: fleet agent stopped", "err", err)
		return
	}
	r.a.log.Info("reload: fleet agent restarted with the new fleet section", "broker", next.Broker, "groups", next.Groups)
}

// fleetAgent builds the fleet agent of cfg.
func (a *Agent) fleetAgent(fc *fleet.Config) (*fleet.Agent, error) {
	cfg := a.cfg
	d := fleet.Dial{Broker: fc.Broker, ClientID: fc.ClientID, Username: fc.Username, Password: fc.Password}
	if fc.TLS.IsSet() {
		tc, err := fc.TLS.Load()
		if err != nil {
			return nil, err
		}
		d.TLS = tc
	}
	var mtc *tls.Config
	if fc.ModuleTLS.IsSet() {
		tc, err := fc.ModuleTLS.Load()
		if err != nil {
			return nil, fmt.Errorf("fleet.module_tls.%w", err)
		}
		mtc = tc
	}
	fg := &fleetGateway{g: a.Host, sums: map[string][2]string{}}
	return fleet.NewAgent(*fc, fleet.AgentOptions{
		GatewayID: cfg.GatewayID, Trusted: a.trusted, DataDir: cfg.DataDir,
		Gateway: fg, Dial: d, HealthWindow: fc.HealthWindow, StatusEvery: fc.StatusEvery, FetchTimeout: fc.FetchTimeout, HTTP: fleet.ModuleClient(mtc),
		Log: a.log.With("part", "fleet"),
	})
}
