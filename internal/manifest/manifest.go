package manifest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/robfig/cron/v3"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/strictyaml"
)

// CronParser is the cron dialect of manifests: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @hourly or
// "@every 90s".
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse decodes a function manifest strictly. file names the source in
// error messages ("function.yaml"). Every problem is reported at once
// (errors.Join of *strictyaml.Error), each naming the line and the field:
//
//	function.yaml:7: limits.memory: "64MB": unknown unit "MB", use B, KiB, MiB or GiB
func Parse(file string, data []byte) (*edgefn.Manifest, error) {
	m, _, err := Decode(file, data)
	return m, err
}

// Decode is Parse that also returns where each field was, for Rules.Check.
func Decode(file string, data []byte) (*edgefn.Manifest, *strictyaml.Doc, error) {
	m := &edgefn.Manifest{}
	d := strictyaml.Decode(file, data, m)
	if d.Broken() {
		return nil, nil, d.Err()
	}
	if d.Empty() {
		d.Errorf("", "empty document: a manifest needs at least name and wasm")
		return nil, nil, d.Err()
	}
	check(d, m)
	if err := d.Err(); err != nil {
		return nil, nil, err
	}
	if m.Isolation == "" {
		m.Isolation = edgefn.IsolationWarm
	}
	return m, d, nil
}

// Rules are the operator's ceilings a manifest is checked against when it
// is activated, beyond its own syntax. The zero Rules allow anything valid.
type Rules struct {
	// MaxLimits are the agent's maxima; a zero field sets none.
	MaxLimits edgefn.Limits
	// Publish lists the filters every publish grant must fall within
	// (edgefn.FilterWithin); nil allows any.
	Publish []string
	// PublishToTriggers lists the filters within which a publish grant may
	// reach a topic that another function is triggered by (a chain of
	// functions); a grant or a trigger filter within one of them is allowed.
	PublishToTriggers []string
	// Others are the other functions active on the agent (one with the
	// manifest's own name is skipped).
	Others []*edgefn.Manifest
}

// Check reports, at once and each with the file:line of the field, every
// part of m (decoded into d by Decode) that goes beyond r.
func (r *Rules) Check(d *strictyaml.Doc, m *edgefn.Manifest) error {
	d = d.Clone()
	r.check(d, m)
	return d.Err()
}

// check reports what the struct tags cannot: required fields, ranges,
// exclusive trigger kinds, values from a fixed set.
func check(d *strictyaml.Doc, m *edgefn.Manifest) {
	q := strictyaml.Quote
	switch {
	case !d.Has("name"):
		d.Errorf("name", "missing: every function needs a name")
	case !edgefn.ValidName(m.Name):
		d.Errorf("name", "%s: use a lower-case letter then letters, digits, '-' or '_' (at most 63)", q(m.Name))
	}
	switch {
	case !d.Has("wasm"):
		d.Errorf("wasm", "missing: name the module file, e.g. wasm: ./fn.wasm")
	case m.Wasm == "":
		d.Errorf("wasm", "must name the module file, e.g. ./fn.wasm")
	}
	for i := range m.Triggers {
		checkTrigger(d, fmt.Sprintf("triggers[%d]", i), &m.Triggers[i])
	}
	// Only the lower bounds here: above, the agent's maximum (Rules.Check)
	// is the bound a person must know.
	for _, f := range edgefn.LimitFields {
		p := "limits." + f.Key
		if v := f.Get(m.Limits); d.Has(p) && !d.Failed(p) && v < f.Min {
			d.Errorf(p, "%v", f.CheckRange(v))
		}
	}
	for i, f := range m.Allow.Publish {
		if !edgefn.ValidTopicFilter(f) {
			d.Errorf(fmt.Sprintf("allow.publish[%d]", i), "%s: not a valid MQTT topic filter", q(f))
		}
	}
	for k := range m.Env {
		switch {
		case k == "" || strings.ContainsAny(k, "=\x00"):
			d.Errorf("env."+k, "%s: not a valid variable name", q(k))
		case strings.HasPrefix(k, "EDGEFN_"):
			d.Errorf("env."+k, "names starting with EDGEFN_ are set by the agent")
		}
	}
	oneOf(d, "isolation", &m.Isolation, "", "warm or fresh", edgefn.IsolationWarm, edgefn.IsolationFresh)
	oneOf(d, "uplink.order", &m.Uplink.Order, "", "live or strict", edgefn.UplinkOrderLive, edgefn.UplinkOrderStrict)
}

// oneOf checks the choice *v at field: empty takes def (empty stays empty
// where the default is applied later), anything else must be one of allowed,
// which use names for the error.
func oneOf[T ~string](d *strictyaml.Doc, field string, v *T, def T, use string, allowed ...T) {
	switch {
	case *v == "":
		*v = def
	case !slices.Contains(allowed, *v):
		d.Errorf(field, "%s: use %s", strictyaml.Quote(string(*v)), use)
	}
}

func checkTrigger(d *strictyaml.Doc, f string, t *edgefn.Trigger) {
	q := strictyaml.Quote
	var kinds []string
	for _, k := range []string{"mqtt", "gpio", "every", "cron", "files"} {
		if d.Has(f + "." + k) {
			kinds = append(kinds, k)
		}
	}
	switch len(kinds) {
	case 0:
		d.Errorf(f, "a trigger needs one of mqtt, gpio, every, cron or files")
		return
	case 1:
	default:
		d.Errorf(f, "one trigger per list item: found %s together", strings.Join(kinds, " and "))
		return
	}
	kind := kinds[0]
	if d.Has(f+".qos") && kind != "mqtt" {
		d.Errorf(f+".qos", "qos applies only to mqtt triggers")
	}
	if (d.Has(f+".edge") || d.Has(f+".pull") || d.Has(f+".debounce")) && kind != "gpio" {
		d.Errorf(f, "edge, pull and debounce apply only to gpio triggers")
	}
	if (d.Has(f+".pattern") || d.Has(f+".max_size") || d.Has(f+".after")) && kind != "files" {
		d.Errorf(f, "pattern, max_size and after apply only to files triggers")
	}
	switch kind {
	case "mqtt":
		if !edgefn.ValidTopicFilter(t.MQTT) {
			d.Errorf(f+".mqtt", "%s: not a valid MQTT topic filter ('+' and '#' must fill a whole level, '#' only last)", q(t.MQTT))
		}
		if t.QoS > 1 {
			d.Errorf(f+".qos", "QoS %d is not supported, use 0 or 1", t.QoS)
		}
	case "gpio":
		if t.GPIO == "" {
			d.Errorf(f+".gpio", "must name a pin, e.g. GPIO17")
		}
		oneOf(d, f+".edge", &t.Edge, edgefn.EdgeBoth, "rising, falling or both", edgefn.EdgeRising, edgefn.EdgeFalling, edgefn.EdgeBoth)
		oneOf(d, f+".pull", &t.Pull, edgefn.PullNone, "none, up or down", edgefn.PullNone, edgefn.PullUp, edgefn.PullDown)
	case "every":
		if !d.Failed(f+".every") && t.Every < edgefn.MinEvery {
			d.Errorf(f+".every", "%s: too short, use at least %s", t.Every, edgefn.MinEvery)
		}
	case "cron":
		if _, err := CronParser.Parse(t.Cron); err != nil {
			d.Errorf(f+".cron", "%s: %v (five fields: minute hour day-of-month month day-of-week, or @hourly, @every 1h)", q(t.Cron), err)
		}
	case "files":
		checkFiles(d, f, t)
	}
}

// maxPathLen bounds a files trigger's directory (PATH_MAX on Linux).
const maxPathLen = 4096

// checkFiles checks a files trigger and fills in its defaults.
func checkFiles(d *strictyaml.Doc, f string, t *edgefn.Trigger) {
	q := strictyaml.Quote
	switch {
	case t.Files == "":
		d.Errorf(f+".files", "must name a directory, e.g. /var/lib/edgefn/inbox/camera")
	case len(t.Files) > maxPathLen:
		d.Errorf(f+".files", "%s: longer than %d bytes", q(t.Files), maxPathLen)
	case strings.ContainsRune(t.Files, 0):
		d.Errorf(f+".files", "%s: contains a NUL byte", q(t.Files))
	}
	if err := edgefn.CheckFilePattern(t.Pattern); err != nil && d.Has(f+".pattern") {
		d.Errorf(f+".pattern", "%s: %v", q(t.Pattern), err)
	}
	switch {
	case d.Failed(f + ".max_size"):
	case !d.Has(f + ".max_size"):
		t.MaxSize = edgefn.DefaultFileMaxSize
	case t.MaxSize < 1 || t.MaxSize > edgefn.MaxFileMaxSize:
		d.Errorf(f+".max_size", "%s: out of range, use 1B to %s", t.MaxSize, edgefn.MaxFileMaxSize)
	}
	switch t.After {
	case "":
		t.After = edgefn.FileAfterMove
	case edgefn.FileAfterMove, edgefn.FileAfterDelete:
	default:
		d.Errorf(f+".after", "%s: use move (to %s/, the default) or delete", q(string(t.After)), edgefn.FileDoneDir)
	}
}

// check reports what goes beyond the operator's ceilings.
func (r *Rules) check(d *strictyaml.Doc, m *edgefn.Manifest) {
	for _, f := range edgefn.LimitFields {
		p := "limits." + f.Key
		if max, v := f.Get(r.MaxLimits), f.Get(m.Limits); max > 0 && v > max && !d.Failed(p) {
			d.Errorf(p, "%s: over the agent's maximum %s (limits.max.%s in the agent config)", f.Format(v), f.Format(max), f.Key)
		}
	}
	for i, g := range m.Allow.Publish {
		p := fmt.Sprintf("allow.publish[%d]", i)
		if d.Failed(p) {
			continue
		}
		if r.Publish != nil && !within(g, r.Publish) {
			d.Errorf(p, "%s: not within what the agent allows functions to publish to (grants.max.publish: %s in the agent config)", strictyaml.Quote(g), list(r.Publish))
			continue
		}
		for _, o := range r.Others {
			if o.Name == m.Name {
				continue
			}
			if t, ok := r.reaches(g, o); ok {
				d.Errorf(p, "%s: reaches topic %s that function %q is triggered by; the agent config's grants.max.publish_to_triggers must allow it", strictyaml.Quote(g), strictyaml.Quote(t), o.Name)
				break
			}
		}
	}
	for i, t := range m.Triggers {
		p := fmt.Sprintf("triggers[%d].mqtt", i)
		if t.MQTT == "" || d.Failed(p) {
			continue
		}
		for _, o := range r.Others {
			if o.Name == m.Name {
				continue
			}
			for _, g := range o.Allow.Publish {
				if edgefn.FiltersOverlap(g, t.MQTT) && !r.chainAllowed(g, t.MQTT) {
					d.Errorf(p, "%s: function %q may publish there (allow.publish %s); the agent config's grants.max.publish_to_triggers must allow it", strictyaml.Quote(t.MQTT), o.Name, strictyaml.Quote(g))
				}
			}
		}
	}
}

// reaches returns the first MQTT trigger of o that the grant g reaches and
// the operator did not allow.
func (r *Rules) reaches(g string, o *edgefn.Manifest) (string, bool) {
	for _, t := range o.Triggers {
		if t.MQTT != "" && edgefn.FiltersOverlap(g, t.MQTT) && !r.chainAllowed(g, t.MQTT) {
			return t.MQTT, true
		}
	}
	return "", false
}

func (r *Rules) chainAllowed(grant, trigger string) bool {
	return within(grant, r.PublishToTriggers) || within(trigger, r.PublishToTriggers)
}

func within(f string, ceiling []string) bool {
	for _, c := range ceiling {
		if edgefn.FilterWithin(f, c) {
			return true
		}
	}
	return false
}

func list(fs []string) string {
	q := make([]string, len(fs))
	for i, f := range fs {
		q[i] = strictyaml.Quote(f)
	}
	return "[" + strings.Join(q, ", ") + "]"
}
