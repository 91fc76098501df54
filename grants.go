package edgefn

import "strings"

// Grants say what a function may do beyond computing: they are default-deny.
type Grants struct {
	// Publish lists MQTT topic filters the function may publish to.
	Publish []string `json:"publish,omitempty"`
	// GPIOWrite and GPIORead list pins by name (GPIO17).
	GPIOWrite []string `json:"gpio_write,omitempty"`
	GPIORead  []string `json:"gpio_read,omitempty"`
	// KV allows the per-function key-value store.
	KV bool `json:"kv,omitempty"`
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
		fi := strings.IndexByte(filter, '/')
		var fl string
		if fi < 0 {
			fl = filter
		} else {
			fl = filter[:fi]
		}
		if fl == "#" {
			return true
		}
		ti := strings.IndexByte(topic, '/')
		var tl string
		if ti < 0 {
			tl = topic
		} else {
			tl = topic[:ti]
		}
		if fl != "+" && fl != tl {
			return false
		}
		switch {
		case fi < 0 && ti < 0:
			return true
		case fi < 0:
			return false
		case ti < 0:
			// "a/#" matches "a".
			return filter[fi+1:] == "#"
		}
		filter, topic = filter[fi+1:], topic[ti+1:]
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
