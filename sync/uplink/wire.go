package uplink

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/edgefn/edgefn"
)

// timeLayout is RFC 3339 with milliseconds, always in UTC.
const timeLayout = "2006-01-02T15:04:05.000Z07:00"

// encoder turns records into the wire JSON object shared by both uplinks:
// {"id","seq","gateway","function","version","source","subject","time",
// "payload" | "payload_b64"}. It reuses a scratch buffer; not safe for
// concurrent use.
type encoder struct {
	scratch bytes.Buffer
}

// appendRecord appends one JSON object (no newline) to dst.
func (e *encoder) appendRecord(dst []byte, r *edgefn.Record) []byte {
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, r.ID())
	dst = append(dst, `,"seq":`...)
	dst = strconv.AppendUint(dst, r.Seq, 10)
	dst = append(dst, `,"gateway":`...)
	dst = appendString(dst, r.Gateway)
	dst = append(dst, `,"function":`...)
	dst = appendString(dst, r.Function)
	dst = append(dst, `,"version":`...)
	dst = strconv.AppendInt(dst, int64(r.Version), 10)
	dst = append(dst, `,"source":`...)
	dst = appendString(dst, string(r.Source))
	dst = append(dst, `,"subject":`...)
	dst = appendString(dst, r.Subject)
	dst = append(dst, `,"time":"`...)
	dst = r.Time.UTC().AppendFormat(dst, timeLayout)
	dst = append(dst, '"')
	// A JSON payload goes in as JSON, compacted so the line stays one line;
	// anything else (binary, invalid UTF-8, empty) goes in as base64.
	e.scratch.Reset()
	if len(r.Payload) > 0 && utf8.Valid(r.Payload) && json.Compact(&e.scratch, r.Payload) == nil {
		dst = append(dst, `,"payload":`...)
		dst = append(dst, e.scratch.Bytes()...)
	} else {
		dst = append(dst, `,"payload_b64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, r.Payload)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch c {
			case '"', '\\':
				dst = append(dst, '\\', c)
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, "\ufffd"...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 are valid JSON but break some JavaScript
		// line readers; escape them as encoding/json does.
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\u202`...)
			dst = append(dst, hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// topicFor expands the topic template for one record.
func topicFor(tpl string, r *edgefn.Record) string {
	if !strings.Contains(tpl, "{") {
		return tpl
	}
	return strings.NewReplacer("{gateway}", r.Gateway, "{function}", r.Function, "{source}", string(r.Source)).Replace(tpl)
}
