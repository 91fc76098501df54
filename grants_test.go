package edgefn

import "testing"

func TestTopicMatch(t *testing.T) {
	for _, tc := range []struct {
		filter, topic string
		want          bool
	}{
		{"a/b", "a/b", true},
		{"a/b", "a/c", false},
		{"a/+", "a/b", true},
		{"a/+", "a/b/c", false},
		{"a/+/c", "a/b/c", true},
		{"a/#", "a", true},
		{"a/#", "a/b/c", true},
		{"#", "a/b", true},
		{"#", "$SYS/x", false},
		{"+/x", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b/", "a/b/", true},
		{"a/+", "a/", true},
		{"+", "a/b", false},
		{"a", "a/b", false},
		{"", "a", false},
	} {
		if got := TopicMatch(tc.filter, tc.topic); got != tc.want {
			t.Errorf("TopicMatch(%q, %q) = %v, want %v", tc.filter, tc.topic, got, tc.want)
		}
	}
}

func TestValidTopicFilter(t *testing.T) {
	for f, want := range map[string]bool{"a/b": true, "a/+/c": true, "#": true, "a/#": true, "a/#/b": false, "a+": false, "a/b#": false, "": false} {
		if got := ValidTopicFilter(f); got != want {
			t.Errorf("ValidTopicFilter(%q) = %v", f, got)
		}
	}
}

func TestParseSize(t *testing.T) {
	for in, want := range map[string]Size{"8MiB": 8 * MiB, "64KiB": 64 * KiB, "512": 512, "512B": 512, "1GiB": GiB, " 2 MiB ": 2 * MiB} {
		got, err := ParseSize(in)
		if err != nil || got != want {
			t.Errorf("ParseSize(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "MiB", "8MB", "8mb", "-1", "8 PiB", "99999999999999999999"} {
		if _, err := ParseSize(in); err == nil {
			t.Errorf("ParseSize(%q) accepted", in)
		}
	}
	if s := (8 * MiB).String(); s != "8MiB" {
		t.Errorf("String = %q", s)
	}
}

func TestFilterWithin(t *testing.T) {
	for _, tc := range []struct {
		inner, outer string
		want         bool
	}{
		{"actuators/fan/#", "actuators/#", true},
		{"actuators/fan", "actuators/+", true},
		{"actuators/+", "actuators/fan", false},
		{"actuators/#", "actuators/+", false},
		{"a", "a/#", true},
		{"a/#", "a/+/#", false},
		{"#", "+/#", false},
		{"+/#", "+/#", true},
		{"#", "#", true},
		{"$SYS/#", "#", false},
		{"$SYS/broker/x", "+/#", false},
		{"$SYS/broker/x", "$SYS/#", true},
		{"a/b/c", "a/b", false},
		{"a/b", "a/b/c", false},
	} {
		if got := FilterWithin(tc.inner, tc.outer); got != tc.want {
			t.Errorf("FilterWithin(%q, %q) = %v, want %v", tc.inner, tc.outer, got, tc.want)
		}
	}
}

func TestFiltersOverlap(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want bool
	}{
		{"sensors/#", "sensors/+/temperature", true},
		{"sensors/kitchen/temperature", "sensors/+/temperature", true},
		{"sensors/kitchen/humidity", "sensors/+/temperature", false},
		{"#", "a/b", true},
		{"a", "a/#", true},
		{"a/+", "a", false},
		{"a/+", "+/b", true},
		{"#", "$SYS/x", false},
		{"$SYS/#", "$SYS/x", true},
		{"a/b", "a/b/c", false},
	} {
		if got := FiltersOverlap(tc.a, tc.b); got != tc.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v, want %v", tc.a, tc.b, got, tc.want)
		}
		if got := FiltersOverlap(tc.b, tc.a); got != tc.want {
			t.Errorf("FiltersOverlap(%q, %q) = %v, want %v", tc.b, tc.a, got, tc.want)
		}
	}
}
