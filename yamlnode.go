package edgefn

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// yamlDoc decodes a YAML document strictly, field by field, collecting every
// problem with its file name and line so a person can fix them all at once.
// It backs ParseManifest and the agent config parser.
type yamlDoc struct {
	file string
	errs []error
}

// YAMLError is one problem found in a YAML file.
type YAMLError struct {
	File string
	Line int
	// Field is the dotted path of the field, e.g. "limits.memory".
	Field string
	Msg   string
}

func (e *YAMLError) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

func (d *yamlDoc) errorf(n *yaml.Node, field, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &YAMLError{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)})
}

func (d *yamlDoc) err() error { return errors.Join(d.errs...) }

// root parses data and returns its top-level mapping node.
func (d *yamlDoc) root(data []byte) *yaml.Node {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml.v3 errors read "yaml: line 3: ..."; keep them as they are.
		msg := strings.TrimPrefix(err.Error(), "yaml: ")
		line := 0
		if strings.HasPrefix(msg, "line ") {
			rest := msg[len("line "):]
			if i := strings.IndexByte(rest, ':'); i > 0 {
				if n, err := strconv.Atoi(rest[:i]); err == nil {
					line = n
					msg = strings.TrimSpace(rest[i+1:])
				}
			}
		}
		d.errs = append(d.errs, &YAMLError{File: d.file, Line: line, Msg: "invalid YAML: " + msg})
		return nil
	}
	if doc.Kind == 0 || len(doc.Content) == 0 {
		d.errorf(nil, "", "empty document")
		return nil
	}
	n := doc.Content[0]
	if n.Kind != yaml.MappingNode {
		d.errorf(n, "", "expected a mapping of fields at the top level")
		return nil
	}
	return n
}

// fields walks a mapping node, calling set for each known key and reporting
// unknown and duplicate keys, with the closest known key as a hint.
func (d *yamlDoc) fields(n *yaml.Node, path string, known []string, set func(key string, v *yaml.Node, field string)) {
	if n == nil {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		field := k.Value
		if path != "" {
			field = path + "." + k.Value
		}
		if !contains(known, k.Value) {
			if s := closest(k.Value, known); s != "" {
				d.errorf(k, field, "unknown key %q, did you mean %q?", k.Value, s)
			} else {
				d.errorf(k, field, "unknown key %q (known: %s)", k.Value, strings.Join(known, ", "))
			}
			continue
		}
		if seen[k.Value] {
			d.errorf(k, field, "duplicate key %q", k.Value)
			continue
		}
		seen[k.Value] = true
		set(k.Value, v, field)
	}
}

func (d *yamlDoc) scalar(v *yaml.Node, field string) (string, bool) {
	if v.Kind != yaml.ScalarNode || v.Tag == "!!null" {
		d.errorf(v, field, "expected a single value, got %s", kindName(v))
		return "", false
	}
	return v.Value, true
}

func (d *yamlDoc) str(v *yaml.Node, field string) string {
	s, _ := d.scalar(v, field)
	return s
}

func (d *yamlDoc) boolean(v *yaml.Node, field string) bool {
	s, ok := d.scalar(v, field)
	if !ok {
		return false
	}
	switch s {
	case "true", "yes", "on":
		return true
	case "false", "no", "off":
		return false
	}
	d.errorf(v, field, "%q: expected true or false", s)
	return false
}

func (d *yamlDoc) integer(v *yaml.Node, field string, min, max int64) int64 {
	s, ok := d.scalar(v, field)
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		d.errorf(v, field, "%q: expected a whole number", s)
		return 0
	}
	if n < min || n > max {
		d.errorf(v, field, "%d: out of range, use %d to %d", n, min, max)
		return 0
	}
	return n
}

func (d *yamlDoc) size(v *yaml.Node, field string) Size {
	s, ok := d.scalar(v, field)
	if !ok {
		return 0
	}
	n, err := ParseSize(s)
	if err != nil {
		d.errorf(v, field, "%s", strings.TrimPrefix(err.Error(), "size "))
		return 0
	}
	return n
}

func (d *yamlDoc) duration(v *yaml.Node, field string) time.Duration {
	s, ok := d.scalar(v, field)
	if !ok {
		return 0
	}
	t, err := time.ParseDuration(s)
	if err != nil {
		d.errorf(v, field, "%q: not a duration, use for example 50ms, 30s or 5m", s)
		return 0
	}
	if t < 0 {
		d.errorf(v, field, "%q: must not be negative", s)
		return 0
	}
	return t
}

func (d *yamlDoc) strList(v *yaml.Node, field string) []string {
	if v.Kind == yaml.ScalarNode && v.Tag != "!!null" {
		// A single string where a list is expected is a common slip; accept
		// it rather than make a person guess the syntax.
		return []string{v.Value}
	}
	if v.Kind != yaml.SequenceNode {
		d.errorf(v, field, "expected a list, got %s", kindName(v))
		return nil
	}
	out := make([]string, 0, len(v.Content))
	for i, e := range v.Content {
		if s, ok := d.scalar(e, fmt.Sprintf("%s[%d]", field, i)); ok {
			out = append(out, s)
		}
	}
	return out
}

func (d *yamlDoc) strMap(v *yaml.Node, field string) map[string]string {
	if v.Kind != yaml.MappingNode {
		d.errorf(v, field, "expected a mapping, got %s", kindName(v))
		return nil
	}
	out := make(map[string]string, len(v.Content)/2)
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		if _, dup := out[k.Value]; dup {
			d.errorf(k, field+"."+k.Value, "duplicate key %q", k.Value)
			continue
		}
		if s, ok := d.scalar(val, field+"."+k.Value); ok {
			out[k.Value] = s
		}
	}
	return out
}

func kindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return fmt.Sprintf("%q", n.Value)
	}
	return "nothing"
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// closest returns the known key within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if dd := editDistance(s, k); dd < bestD {
			best, bestD = k, dd
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			c := 1
			if a[i-1] == b[j-1] {
				c = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+c)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
