package gateway

import (
	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/manifest"
)

// rules are the operator's ceilings a manifest deployed now is checked
// against: limits.max and grants.max of the agent config, and the other
// active functions whose trigger topics a publish grant must not reach
// unless allowed.
func (g *Host) rules() *manifest.Rules {
	r := &manifest.Rules{
		MaxLimits:         g.cfg.MaxLimits(),
		Publish:           g.cfg.Grants.Max.Publish,
		PublishToTriggers: g.cfg.Grants.Max.PublishToTriggers,
	}
	g.mu.RLock()
	for _, d := range g.fns {
		if v := d.cur.Load(); v != nil {
			r.Others = append(r.Others, v.manifest)
		}
	}
	g.mu.RUnlock()
	return r
}

// parseManifest reads a manifest being activated (deployed, rolled back
// to, loaded at start). err says it does not parse; beyond lists, each
// with the file:line of the field, what goes beyond the operator's
// ceilings, so that a deploy reports it with its other problems.
func (g *Host) parseManifest(file string, data []byte) (m *edgefn.Manifest, beyond []string, err error) {
	m, d, err := manifest.Decode(file, data)
	if err != nil {
		return nil, nil, err
	}
	return m, problems(g.rules().Check(d, m)), nil
}
