package gateway

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/devices"
	"github.com/edgefn/edgefn/internal/activation"
	"github.com/edgefn/edgefn/internal/strictyaml"
	"github.com/edgefn/edgefn/sandbox"
)

// DeployError lists every problem found in a deploy, each naming the field,
// import or limit, so a person fixes them all at once.
type DeployError struct {
	Function string
	Problems []string
}

func (e *DeployError) Error() string {
	if len(e.Problems) == 1 {
		return fmt.Sprintf("deploy %q: %s", e.Function, e.Problems[0])
	}
	return fmt.Sprintf("deploy %q: %d problems:\n  %s", e.Function, len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// NotFoundError says a function or version does not exist.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string { return e.What + " not found" }

func problems(err error) []string {
	var out []string
	for _, e := range strictyaml.Flatten(err) {
		out = append(out, e.Error())
	}
	return out
}

// validate checks a parsed manifest against the agent: limits within the
// maxima, pins that exist, output pins not claimed by another function.
func (g *Host) validate(m *edgefn.Manifest) (edgefn.Limits, []string) {
	var probs []string
	// Limits above the maxima are refused by parseManifest, with lines.
	lim := m.Limits.WithDefaults(g.cfg.DefaultLimits())
	claims := devices.ManifestClaims(m.Name, m)
	if len(claims) == 0 {
		return lim, probs
	}
	if g.gpio == nil {
		for _, c := range claims {
			probs = append(probs, fmt.Sprintf("gpio pin %q: no GPIO backend on this agent (gpio.backend none)", c.Pin))
		}
		return lim, probs
	}
	// The new function's claims together with every other active
	// function's: a pin that does not exist, two writers, or a pin both
	// watched and driven are refused, naming pin and functions.
	g.mu.RLock()
	for name, d := range g.fns {
		if v := d.cur.Load(); v != nil && name != m.Name {
			claims = append(claims, devices.ManifestClaims(name, v.manifest)...)
		}
	}
	g.mu.RUnlock()
	probs = append(probs, problems(g.gpio.CheckClaims(claims))...)
	return lim, probs
}

// Deploy validates a manifest and its module, stores them as a new version
// and activates it: new events go to the new version, in-flight ones finish
// on the old. Redeploying the active content is a no-op that returns the
// active version. Errors are a *DeployError listing every problem.
//
// When signing is on (admin.trusted_keys), sg must be a deploy statement
// signed by a trusted key for this content, newer than the last one
// accepted for the function, or the deploy is refused with an
// *ActivationError before anything is compiled. Without signing, sg only
// names the key it claims to be signed with.
func (g *Host) Deploy(ctx context.Context, file string, manifest, wasm []byte, origin string, sg *activation.Signed) (versionMeta, error) {
	m, beyond, err := g.parseManifest(file, manifest)
	if err != nil {
		// The manifest did not parse, so the function has no name yet:
		// name the file.
		return versionMeta{}, &DeployError{Function: file, Problems: problems(err)}
	}
	g.deployMu.Lock()
	defer g.deployMu.Unlock()

	if err := g.authorize(sg, activation.Deploy, m.Name, manifest, wasm); err != nil {
		return versionMeta{}, err
	}
	signer := ""
	if sg != nil {
		signer = sg.Key
	}
	if act, _ := g.reg.active(m.Name); act > 0 {
		if sv, err := g.reg.load(m.Name, act); err == nil && sv.Meta.Hash == contentHash(manifest, wasm) {
			return sv.Meta, g.record(m.Name, sg)
		}
	}
	lim, probs := g.validate(m)
	probs = append(beyond, probs...)
	probs = append(probs, g.resolveFiles(m, origin)...)
	vs, err := g.reg.versions(m.Name)
	if err != nil {
		return versionMeta{}, fmt.Errorf("deploy %q: %w", m.Name, err)
	}
	next := 1
	if len(vs) > 0 {
		next = vs[len(vs)-1] + 1
	}
	var fn *sandbox.Function
	if len(probs) == 0 {
		fn, err = g.rt.Load(ctx, g.spec(m, lim, next), wasm)
		if err != nil {
			probs = append(probs, problems(err)...)
		}
	}
	if len(probs) > 0 {
		return versionMeta{}, &DeployError{Function: m.Name, Problems: probs}
	}
	meta, err := g.reg.store(m.Name, manifest, wasm, versionMeta{Origin: origin, Signer: signer})
	if err == nil && meta.Version != next {
		err = fmt.Errorf("version %d stored as %d", next, meta.Version)
	}
	if err == nil {
		err = g.record(m.Name, sg)
	}
	if err == nil {
		err = g.reg.activate(m.Name, meta.Version)
	}
	if err != nil {
		_ = fn.Close(ctx)
		return versionMeta{}, fmt.Errorf("deploy %q: store: %w", m.Name, err)
	}
	g.activate(&version{name: m.Name, manifest: m, limits: lim, meta: meta, fn: fn, raw: manifest})
	if gone, err := g.reg.prune(m.Name, keepVersions); err == nil && len(gone) > 0 {
		g.rt.Prune(g.loadedFunctions()...)
	}
	g.log.Info("deployed", "function", m.Name, "version", meta.Version, "hash", meta.Hash[:12], "origin", origin)
	return meta, nil
}

// keepVersions is how many versions of a function stay on disk for
// rollback.
const keepVersions = 5

func (g *Host) spec(m *edgefn.Manifest, lim edgefn.Limits, version int) sandbox.Spec {
	return sandbox.Spec{Name: m.Name, Version: version, Limits: lim, Grants: m.Allow, Env: m.Env, Isolation: m.Isolation}
}

// activate makes v the active version of its function and updates routes
// and triggers. The previous version is closed once its in-flight
// invocations finish.
func (g *Host) activate(v *version) {
	g.mu.Lock()
	d, ok := g.fns[v.name]
	if !ok {
		d = &deployed{name: v.name, stats: newFnStats(g.metrics, v.name), commits: make(chan struct{}, maxPendingCommits)}
		d.q = newQueue(v.name, g.cfg.QueueSize, v.limits.Concurrency, idleWorker, func(_ context.Context, j *job) { g.run(d, j) }, g.log)
		g.fns[v.name] = d
	}
	old := d.cur.Swap(v)
	d.q.setConcurrency(v.limits.Concurrency)
	d.stats.seriesFor(v.manifest)
	g.mu.Unlock()
	g.refreshRoutes()
	if old != nil {
		g.retire(old)
	}
}

// retire closes an old version in the background; sandbox.Function.Close
// waits for its in-flight invocations.
func (g *Host) retire(v *version) {
	g.bg.Add(1)
	go func() {
		defer g.bg.Done()
		if err := v.fn.Close(context.Background()); err != nil {
			g.log.Warn("close old version", "function", v.name, "version", v.meta.Version, "err", err)
		}
	}()
}

// Rollback activates an earlier stored version: to, or the one before the
// active one when to is 0. When signing is on, sg must be a rollback
// statement signed by a trusted key for that version's content, newer than
// the last one accepted for the function (an *ActivationError otherwise).
func (g *Host) Rollback(ctx context.Context, name string, to int, sg *activation.Signed) (versionMeta, error) {
	if err := checkName(name); err != nil {
		return versionMeta{}, err
	}
	g.deployMu.Lock()
	defer g.deployMu.Unlock()
	act, err := g.reg.active(name)
	if err != nil || act == 0 {
		return versionMeta{}, &NotFoundError{What: fmt.Sprintf("function %q", name)}
	}
	vs, err := g.reg.versions(name)
	if err != nil {
		return versionMeta{}, err
	}
	if to == 0 {
		for _, v := range vs {
			if v < act {
				to = v
			}
		}
		if to == 0 {
			return versionMeta{}, &NotFoundError{What: fmt.Sprintf("function %q: a version before %d", name, act)}
		}
	}
	sv, err := g.reg.load(name, to)
	if err != nil {
		if to == act {
			return versionMeta{}, err
		}
		return versionMeta{}, &NotFoundError{What: fmt.Sprintf("function %q version %d", name, to)}
	}
	if err := g.authorize(sg, activation.Rollback, name, sv.Manifest, sv.Wasm); err != nil {
		return versionMeta{}, err
	}
	g.mu.RLock()
	_, loaded := g.fns[name]
	g.mu.RUnlock()
	if to == act && loaded {
		return sv.Meta, g.record(name, sg)
	}
	// Otherwise (another version, or the active one that was not loaded
	// at start) load and activate it.
	v, err := g.loadVersion(ctx, sv)
	if err != nil {
		return versionMeta{}, err
	}
	err = g.record(name, sg)
	if err == nil {
		err = g.reg.activate(name, to)
	}
	if err != nil {
		_ = v.fn.Close(ctx)
		return versionMeta{}, err
	}
	g.activate(v)
	g.log.Info("rolled back", "function", name, "from", act, "to", to)
	return sv.Meta, nil
}

// loadVersion loads a stored version into the sandbox.
func (g *Host) loadVersion(ctx context.Context, sv *storedVersion) (*version, error) {
	m, beyond, err := g.parseManifest(sv.Meta.Name+".yaml", sv.Manifest)
	if err != nil {
		return nil, err
	}
	lim, probs := g.validate(m)
	probs = append(beyond, probs...)
	probs = append(probs, g.resolveFiles(m, sv.Meta.Origin)...)
	if len(probs) > 0 {
		return nil, &DeployError{Function: m.Name, Problems: probs}
	}
	fn, err := g.rt.Load(ctx, g.spec(m, lim, sv.Meta.Version), sv.Wasm)
	if err != nil {
		return nil, &DeployError{Function: m.Name, Problems: problems(err)}
	}
	return &version{name: m.Name, manifest: m, limits: lim, meta: sv.Meta, fn: fn, raw: sv.Manifest}, nil
}

// Remove stops routing events to a function, drains its queue (bounded by
// ctx), then deletes it and its stored versions.
func (g *Host) Remove(ctx context.Context, name string) error {
	if err := checkName(name); err != nil {
		return err
	}
	g.deployMu.Lock()
	defer g.deployMu.Unlock()
	g.mu.Lock()
	d, ok := g.fns[name]
	if ok {
		delete(g.fns, name)
	}
	g.mu.Unlock()
	if !ok {
		// A function stored but not loaded (refused at start) is only
		// on disk.
		if act, _ := g.reg.active(name); act > 0 {
			g.log.Info("removed", "function", name, "loaded", false)
			return g.reg.remove(name)
		}
		return &NotFoundError{What: fmt.Sprintf("function %q", name)}
	}
	g.refreshRoutes()
	err := d.q.close(ctx)
	d.pending.Wait()
	if v := d.cur.Swap(nil); v != nil {
		err = errors.Join(err, v.fn.Close(ctx))
	}
	err = errors.Join(err, g.reg.remove(name))
	g.rt.Prune(g.loadedFunctions()...)
	g.log.Info("removed", "function", name)
	return err
}

func (g *Host) loadedFunctions() []*sandbox.Function {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]*sandbox.Function, 0, len(g.fns))
	for _, d := range g.fns {
		if v := d.cur.Load(); v != nil {
			out = append(out, v.fn)
		}
	}
	return out
}
