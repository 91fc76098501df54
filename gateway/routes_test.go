package gateway

import (
	"reflect"
	"sort"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
)

func TestRoutesMatch(t *testing.T) {
	fns := map[string]*edgefn.Manifest{
		"a": {Triggers: []edgefn.Trigger{{MQTT: "sensors/+/temp", QoS: 1}, {MQTT: "sensors/#"}}},
		"b": {Triggers: []edgefn.Trigger{{MQTT: "sensors/kitchen/temp"}, {GPIO: "GPIO17", Edge: edgefn.EdgeFalling}}},
		"c": {Triggers: []edgefn.Trigger{{Every: 30 * time.Second}, {GPIO: "gpio17", Edge: edgefn.EdgeBoth}}},
		"d": {Triggers: []edgefn.Trigger{{Every: 30 * time.Second}, {Cron: "@hourly"}}},
	}
	r := buildRoutes(fns)
	for _, tc := range []struct {
		ev   edgefn.Event
		want []string
	}{
		{edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/kitchen/temp"}, []string{"a", "b"}},
		{edgefn.Event{Source: edgefn.SourceMQTT, Subject: "sensors/hall/humidity"}, []string{"a"}},
		{edgefn.Event{Source: edgefn.SourceMQTT, Subject: "other"}, nil},
		{edgefn.Event{Source: edgefn.SourceGPIO, Subject: "GPIO17", Meta: map[string]string{"edge": "falling"}}, []string{"b", "c"}},
		{edgefn.Event{Source: edgefn.SourceGPIO, Subject: "GPIO17", Meta: map[string]string{"edge": "rising"}}, []string{"c"}},
		{edgefn.Event{Source: edgefn.SourceTimer, Subject: "every 30s"}, []string{"c", "d"}},
		{edgefn.Event{Source: edgefn.SourceTimer, Subject: "cron @hourly"}, []string{"d"}},
	} {
		got := r.match(&tc.ev)
		sort.Strings(got)
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s %s: got %v, want %v", tc.ev.Source, tc.ev.Subject, got, tc.want)
		}
	}
	subs := r.subscriptions()
	if len(subs) != 3 || subs["sensors/+/temp"] != 1 || subs["sensors/#"] != 0 {
		t.Errorf("subscriptions = %v", subs)
	}
	if w := gpioWatches(fns); len(w) != 1 || w["GPIO17"].Edge != edgefn.EdgeBoth {
		t.Errorf("gpio watches = %v", w)
	}
	if ts := timerSpecs(fns); len(ts) != 2 {
		t.Errorf("timer specs = %v", ts)
	}
}
