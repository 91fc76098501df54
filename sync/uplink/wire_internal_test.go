package uplink

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "q\"uo\\te", "ctl\x00\x01\x1f\n\r\t", "ünï©ødé", "\u2028\u2029", "bad\xffutf8", "<tag>&"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("appendString(%q) = %s: not a JSON string: %v", s, b, err)
		}
		if utf8.ValidString(s) && got != s {
			t.Fatalf("appendString(%q) round-trips to %q", s, got)
		}
		if !utf8.Valid(b) {
			t.Fatalf("appendString(%q) = %q: invalid UTF-8 on the wire", s, b)
		}
		if strings.ContainsAny(string(b), "\n\r") {
			t.Fatalf("appendString(%q) = %s: contains a line break", s, b)
		}
	})
}
