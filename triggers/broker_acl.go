package triggers

import (
	"errors"
	"fmt"
	"strings"

	"github.com/edgefn/edgefn"
)

// BrokerACL lists the topics a client of the embedded broker may publish
// and receive, as MQTT filters. "%u" stands for the client's username and
// "%c" for its client id; a pattern whose placeholder would be empty or
// would contain '/', '+' or '#' grants nothing. Empty lists grant nothing.
type BrokerACL struct {
	// Publish: topics the client may publish to, including its will and
	// retained messages.
	Publish []string `yaml:"publish" json:"publish,omitempty"`
	// Subscribe: what it may receive. A subscription is accepted only if
	// every topic it can match is covered by one of these filters, and each
	// message is checked again on delivery.
	Subscribe []string `yaml:"subscribe" json:"subscribe,omitempty"`
}

// validate checks the patterns; field names the list ("broker.users[0]").
func (a BrokerACL) validate(field string) error {
	var errs []error
	for list, pats := range map[string][]string{"publish": a.Publish, "subscribe": a.Subscribe} {
		for i, p := range pats {
			if !edgefn.ValidTopicFilter(strings.NewReplacer("%u", "u", "%c", "c").Replace(p)) {
				errs = append(errs, &FieldError{Field: fmt.Sprintf("%s.%s[%d]", field, list, i), Problem: fmt.Sprintf("%q: not an MQTT topic filter ('+' and '#' stand alone in a level, '#' last)", p)})
			}
		}
	}
	return errors.Join(errs...)
}

// clientACL is a BrokerACL with the placeholders filled in for one client.
type clientACL struct {
	full  bool // every topic (anonymous local clients by default)
	local bool // connected from loopback: may read $SYS if granted
	pub   []string
	sub   []string
}

func newClientACL(a BrokerACL, username, clientID string, local bool) *clientACL {
	return &clientACL{local: local, pub: fill(a.Publish, username, clientID), sub: fill(a.Subscribe, username, clientID)}
}

// fill substitutes %u and %c, dropping patterns whose substitute would be
// empty or change the filter's structure.
func fill(pats []string, username, clientID string) []string {
	unsafe := func(s string) bool { return s == "" || strings.ContainsAny(s, "/+#\x00") }
	out := make([]string, 0, len(pats))
	for _, p := range pats {
		if (strings.Contains(p, "%u") && unsafe(username)) || (strings.Contains(p, "%c") && unsafe(clientID)) {
			continue
		}
		out = append(out, strings.NewReplacer("%u", username, "%c", clientID).Replace(p))
	}
	return out
}

// canPublish reports whether the client may publish to topic.
func (a *clientACL) canPublish(topic string) bool {
	if strings.HasPrefix(topic, "$") {
		return false // $SYS and other $ topics belong to the broker
	}
	if a.full {
		return true
	}
	for _, p := range a.pub {
		if edgefn.TopicMatch(p, topic) {
			return true
		}
	}
	return false
}

// canRead reports whether the client may subscribe to filter (or receive
// a message on the topic filter, which then has no wildcard).
func (a *clientACL) canRead(filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		_, f, found := strings.Cut(rest, "/")
		if !found {
			return false
		}
		filter = f
	}
	if (filter == "$SYS" || strings.HasPrefix(filter, "$SYS/")) && !a.local {
		return false
	}
	if a.full {
		return true
	}
	for _, p := range a.sub {
		if filterCovers(p, filter) {
			return true
		}
	}
	return false
}

// filterCovers reports whether every topic that filter f matches is also
// matched by pattern p (both valid MQTT filters). A topic name is a filter
// without wildcards, so filterCovers(p, topic) is TopicMatch(p, topic).
func filterCovers(p, f string) bool {
	pl, fl := strings.Split(p, "/"), strings.Split(f, "/")
	// [MQTT-4.7.2-1]: a wildcard first level does not match "$" topics, so
	// it cannot cover a filter whose first level is one.
	if (pl[0] == "#" || pl[0] == "+") && strings.HasPrefix(fl[0], "$") {
		return false
	}
	for i, pv := range pl {
		if pv == "#" {
			return true
		}
		if i >= len(fl) {
			return false
		}
		switch fv := fl[i]; {
		case fv == "#":
			return false // f matches deeper topics than a non-# p level allows
		case pv == "+":
		case fv != pv:
			return false // a literal p level covers only the same literal
		}
	}
	return len(fl) == len(pl) // a longer f matches topics deeper than p's
}
