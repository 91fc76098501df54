package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/edgefn/edgefn/sync/fleet"
)

// canaryGrace is how long after a canary's watch the CLI still waits for a
// status: a gateway publishes new failures within its health poll (5 s).
const canaryGrace = 6 * time.Second

// canaryRule is what a canary must do: run the new version for watch
// with an error rate at most maxRate over at least minEvents invocations.
type canaryRule struct {
	spec      string // --canary: N or P%; "" for no canary
	watch     time.Duration
	maxRate   float64
	minEvents int64
}

// canaryFlags checks --canary, --max-error-rate and --min-invocations.
func canaryFlags(c *cli.Context) (canaryRule, error) {
	r := canaryRule{spec: c.String("canary"), watch: c.Duration("watch"), minEvents: c.Int64("min-invocations")}
	rate := c.String("max-error-rate")
	if r.spec == "" {
		if rate != "" || c.IsSet("min-invocations") {
			return r, usagef("fleet deploy: --max-error-rate and --min-invocations apply to canaries: give --canary N|P%%")
		}
		return r, nil
	}
	if _, err := canaryCount(r.spec, 1); err != nil {
		return r, err
	}
	if r.watch <= 0 {
		return r, usagef("fleet deploy: --canary needs --watch DUR: how long the canaries must run it healthy")
	}
	if r.minEvents < 0 {
		return r, usagef("fleet deploy: --min-invocations %d: want 0 or more", r.minEvents)
	}
	if rate != "" {
		p, ok := strings.CutSuffix(rate, "%")
		f, perr := strconv.ParseFloat(p, 64)
		if !ok || perr != nil || f < 0 || f > 100 || math.IsNaN(f) {
			return r, usagef("fleet deploy: --max-error-rate %q: want a percentage from 0%% to 100%%, such as 5%%", rate)
		}
		r.maxRate = f / 100
	}
	return r, nil
}

// canaryCount is how many of n gateways --canary names: N, or P% rounded
// up, at least one, at most n.
func canaryCount(spec string, n int) (int, error) {
	if p, ok := strings.CutSuffix(spec, "%"); ok {
		f, err := strconv.ParseFloat(p, 64)
		if err != nil || f <= 0 || f > 100 {
			return 0, usagef("fleet deploy: --canary %q: want N (a count) or P%% (0 < P <= 100)", spec)
		}
		return min(n, max(1, int(math.Ceil(f/100*float64(n))))), nil
	}
	k, err := strconv.Atoi(spec)
	if err != nil || k < 1 {
		return 0, usagef("fleet deploy: --canary %q: want N (a count, at least 1) or P%% (0 < P <= 100)", spec)
	}
	return min(n, k), nil
}

// runCanary writes entry into the own documents of the chosen canaries and
// watches them. It returns true when every canary ran it healthy for
// --watch; otherwise it rolls the canaries back (the group's previous
// entry, signed anew) and returns false with the reasons in op.res.
func (op *fleetOp) runCanary(rule canaryRule, entry fleet.Function) (bool, error) {
	sts, err := statuses(op.ctx, op.cn)
	if err != nil {
		return false, err
	}
	var online []string
	for _, st := range sts {
		if st.Online && slices.Contains(st.Groups, op.group) {
			online = append(online, st.Gateway)
		}
	}
	if len(online) == 0 {
		return false, fmt.Errorf("fleet deploy --canary: no gateway of group %s is online (fleet ls --group %s): nothing to try the function on", op.group, op.group)
	}
	k, err := canaryCount(rule.spec, len(online))
	if err != nil {
		return false, err
	}
	// The first in name order: a stable canary ring that operators can
	// watch.
	canaries := online[:k]
	op.canaryDocs = map[string]fleet.Document{}
	for _, gw := range canaries {
		d, _, err := op.readDoc(fleet.KindGateway, gw)
		next := d
		next.Functions = withEntry(d.Functions, entry)
		if err == nil {
			err = op.writeDoc(fleet.KindGateway, gw, &next)
		}
		if err != nil {
			// The canaries written so far go back.
			return false, errors.Join(err, op.rollbackCanaries(entry.Name))
		}
		// A later write of this gateway's document must be newer.
		d.Sequence = next.Sequence
		op.canaryDocs[gw] = d
		op.res.Canaries = append(op.res.Canaries, gw)
	}
	fmt.Fprintf(op.c.App.ErrWriter, "canary %s (module %.12s) on %s: each must run it for %v, at most %.1f%% failed events, at least %d invocations\n",
		entry.Name, entry.Module.SHA256, strings.Join(canaries, ", "), rule.watch, rule.maxRate*100, rule.minEvents)
	seqs := map[string]uint64{}
	for gw, d := range op.canaryDocs {
		seqs[gw] = d.Sequence
	}
	failed := watchCanaries(op.ctx, op.cn, seqs, entry, rule, func(gw, what string) { op.progress("canary "+gw, what) })
	if len(failed) == 0 {
		return true, nil
	}
	op.res.CanaryFailed = failed
	return false, op.rollbackCanaries(entry.Name)
}

// rollbackCanaries returns the canaries to the group's entry of name (or
// to none): that entry is signed again above the canary's statement, the
// gateways' per-function sequence having moved past its own, and the
// canaries' own documents are written back as they were.
func (op *fleetOp) rollbackCanaries(name string) error {
	if len(op.res.Canaries) == 0 {
		return nil
	}
	// Interrupted (Ctrl-C) or out of time, the canaries still go back.
	interrupted := op.ctx.Err() != nil
	saved := op.ctx
	ctx, cancel := context.WithTimeout(context.WithoutCancel(op.ctx), time.Minute)
	defer func() { cancel(); op.ctx = saved }()
	op.ctx = ctx
	doc, _, err := op.readDoc(fleet.KindGroup, op.group)
	if err != nil {
		return err
	}
	prev, hadPrev := entryOf(doc, name)
	if hadPrev {
		again, err := op.resign(prev, 0)
		if err != nil {
			return err
		}
		doc.Functions = withEntry(doc.Functions, again)
		if err := op.writeDoc(fleet.KindGroup, op.group, &doc); err != nil {
			return err
		}
	}
	if err := op.restoreCanaries(); err != nil {
		return err
	}
	op.res.RolledBack = true
	if interrupted {
		fmt.Fprintf(op.c.App.ErrWriter, "canaries %s: their documents are written back; not following them (interrupted)\n", strings.Join(op.res.Canaries, ", "))
		return nil
	}
	// Follow the canaries back, briefly: the exit status is already 1.
	ctx, cancelFollow := context.WithTimeout(op.ctx, min(op.c.Duration("watch"), time.Minute))
	defer cancelFollow()
	back := func(st fleet.StatusDoc) (string, bool) {
		i := slices.IndexFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == name })
		switch {
		case hadPrev && i >= 0 && st.Functions[i].Hash == prev.Module.SHA256:
			return fmt.Sprintf("rolled back to %s version %d (module %.12s)", name, st.Functions[i].Version, prev.Module.SHA256), true
		case !hadPrev && (i < 0 || st.Functions[i].Origin != fleet.OriginFleet):
			return "rolled back: " + name + " removed", true
		}
		return "", false
	}
	waitGateways(ctx, op.cn, op.res.Canaries, func(st fleet.StatusDoc) bool {
		what, ok := back(st)
		if ok {
			op.progress("canary "+st.Gateway, what)
		}
		return ok
	})
	return nil
}

// restoreCanaries writes the canaries' own documents back as they were
// before the canary (with new sequences).
func (op *fleetOp) restoreCanaries() error {
	for _, gw := range op.res.Canaries {
		d := op.canaryDocs[gw]
		if err := op.writeDoc(fleet.KindGateway, gw, &d); err != nil {
			return fmt.Errorf("canary %s: write its document back: %w", gw, err)
		}
	}
	return nil
}

// waitGateways calls done with each status of the given gateways until it
// returned true for all of them or ctx ends; it returns those that did not
// get there.
func waitGateways(ctx context.Context, cn *fleet.Conn, gws []string, done func(fleet.StatusDoc) bool) []string {
	left := map[string]bool{}
	for _, gw := range gws {
		left[gw] = true
	}
	updates, stop := followStatuses(ctx, cn, nil)
	defer stop()
	for len(left) > 0 {
		select {
		case <-ctx.Done():
			return slices.Sorted(maps.Keys(left))
		case st := <-updates:
			if left[st.Gateway] && done(st) {
				delete(left, st.Gateway)
			}
		}
	}
	return nil
}

// followStatuses delivers the status documents (those keep accepts; nil:
// all) as they arrive, retained ones first, until ctx ends or stop.
func followStatuses(ctx context.Context, cn *fleet.Conn, keep func(fleet.StatusDoc) bool) (<-chan fleet.StatusDoc, func()) {
	updates := make(chan fleet.StatusDoc, 256)
	filter := cn.Topics().AllStatus()
	// The handler never blocks the connection past stop: the
	// unsubscribe's acknowledgement comes through the same connection.
	ctx, cancel := context.WithCancel(ctx)
	_ = cn.Subscribe(ctx, filter, func(_ string, p []byte, _ bool) {
		var st fleet.StatusDoc
		if json.Unmarshal(p, &st) == nil && (keep == nil || keep(st)) {
			select {
			case updates <- st:
			case <-ctx.Done():
			}
		}
	})
	return updates, func() {
		cancel()
		uctx, ucancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer ucancel()
		_ = cn.Unsubscribe(uctx, filter)
	}
}

// watchCanaries follows the canaries' status documents: each must report
// entry's module active within watch, then run it for watch (plus
// canaryGrace for a last status) as the rule says. It
// returns the canaries (gateway: the sequence of the document that made
// it one) that failed and why.
func watchCanaries(ctx context.Context, cn *fleet.Conn, canaries map[string]uint64, entry fleet.Function, rule canaryRule, progress func(gw, what string)) map[string]string {
	type canary struct {
		active  time.Time
		version int
		health  fleet.Health
	}
	start, watch := time.Now(), rule.watch
	state := map[string]*canary{}
	for gw := range canaries {
		state[gw] = &canary{}
	}
	failed := map[string]string{}
	fail := func(gw, why string) {
		failed[gw] = why
		delete(state, gw)
		progress(gw, "FAILED: "+why)
	}
	ctx, cancel := context.WithTimeout(ctx, 2*watch+canaryGrace+10*time.Second)
	defer cancel()
	updates, stop := followStatuses(ctx, cn, nil)
	defer stop()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	name, sha := entry.Name, entry.Module.SHA256
	for len(state) > 0 {
		select {
		case <-ctx.Done():
			for gw := range state {
				fail(gw, "the watch ended before it reported ("+ctx.Err().Error()+")")
			}
		case <-tick.C:
			now := time.Now()
			for gw, s := range state {
				switch {
				case s.active.IsZero() && now.Sub(start) > watch:
					fail(gw, fmt.Sprintf("did not report %s (module %.12s) active within %v", name, sha, watch))
				case !s.active.IsZero() && now.Sub(s.active) >= watch+canaryGrace && s.health.Invocations < rule.minEvents:
					fail(gw, fmt.Sprintf("only %d invocations of %s in %v, --min-invocations %d: not enough to judge it", s.health.Invocations, name, watch, rule.minEvents))
				case !s.active.IsZero() && now.Sub(s.active) >= watch+canaryGrace:
					delete(state, gw)
					progress(gw, fmt.Sprintf("healthy: %s version %d ran %v, %d invocations, %s failed", name, s.version, watch, s.health.Invocations, failures(s.health)))
				}
			}
		case st := <-updates:
			s := state[st.Gateway]
			if s == nil {
				continue
			}
			if !st.Online {
				fail(st.Gateway, "went offline during the canary")
				continue
			}
			if e, ok := errorAbout(st, name, canaries[st.Gateway], fleet.Target(fleet.KindGateway, st.Gateway)); ok && s.active.IsZero() {
				fail(st.Gateway, "refused: "+e)
				continue
			}
			i := slices.IndexFunc(st.Functions, func(f fleet.StatusFunction) bool { return f.Name == name })
			if i < 0 || st.Functions[i].Hash != sha {
				if !s.active.IsZero() {
					fail(st.Gateway, fmt.Sprintf("%s no longer runs module %.12s", name, sha))
				}
				continue
			}
			f := st.Functions[i]
			if s.active.IsZero() {
				s.active, s.version = time.Now(), f.Version
				progress(st.Gateway, fmt.Sprintf("%s version %d active, watching for %v", name, f.Version, watch))
			}
			s.health = f.Health
			if r := f.Health.ErrorRate(); r > rule.maxRate {
				fail(st.Gateway, fmt.Sprintf("%.1f%% of its events failed (%d invocations, %s failed over %ds), above --max-error-rate %.1f%%",
					r*100, f.Health.Invocations, failures(f.Health), time.Duration(f.Health.Window)/time.Second, rule.maxRate*100))
			}
		}
	}
	return failed
}

// failures prints failures by reason: "0", "12 (trap 12)".
func failures(h fleet.Health) string {
	var n int64
	var parts []string
	for _, r := range slices.Sorted(maps.Keys(h.Failures)) {
		n += h.Failures[r]
		parts = append(parts, fmt.Sprintf("%s %d", r, h.Failures[r]))
	}
	if n == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", n, strings.Join(parts, ", "))
}
