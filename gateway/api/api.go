package api

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Headers of POST /v1/functions/{name}/invoke that make the event pose as
// another trigger's.
const (
	HeaderSource  = "X-Edgefn-Source"
	HeaderSubject = "X-Edgefn-Subject"
)

// Ceilings of the query parameters, enforced by the agent (a request over
// one is refused with 400).
const (
	MaxLogLimit     = 5000  // logs?limit=
	DefaultLogLimit = 200   // logs without limit=
	MaxDeadLetters  = 10000 // outbox?dead_letters=
	MaxPeek         = 1000  // outbox/records?n=
	DefaultPeek     = 20    // outbox/records without n=
	MaxPeekBytes    = 4 << 20
	MaxTrafficLast  = 256 // traffic?n=
)

// Millis is d in milliseconds, to the microsecond.
func Millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}

// Duration is the duration of ms milliseconds.
func Duration(ms float64) time.Duration {
	return time.Duration(ms * float64(time.Millisecond))
}

// Error is the body of every error answer. Problems lists every problem of
// a refused deploy at once.
type Error struct {
	Error    string   `json:"error"`
	Code     int      `json:"code"`
	Problems []string `json:"problems,omitempty"`
}

// Data is bytes on the wire: Payload when they are UTF-8 text, PayloadB64
// otherwise; PayloadJSON (outbox peek only) holds them instead when they
// are a JSON document. Empty bytes are all three empty.
type Data struct {
	Payload     string          `json:"payload,omitempty"`
	PayloadB64  string          `json:"payload_b64,omitempty"`
	PayloadJSON json.RawMessage `json:"payload_json,omitempty"`
}

// TextData is b as text, or base64 when it is not UTF-8.
func TextData(b []byte) Data {
	if utf8.Valid(b) {
		return Data{Payload: string(b)}
	}
	return Data{PayloadB64: base64.StdEncoding.EncodeToString(b)}
}

// DecodedData is b as JSON when it is a JSON document (an object or an
// array), else as TextData.
func DecodedData(b []byte) Data {
	t := bytes.TrimSpace(b)
	if len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t) {
		return Data{PayloadJSON: json.RawMessage(t)}
	}
	return TextData(b)
}

// Bytes returns the bytes d holds.
func (d Data) Bytes() ([]byte, error) {
	switch {
	case d.PayloadJSON != nil:
		return []byte(d.PayloadJSON), nil
	case d.PayloadB64 != "":
		return base64.StdEncoding.DecodeString(d.PayloadB64)
	}
	return []byte(d.Payload), nil
}

// Text is d for people: the text, the JSON compacted, or base64:… (not
// String: the types that embed Data would print as their payload).
func (d Data) Text() string {
	switch {
	case d.PayloadJSON != nil:
		var b bytes.Buffer
		if json.Compact(&b, d.PayloadJSON) == nil {
			return b.String()
		}
		return string(d.PayloadJSON)
	case d.PayloadB64 != "":
		return "base64:" + d.PayloadB64
	}
	return d.Payload
}
