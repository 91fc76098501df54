package edgefn

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"go.yaml.in/yaml/v3"
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidName reports whether s is a valid function name: a lower-case letter,
// then up to 62 lower-case letters, digits, '-' or '_'.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// CronParser is the cron dialect of manifests: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @hourly or
// "@every 90s".
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// MinEvery is the shortest `every:` interval a manifest may ask for.
const MinEvery = 10 * time.Millisecond

// ParseManifest decodes a function manifest strictly. file names the source
// in error messages ("function.yaml"). Every problem is reported at once
// (errors.Join of *YAMLError), each naming the line and the field:
//
//	function.yaml:7: limits.memory: "64MB": unknown unit "MB", use B, KiB, MiB or GiB
func ParseManifest(file string, data []byte) (*Manifest, error) {
	d := &yamlDoc{file: file}
	root := d.root(data)
	if root == nil {
		return nil, d.err()
	}
	m := &Manifest{}
	var sawName, sawWasm bool
	d.fields(root, "", []string{"name", "wasm", "triggers", "limits", "allow", "env", "isolation"}, func(key string, v *yaml.Node, field string) {
		switch key {
		case "name":
			sawName = true
			m.Name = d.str(v, field)
			if m.Name != "" && !ValidName(m.Name) {
				d.errorf(v, field, "%q: use a lower-case letter then letters, digits, '-' or '_' (at most 63)", m.Name)
			}
		case "wasm":
			sawWasm = true
			m.Wasm = d.str(v, field)
			if m.Wasm == "" {
				d.errorf(v, field, "must name the module file, e.g. ./fn.wasm")
			}
		case "triggers":
			m.Triggers = d.triggers(v, field)
		case "limits":
			m.Limits = d.limits(v, field)
		case "allow":
			m.Allow = d.grants(v, field)
		case "env":
			m.Env = d.strMap(v, field)
			for k := range m.Env {
				if k == "" || strings.ContainsAny(k, "=\x00") {
					d.errorf(v, field, "%q: not a valid variable name", k)
				} else if strings.HasPrefix(k, "EDGEFN_") {
					d.errorf(v, field+"."+k, "names starting with EDGEFN_ are set by the agent")
				}
			}
		case "isolation":
			s := d.str(v, field)
			switch Isolation(s) {
			case IsolationWarm, IsolationFresh:
				m.Isolation = Isolation(s)
			default:
				d.errorf(v, field, "%q: use warm or fresh", s)
			}
		}
	})
	if !sawName {
		d.errorf(root, "name", "missing: every function needs a name")
	}
	if !sawWasm {
		d.errorf(root, "wasm", "missing: name the module file, e.g. wasm: ./fn.wasm")
	}
	if err := d.err(); err != nil {
		return nil, err
	}
	if m.Isolation == "" {
		m.Isolation = IsolationWarm
	}
	return m, nil
}

func (d *yamlDoc) triggers(v *yaml.Node, field string) []Trigger {
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, field, "expected a list of triggers, got %s", kindName(v))
		return nil
	}
	out := make([]Trigger, 0, len(v.Content))
	for i, n := range v.Content {
		f := fmt.Sprintf("%s[%d]", field, i)
		var t Trigger
		var kinds []string
		var sawQoS, sawEdge, sawPull, sawDebounce bool
		d.fields(n, f, []string{"mqtt", "qos", "gpio", "edge", "pull", "debounce", "every", "cron"}, func(key string, v *yaml.Node, field string) {
			switch key {
			case "mqtt":
				kinds = append(kinds, key)
				t.MQTT = d.str(v, field)
				if t.MQTT != "" && !ValidTopicFilter(t.MQTT) {
					d.errorf(v, field, "%q: not a valid MQTT topic filter ('+' and '#' must fill a whole level, '#' only last)", t.MQTT)
				}
			case "qos":
				sawQoS = true
				q := d.integer(v, field, 0, 2)
				if q == 2 {
					d.errorf(v, field, "QoS 2 is not supported, use 0 or 1")
				}
				t.QoS = byte(q)
			case "gpio":
				kinds = append(kinds, key)
				t.GPIO = d.str(v, field)
				if t.GPIO == "" {
					d.errorf(v, field, "must name a pin, e.g. GPIO17")
				}
			case "edge":
				sawEdge = true
				s := d.str(v, field)
				switch Edge(s) {
				case EdgeRising, EdgeFalling, EdgeBoth:
					t.Edge = Edge(s)
				default:
					d.errorf(v, field, "%q: use rising, falling or both", s)
				}
			case "pull":
				sawPull = true
				s := d.str(v, field)
				switch Pull(s) {
				case PullNone, PullUp, PullDown:
					t.Pull = Pull(s)
				default:
					d.errorf(v, field, "%q: use none, up or down", s)
				}
			case "debounce":
				sawDebounce = true
				t.Debounce = d.duration(v, field)
			case "every":
				kinds = append(kinds, key)
				before := len(d.errs)
				t.Every = d.duration(v, field)
				if len(d.errs) == before && t.Every < MinEvery {
					d.errorf(v, field, "%s: too short, use at least %s", t.Every, MinEvery)
				}
			case "cron":
				kinds = append(kinds, key)
				t.Cron = d.str(v, field)
				if _, err := CronParser.Parse(t.Cron); t.Cron != "" && err != nil {
					d.errorf(v, field, "%q: %v (five fields: minute hour day-of-month month day-of-week, or @hourly, @every 1h)", t.Cron, err)
				}
			}
		})
		if n.Kind != yaml.MappingNode {
			continue
		}
		switch len(kinds) {
		case 0:
			d.errorf(n, f, "a trigger needs one of mqtt, gpio, every or cron")
			continue
		case 1:
		default:
			d.errorf(n, f, "one trigger per list item: found %s together", strings.Join(kinds, " and "))
			continue
		}
		if sawQoS && kinds[0] != "mqtt" {
			d.errorf(n, f+".qos", "qos applies only to mqtt triggers")
		}
		if (sawEdge || sawPull || sawDebounce) && kinds[0] != "gpio" {
			d.errorf(n, f, "edge, pull and debounce apply only to gpio triggers")
		}
		if kinds[0] == "gpio" {
			if t.Edge == "" {
				t.Edge = EdgeBoth
			}
			if t.Pull == "" {
				t.Pull = PullNone
			}
		}
		out = append(out, t)
	}
	return out
}

func (d *yamlDoc) limits(v *yaml.Node, field string) Limits {
	var l Limits
	d.fields(v, field, []string{"memory", "timeout", "concurrency", "max_output", "max_publishes", "max_log", "keep_warm", "max_depth"}, func(key string, v *yaml.Node, field string) {
		switch key {
		case "memory":
			l.Memory = d.size(v, field)
			if l.Memory != 0 && l.Memory < 64*KiB {
				d.errorf(v, field, "%s: below one WebAssembly page, use at least 64KiB", l.Memory)
			}
		case "timeout":
			l.Timeout = d.duration(v, field)
			if s, _ := d.scalar(v, field); l.Timeout == 0 && s == "0s" {
				d.errorf(v, field, "must be above zero")
			}
		case "concurrency":
			l.Concurrency = int(d.integer(v, field, 1, 1024))
		case "max_output":
			l.MaxOutput = d.size(v, field)
		case "max_publishes":
			l.MaxPublishes = int(d.integer(v, field, 0, 1<<20))
		case "max_log":
			l.MaxLog = d.size(v, field)
		case "keep_warm":
			l.KeepWarm = d.duration(v, field)
		case "max_depth":
			l.MaxDepth = int(d.integer(v, field, 16, 1<<20))
		}
	})
	return l
}

func (d *yamlDoc) grants(v *yaml.Node, field string) Grants {
	var g Grants
	d.fields(v, field, []string{"publish", "gpio_write", "gpio_read", "kv"}, func(key string, v *yaml.Node, field string) {
		switch key {
		case "publish":
			g.Publish = d.strList(v, field)
			for _, f := range g.Publish {
				if !ValidTopicFilter(f) {
					d.errorf(v, field, "%q: not a valid MQTT topic filter", f)
				}
			}
		case "gpio_write":
			g.GPIOWrite = d.strList(v, field)
		case "gpio_read":
			g.GPIORead = d.strList(v, field)
		case "kv":
			g.KV = d.boolean(v, field)
		}
	})
	return g
}

// CheckLimits reports every limit of l above the agent's maxima, naming the
// field ("limits.memory 64MiB is over the agent's maximum 32MiB").
func CheckLimits(l, max Limits) []error {
	var errs []error
	over := func(field string, v, m any) {
		errs = append(errs, fmt.Errorf("limits.%s %v is over the agent's maximum %v", field, v, m))
	}
	if max.Memory > 0 && l.Memory > max.Memory {
		over("memory", l.Memory, max.Memory)
	}
	if max.Timeout > 0 && l.Timeout > max.Timeout {
		over("timeout", l.Timeout, max.Timeout)
	}
	if max.Concurrency > 0 && l.Concurrency > max.Concurrency {
		over("concurrency", l.Concurrency, max.Concurrency)
	}
	if max.MaxOutput > 0 && l.MaxOutput > max.MaxOutput {
		over("max_output", l.MaxOutput, max.MaxOutput)
	}
	if max.MaxPublishes > 0 && l.MaxPublishes > max.MaxPublishes {
		over("max_publishes", l.MaxPublishes, max.MaxPublishes)
	}
	if max.MaxLog > 0 && l.MaxLog > max.MaxLog {
		over("max_log", l.MaxLog, max.MaxLog)
	}
	if max.KeepWarm > 0 && l.KeepWarm > max.KeepWarm {
		over("keep_warm", l.KeepWarm, max.KeepWarm)
	}
	if max.MaxDepth > 0 && l.MaxDepth > max.MaxDepth {
		over("max_depth", l.MaxDepth, max.MaxDepth)
	}
	return errs
}
