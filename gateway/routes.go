package gateway

import (
	"strings"

	"github.com/edgefn/edgefn"
)

// routes is an immutable routing table, rebuilt on every deploy and removal
// and swapped atomically, so routing an event takes no lock.
type routes struct {
	mqtt  []mqttRoute
	gpio  []gpioRoute
	timer map[string][]string // timer spec key -> function names
}

type mqttRoute struct {
	filter   string
	qos      byte
	function string
}

type gpioRoute struct {
	pin      string
	edge     edgefn.Edge
	function string
}

// timerKey names a timer trigger the way the timer source reports it in
// an event's Subject.
func timerKey(t edgefn.Trigger) string {
	if t.Every > 0 {
		return "every " + t.Every.String()
	}
	return "cron " + t.Cron
}

func buildRoutes(fns map[string]*edgefn.Manifest) *routes {
	r := &routes{timer: map[string][]string{}}
	for name, m := range fns {
		for _, t := range m.Triggers {
			switch t.Kind() {
			case edgefn.SourceMQTT:
				r.mqtt = append(r.mqtt, mqttRoute{filter: t.MQTT, qos: t.QoS, function: name})
			case edgefn.SourceGPIO:
				r.gpio = append(r.gpio, gpioRoute{pin: t.GPIO, edge: t.Edge, function: name})
			case edgefn.SourceTimer:
				k := timerKey(t)
				r.timer[k] = append(r.timer[k], name)
			}
		}
	}
	return r
}

// match returns the functions an event triggers, each once even when
// several of its triggers match (overlapping MQTT filters deliver once per
// function).
func (r *routes) match(ev *edgefn.Event) []string {
	var out []string
	add := func(name string) {
		for _, n := range out {
			if n == name {
				return
			}
		}
		out = append(out, name)
	}
	switch ev.Source {
	case edgefn.SourceMQTT:
		for _, rt := range r.mqtt {
			if edgefn.TopicMatch(rt.filter, ev.Subject) {
				add(rt.function)
			}
		}
	case edgefn.SourceGPIO:
		edge := edgefn.Edge(ev.Meta["edge"])
		for _, rt := range r.gpio {
			if strings.EqualFold(rt.pin, ev.Subject) && (rt.edge == edgefn.EdgeBoth || rt.edge == "" || rt.edge == edge) {
				add(rt.function)
			}
		}
	case edgefn.SourceTimer:
		for _, n := range r.timer[ev.Subject] {
			add(n)
		}
	}
	return out
}

// subscriptions returns the MQTT filters to subscribe to, each once with
// the highest QoS any function asks for.
func (r *routes) subscriptions() map[string]byte {
	subs := map[string]byte{}
	for _, rt := range r.mqtt {
		if q, ok := subs[rt.filter]; !ok || rt.qos > q {
			subs[rt.filter] = rt.qos
		}
	}
	return subs
}

// timerSpecs returns the distinct timer triggers.
func timerSpecs(fns map[string]*edgefn.Manifest) map[string]edgefn.Trigger {
	out := map[string]edgefn.Trigger{}
	for _, m := range fns {
		for _, t := range m.Triggers {
			if t.Kind() == edgefn.SourceTimer {
				out[timerKey(t)] = t
			}
		}
	}
	return out
}

// gpioWatches returns the pins to watch with the union of edges asked for
// and the first pull and debounce declared.
func gpioWatches(fns map[string]*edgefn.Manifest) map[string]edgefn.Trigger {
	out := map[string]edgefn.Trigger{}
	for _, m := range fns {
		for _, t := range m.Triggers {
			if t.Kind() != edgefn.SourceGPIO {
				continue
			}
			k := strings.ToUpper(t.GPIO)
			prev, ok := out[k]
			if !ok {
				out[k] = t
				continue
			}
			if prev.Edge != t.Edge {
				prev.Edge = edgefn.EdgeBoth
			}
			if t.Debounce > 0 && (prev.Debounce == 0 || t.Debounce < prev.Debounce) {
				prev.Debounce = t.Debounce
			}
			out[k] = prev
		}
	}
	return out
}
