package api

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

// Payloads on the wire: text stays text, other bytes are base64, JSON
// documents are JSON only where decoded; each comes back as its bytes.
func TestData(t *testing.T) {
	for _, tc := range []struct {
		in      string
		decoded bool
		want    string // the JSON of the Data
		text    string
	}{
		{"", false, `{}`, ""},
		{"hello", false, `{"payload":"hello"}`, "hello"},
		{`{"a": 1}`, false, `{"payload":"{\"a\": 1}"}`, `{"a": 1}`},
		{`{"a": 1}`, true, `{"payload_json":{"a":1}}`, `{"a":1}`},
		{` [1, 2] `, true, `{"payload_json":[1,2]}`, `[1,2]`},
		{`42`, true, `{"payload":"42"}`, "42"}, // a bare number stays text
		{`{"a": 1`, true, `{"payload":"{\"a\": 1"}`, `{"a": 1`},
		{"\xff\x00", true, `{"payload_b64":"/wA="}`, "base64:/wA="},
	} {
		d := TextData([]byte(tc.in))
		if tc.decoded {
			d = DecodedData([]byte(tc.in))
		}
		b, err := json.Marshal(d)
		if err != nil || string(b) != tc.want {
			t.Errorf("%q (decoded %v): %s, %v; want %s", tc.in, tc.decoded, b, err, tc.want)
		}
		var back Data
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		if got := back.Text(); got != tc.text {
			t.Errorf("%q: Text %q, want %q", tc.in, got, tc.text)
		}
		raw, err := back.Bytes()
		if err != nil {
			t.Errorf("%q: Bytes: %v", tc.in, err)
		}
		// JSON comes back as a JSON document of the same value, the rest
		// byte for byte.
		if back.PayloadJSON == nil && string(raw) != tc.in {
			t.Errorf("%q: Bytes %q", tc.in, raw)
		}
	}
	if _, err := (Data{PayloadB64: "not base64!"}).Bytes(); err == nil {
		t.Error("Bytes of bad base64: no error")
	}
}

func TestMillis(t *testing.T) {
	for d, ms := range map[time.Duration]float64{0: 0, 1500 * time.Microsecond: 1.5, 2 * time.Second: 2000, 999 * time.Nanosecond: 0} {
		if got := Millis(d); got != ms {
			t.Errorf("Millis(%s) = %v, want %v", d, got, ms)
		}
		if d >= time.Microsecond && Duration(ms) != d {
			t.Errorf("Duration(%v) = %s, want %s", ms, Duration(ms), d)
		}
	}
}

// Server-sent events: names, ids, multi-line data, comments, events
// without data skipped, an error from the callback ends the read, and a
// line over the bound is an error rather than unbounded memory.
func TestReadEvents(t *testing.T) {
	stream := ": heartbeat\n\nevent: message\nid: 7\ndata: {\"a\":\ndata: 1}\n\nid: 8\ndata:plain\n\nevent: missed\n\nevent: missed\ndata: 3\n\n"
	var got []Event
	if err := ReadEvents(strings.NewReader(stream), func(ev Event) error { got = append(got, ev); return nil }); err != nil {
		t.Fatal(err)
	}
	want := []Event{{"message", "7", "{\"a\":\n1}"}, {"message", "8", "plain"}, {"missed", "", "3"}}
	if len(got) != len(want) {
		t.Fatalf("events %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("event %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	stop := errors.New("stop")
	n := 0
	if err := ReadEvents(strings.NewReader(stream), func(Event) error { n++; return stop }); err != stop || n != 1 {
		t.Errorf("callback error: %v after %d events", err, n)
	}
	long := "data: " + strings.Repeat("x", maxEventLine+1) + "\n\n"
	if err := ReadEvents(strings.NewReader(long), func(Event) error { return nil }); err == nil {
		t.Error("a line over the bound: no error")
	}
}
