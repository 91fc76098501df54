package strictyaml

import (
	"encoding"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// MaxFileSize is the largest config or manifest file accepted. Real ones are
// a few KiB; the cap refuses a huge file before the YAML parser spends
// seconds and hundreds of MiB on it.
const MaxFileSize = 1 << 20

// Error is one problem found in a YAML file.
type Error struct {
	File string
	// Line is 1-based; 0 when the problem has no line (a missing field of
	// an empty file).
	Line int
	// Field is the dotted path of the field, e.g. "limits.memory" or
	// "triggers[0].mqtt"; empty for the whole file.
	Field string
	Msg   string
}

func (e *Error) Error() string {
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

// Doc is one decoded file: the problems found so far and the line of every
// field present, so that checks made after decoding (ranges, exclusive
// fields, the agent's maxima) report lines the same way.
type Doc struct {
	file   string
	lines  map[string]int
	bad    map[string]bool
	errs   []error
	broken bool // the file is not YAML or not a mapping: fields are unknown
	empty  bool
	values int // decoded so far, aliases expanded
}

// maxValues bounds the values one file may decode to: aliases repeat a
// subtree without repeating its text.
const maxValues = 100000

// New returns an empty Doc for file, to report problems of a value that
// was not decoded from a file (a config built in code).
func New(file string) *Doc {
	return &Doc{file: file, lines: map[string]int{}, bad: map[string]bool{}}
}

// Clone returns a copy of d that records problems apart from d, so that a
// value can be checked again after it changed.
func (d *Doc) Clone() *Doc {
	c := *d
	c.lines = maps.Clone(d.lines)
	c.bad = maps.Clone(d.bad)
	c.errs = slices.Clone(d.errs)
	return &c
}

// ReadFile reads and decodes path into v (a pointer to a struct). A file
// larger than MaxFileSize is refused before it is read.
func ReadFile(path string, v any) (*Doc, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > MaxFileSize {
		return nil, tooLarge(path, fi.Size())
	}
	data, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	return Decode(path, data, v), nil
}

func tooLarge(file string, n int64) error {
	return &Error{File: file, Msg: fmt.Sprintf("%d bytes: larger than the %d KiB a config or manifest file may be", n, MaxFileSize>>10)}
}

// Decode decodes data, read from file, into v (a pointer to a struct) and
// returns the Doc holding the problems found; Err tells whether there were
// any. Fields absent from data keep the values v had.
func Decode(file string, data []byte, v any) *Doc {
	d := New(file)
	if len(data) > MaxFileSize {
		d.errs = append(d.errs, tooLarge(file, int64(len(data))))
		d.broken = true
		return d
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		d.broken = true
		d.errs = append(d.errs, syntaxError(file, err))
		return d
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		d.empty = true
		return d
	}
	n := root.Content[0]
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		d.empty = true
		return d
	}
	if n.Kind != yaml.MappingNode {
		d.broken = true
		d.lines[""] = n.Line
		d.Errorf("", "expected a mapping of fields at the top level, got %s", kindName(n))
		return d
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Pointer || rv.IsNil() {
		panic("strictyaml: Decode needs a non-nil pointer")
	}
	d.value(n, rv.Elem(), "")
	return d
}

// syntaxError turns the parser's "yaml: line 3: ..." into an *Error.
func syntaxError(file string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.IndexByte(rest, ':'); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line = n
				msg = strings.TrimSpace(rest[i+1:])
			}
		}
	}
	return &Error{File: file, Line: line, Msg: "invalid YAML: " + cut(msg, 200)}
}

// Empty reports whether the file held no document (all defaults).
func (d *Doc) Empty() bool { return d.empty }

// Broken reports whether the file could not be read as a mapping of fields,
// so that no field is known.
func (d *Doc) Broken() bool { return d.broken }

// Has reports whether field (a dotted path such as "limits.memory") was
// present in the file.
func (d *Doc) Has(field string) bool { _, ok := d.lines[field]; return ok }

// Line returns the line of field, or of its closest enclosing field present
// in the file, or 0.
func (d *Doc) Line(field string) int {
	for {
		if l, ok := d.lines[field]; ok {
			return l
		}
		i := strings.LastIndexAny(field, ".[")
		if i <= 0 {
			return d.lines[""]
		}
		field = field[:i]
	}
}

// Errorf records a problem with field at its line. Nothing is recorded for
// a field that already has a problem (a bad value is reported once, not
// again by a later check of its zero value) or when the file is broken.
func (d *Doc) Errorf(field, format string, args ...any) {
	if d.broken && field != "" {
		return
	}
	if d.bad[field] {
		return
	}
	d.bad[field] = true
	msg := fmt.Sprintf(format, args...)
	if len(msg) > maxMsg {
		// Messages from other packages may quote a value whole.
		msg = cut(msg, maxMsg) + "…"
	}
	d.errs = append(d.errs, &Error{File: d.file, Line: d.Line(field), Field: field, Msg: msg})
}

// maxMsg bounds one problem's message.
const maxMsg = 400

// FieldError is one problem of a config section found by its own
// Validate method: Field is the key path inside the section ("brokers[0]",
// "tls.ca_file"), so that Report can give the problem its line.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

// Report records the problems of err, the result of a section's Validate
// (errors joined with errors.Join): a *FieldError at the line of its field
// below prefix, anything else at the line of prefix.
func (d *Doc) Report(prefix string, err error) {
	for _, e := range Flatten(err) {
		var fe *FieldError
		if errors.As(e, &fe) {
			d.Errorf(join(prefix, fe.Field), "%s", fe.Problem)
		} else {
			d.Errorf(prefix, "%v", e)
		}
	}
}

// Flatten lists the errors joined in err (errors.Join, nested).
func Flatten(err error) []error {
	if err == nil {
		return nil
	}
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range u.Unwrap() {
			out = append(out, Flatten(e)...)
		}
		return out
	}
	return []error{err}
}

// Failed reports whether a problem was already recorded for field.
func (d *Doc) Failed(field string) bool { return d.bad[field] }

// Err returns every problem recorded, joined in the order of their lines,
// or nil.
func (d *Doc) Err() error {
	errs := slices.Clone(d.errs)
	slices.SortStableFunc(errs, func(a, b error) int { return line(a) - line(b) })
	return errors.Join(errs...)
}

func line(err error) int {
	if e, ok := err.(*Error); ok {
		return e.Line
	}
	return 0
}

// File is the name given to Decode.
func (d *Doc) File() string { return d.file }

// Quote quotes a value for an error message, cut short: a message must not
// echo a megabyte that someone pasted by mistake.
func Quote(s string) string {
	const max = 64
	if len(s) <= max {
		return strconv.Quote(s)
	}
	return strconv.Quote(cut(s, max)) + fmt.Sprintf("… (%d bytes)", len(s))
}

// cut returns at most n bytes of s, not splitting a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

var (
	durationType  = reflect.TypeFor[time.Duration]()
	unmarshalType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// value decodes n into v, the field at path.
func (d *Doc) value(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.values++; d.values > maxValues {
		if d.values == maxValues+1 {
			d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Field: path, Msg: fmt.Sprintf("more than %d values (aliases repeated too often?)", maxValues)})
		}
		return
	}
	if _, ok := d.lines[path]; !ok && path != "" {
		d.lines[path] = n.Line
	}
	null := n.Kind == yaml.ScalarNode && n.Tag == "!!null"
	if v.Kind() == reflect.Pointer {
		if null {
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.value(n, v.Elem(), path)
		return
	}
	if v.CanAddr() && v.Addr().Type().Implements(unmarshalType) {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if err := v.Addr().Interface().(encoding.TextUnmarshaler).UnmarshalText([]byte(s)); err != nil {
			d.Errorf(path, "%s: %v", Quote(s), err)
		}
		return
	}
	if v.Type() == durationType {
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		t, err := time.ParseDuration(s)
		switch {
		case err != nil:
			d.Errorf(path, "%s: not a duration, use for example 50ms, 30s or 5m", Quote(s))
		case t < 0:
			d.Errorf(path, "%s: must not be negative", Quote(s))
		default:
			v.SetInt(int64(t))
		}
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		if null {
			return
		}
		d.structure(n, v, path)
	case reflect.Slice:
		d.list(n, v, path)
	case reflect.Map:
		d.mapping(n, v, path)
	case reflect.String:
		if s, ok := d.scalar(n, path); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		switch s {
		case "true", "yes", "on":
			v.SetBool(true)
		case "false", "no", "off":
			v.SetBool(false)
		default:
			d.Errorf(path, "%s: expected true or false", Quote(s))
		}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		if !setWhole(v, s) {
			d.Errorf(path, "%s: expected a whole number%s", Quote(s), rangeHint(v))
		}
	case reflect.Float32, reflect.Float64:
		s, ok := d.scalar(n, path)
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			d.Errorf(path, "%s: expected a number", Quote(s))
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("strictyaml: field %s: type %s is not supported", path, v.Type()))
	}
}

func rangeHint(v reflect.Value) string {
	switch v.Kind() {
	case reflect.Uint8:
		return " from 0 to 255"
	case reflect.Uint16:
		return " from 0 to 65535"
	}
	return ""
}

func (d *Doc) scalar(n *yaml.Node, path string) (string, bool) {
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		d.Errorf(path, "expected a single value, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// field is one decodable struct field.
type field struct {
	key   string
	index []int
}

// fields lists the keys of a struct type from its `yaml` tags: the tag's
// name, or the lower-cased field name; "-" skips a field, ",inline" lifts an
// embedded struct's fields.
func fields(t reflect.Type) []field {
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		tag := sf.Tag.Get("yaml")
		name, opts, _ := strings.Cut(tag, ",")
		if name == "-" {
			continue
		}
		if strings.Contains(opts, "inline") && sf.Type.Kind() == reflect.Struct {
			for _, f := range fields(sf.Type) {
				f.index = append([]int{i}, f.index...)
				out = append(out, f)
			}
			continue
		}
		if name == "" {
			name = strings.ToLower(sf.Name)
		}
		out = append(out, field{key: name, index: []int{i}})
	}
	return out
}

func (d *Doc) structure(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.Errorf(path, "expected a mapping, got %s", kindName(n))
		return
	}
	fs := fields(v.Type())
	known := make([]string, len(fs))
	for i, f := range fs {
		known[i] = f.key
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		j := slices.Index(known, k.Value)
		if j < 0 {
			d.lines[p] = k.Line
			if s := closest(k.Value, known); s != "" {
				d.Errorf(p, "unknown key %s, did you mean %q?", Quote(k.Value), s)
			} else {
				d.Errorf(p, "unknown key %s (known: %s)", Quote(k.Value), strings.Join(known, ", "))
			}
			continue
		}
		if seen[k.Value] {
			d.errs = append(d.errs, &Error{File: d.file, Line: k.Line, Field: p, Msg: fmt.Sprintf("duplicate key %q", k.Value)})
			continue
		}
		seen[k.Value] = true
		d.lines[p] = k.Line
		d.value(val, v.FieldByIndex(fs[j].index), p)
	}
}

func (d *Doc) list(n *yaml.Node, v reflect.Value, path string) {
	et := v.Type().Elem()
	switch {
	case n.Kind == yaml.ScalarNode && n.Tag == "!!null":
		v.Set(reflect.Zero(v.Type()))
		return
	case n.Kind == yaml.ScalarNode && et.Kind() != reflect.Struct:
		// One value where a list is expected is a common slip; take it as
		// a list of one rather than make a person guess the syntax.
		out := reflect.MakeSlice(v.Type(), 1, 1)
		d.value(n, out.Index(0), path+"[0]")
		v.Set(out)
		return
	case n.Kind != yaml.SequenceNode:
		d.Errorf(path, "expected a list, got %s", kindName(n))
		return
	}
	out := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
	for i, e := range n.Content {
		d.value(e, out.Index(i), fmt.Sprintf("%s[%d]", path, i))
	}
	v.Set(out)
}

func (d *Doc) mapping(n *yaml.Node, v reflect.Value, path string) {
	if v.Type().Key().Kind() != reflect.String {
		panic(fmt.Sprintf("strictyaml: field %s: map keys must be strings", path))
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return
	}
	if n.Kind != yaml.MappingNode {
		d.Errorf(path, "expected a mapping, got %s", kindName(n))
		return
	}
	out := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		p := join(path, k.Value)
		key := reflect.ValueOf(k.Value).Convert(v.Type().Key())
		if out.MapIndex(key).IsValid() {
			d.errs = append(d.errs, &Error{File: d.file, Line: k.Line, Field: p, Msg: fmt.Sprintf("duplicate key %s", Quote(k.Value))})
			continue
		}
		d.lines[p] = k.Line
		e := reflect.New(v.Type().Elem()).Elem()
		d.value(val, e, p)
		out.SetMapIndex(key, e)
	}
	v.Set(out)
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
		return Quote(n.Value)
	}
	return "nothing"
}

// closest returns the known key within edit distance 2 of s, if any.
func closest(s string, known []string) string {
	if len(s) > 64 {
		return ""
	}
	best, bestD := "", 3
	for _, k := range known {
		if dd := EditDistance(s, k); dd < bestD {
			best, bestD = k, dd
		}
	}
	return best
}

// EditDistance is the Levenshtein distance between a and b (the "did you
// mean" of config keys and of the CLI's commands).
func EditDistance(a, b string) int {
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

// setWhole parses s as a decimal whole number into v, a signed or unsigned
// integer of any width; it reports false, leaving v alone, when s is not a
// whole number or does not fit v.
func setWhole(v reflect.Value, s string) bool {
	if v.CanInt() {
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil || v.OverflowInt(i) {
			return false
		}
		v.SetInt(i)
		return true
	}
	u, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v.OverflowUint(u) {
		return false
	}
	v.SetUint(u)
	return true
}
