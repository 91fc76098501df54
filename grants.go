package edgefn

import "strings"

// Grants say what a function may do beyond computing: they are default-deny.
type Grants struct {
	// Publish lists MQTT topic filters the function may publish to.
	Publish []string `json:"publish,omitempty" yaml:"publish"`
	// GPIOWrite and GPIORead list pins by name (GPIO17).
	GPIOWrite []string `json:"gpio_write,omitempty" yaml:"gpio_write"`
	GPIORead  []string `json:"gpio_read,omitempty" yaml:"gpio_read"`
	// KV allows the per-function key-value store.
	KV bool `json:"kv,omitempty" yaml:"kv"`
}

// MayPublish reports whether topic matches one of the publish filters.
func (g *Grants) MayPublish(topic string) bool {
	for _, f := range g.Publish {
		if TopicMatch(f, topic) {
			return true
		}
	}
	return false
}

// MayWrite reports whether the pin may be written.
func (g *Grants) MayWrite(pin string) bool { return containsFold(g.GPIOWrite, pin) }

// MayRead reports whether the pin may be read. A pin granted for writing may
// also be read.
func (g *Grants) MayRead(pin string) bool {
	return containsFold(g.GPIORead, pin) || containsFold(g.GPIOWrite, pin)
}

func containsFold(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

// TopicMatch reports whether an MQTT topic matches a filter with the "+"
// (one level) and "#" (this level and all below) wildcards. Topics starting
// with "$" are not matched by a filter starting with a wildcard, as in MQTT
// 3.1.1 section 4.7.2.
func TopicMatch(filter, topic string) bool {
	if filter == "" || topic == "" {
		return false
	}
	if topic[0] == '$' && (filter[0] == '+' || filter[0] == '#') {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case !fmore && !tmore:
			return true
		case !fmore:
			return false
		case !tmore:
			// "a/#" matches "a".
			return frest == "#"
		}
		filter, topic = frest, trest
	}
}

// ValidTopicFilter reports whether f is a well-formed MQTT topic filter.
func ValidTopicFilter(f string) bool {
	if f == "" || strings.ContainsRune(f, 0) {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// ValidTopicName reports whether t is a well-formed topic to publish to (no
// wildcards).
func ValidTopicName(t string) bool {
	return t != "" && !strings.ContainsAny(t, "+#\x00")
}

// FilterWithin reports whether every topic the filter inner matches is also
// matched by outer: "actuators/fan/#" is within "actuators/#", "#" is not
// within "+/#" (which leaves out "$" topics), "$SYS/#" is within no filter
// that starts with a wildcard.
func FilterWithin(inner, outer string) bool {
	in, out := strings.Split(inner, "/"), strings.Split(outer, "/")
	if isWild(out[0]) && strings.HasPrefix(in[0], "$") {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i == len(out):
			return i == len(in)
		case out[i] == "#":
			return true
		case i == len(in), in[i] == "#":
			return false
		case out[i] == "+":
		case in[i] == "+", in[i] != out[i]:
			return false
		}
	}
}

// FiltersOverlap reports whether some topic is matched by both filters.
func FiltersOverlap(a, b string) bool {
	x, y := strings.Split(a, "/"), strings.Split(b, "/")
	if isWild(x[0]) && strings.HasPrefix(y[0], "$") || isWild(y[0]) && strings.HasPrefix(x[0], "$") {
		return false
	}
	for i := 0; ; i++ {
		switch {
		case i < len(x) && x[i] == "#", i < len(y) && y[i] == "#":
			return true
		case i == len(x) || i == len(y):
			return len(x) == len(y)
		case x[i] != "+" && y[i] != "+" && x[i] != y[i]:
			return false
		}
	}
}

func isWild(level string) bool { return level == "+" || level == "#" }
