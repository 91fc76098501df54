package sandbox

import (
	"bytes"
	"strconv"

	"github.com/edgefn/edgefn"
)

// runCommand runs a WASI command module for one event in a fresh instance:
// the payload on stdin, stdout as one emitted record, stderr lines as logs,
// the EDGEFN_* variables and the manifest's env in the environment. It
// returns the instance to close (nil if none could be made).
func (f *Function) runCommand(inv *invocation, res *Result) *instance {
	ev := &inv.ev
	stdout := &capWriter{max: int(f.spec.Limits.MaxOutput)}
	cfg := f.r.base.
		WithStdin(bytes.NewReader(ev.Payload)).
		WithStdout(stdout).
		WithArgs(f.spec.Name)
	for k, v := range f.spec.Env {
		cfg = cfg.WithEnv(k, v)
	}
	cfg = cfg.WithEnv("EDGEFN_SOURCE", string(ev.Source)).
		WithEnv("EDGEFN_SUBJECT", ev.Subject).
		WithEnv("EDGEFN_EVENT_ID", ev.ID).
		WithEnv("EDGEFN_TIME_MS", strconv.FormatInt(ev.Time.UnixMilli(), 10)).
		WithEnv("EDGEFN_FUNCTION", f.spec.Name).
		WithEnv("EDGEFN_VERSION", strconv.Itoa(f.spec.Version))
	res.Cold = true
	inst, err := f.newInstance(cfg)
	if err != nil {
		res.Err = &edgefn.Failure{Reason: edgefn.ReasonInternal, Message: "instantiate", Err: err}
		return nil
	}
	inst.inv = inv
	intr, err := inst.call(inst.mod.ExportedFunction(exportStart), inv, nil)
	inst.stderr.flush()
	res.MemoryBytes = inst.memSize()
	fl := inst.classify(err, intr, false, res)
	if fl == nil && intr {
		fl = &edgefn.Failure{Reason: edgefn.ReasonTimeout, Message: inst.why}
	}
	if fl == nil {
		switch {
		case stdout.over:
			fl = edgefn.Fail(edgefn.ReasonOutputLimit, "stdout over limits.max_output %s", f.spec.Limits.MaxOutput)
		case len(stdout.buf) > 0 && !inv.output(len(stdout.buf), "stdout"):
			fl = &edgefn.Failure{Reason: edgefn.ReasonOutputLimit, Message: inv.overLimit}
		case len(stdout.buf) > 0:
			inv.effects = append(inv.effects, edgefn.Effect{Kind: edgefn.EffectEmit, Payload: stdout.buf})
		}
	}
	inst.inv = nil
	if fl != nil {
		res.Err = fl
	}
	return inst
}
