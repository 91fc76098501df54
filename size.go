package edgefn

import (
	"fmt"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Size is a number of bytes. In YAML and on the command line it is written
// with a binary unit: "512B", "64KiB", "8MiB", "1GiB" (a bare number is bytes).
type Size int64

// Common sizes.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// ParseSize parses a size such as "8MiB". Decimal units (KB, MB) are refused
// with an error that says which binary unit to use, so "64MB" is never
// silently read as 64 MiB or 64,000,000 bytes.
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty size, use a number with B, KiB, MiB or GiB")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("size %q: must start with a number, use for example 8MiB", s)
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	unit := strings.TrimSpace(t[i:])
	var mul Size
	switch unit {
	case "", "B":
		mul = 1
	case "KiB", "Ki":
		mul = KiB
	case "MiB", "Mi":
		mul = MiB
	case "GiB", "Gi":
		mul = GiB
	default:
		return 0, fmt.Errorf("size %q: unknown unit %q, use B, KiB, MiB or GiB", s, unit)
	}
	if n > int64(1<<62)/int64(mul) {
		return 0, fmt.Errorf("size %q: too large", s)
	}
	return Size(n) * mul, nil
}

// String formats the size with the largest exact binary unit.
func (s Size) String() string {
	switch {
	case s != 0 && s%GiB == 0:
		return strconv.FormatInt(int64(s/GiB), 10) + "GiB"
	case s != 0 && s%MiB == 0:
		return strconv.FormatInt(int64(s/MiB), 10) + "MiB"
	case s != 0 && s%KiB == 0:
		return strconv.FormatInt(int64(s/KiB), 10) + "KiB"
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// Set implements flag.Value style parsing.
func (s *Size) Set(v string) error {
	n, err := ParseSize(v)
	if err != nil {
		return err
	}
	*s = n
	return nil
}

// MarshalText implements encoding.TextMarshaler.
func (s Size) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Size) UnmarshalText(b []byte) error { return s.Set(string(b)) }

// UnmarshalYAML decodes a size in a YAML file, reporting the line of a bad
// value and letting the decoder go on to report other problems.
func (s *Size) UnmarshalYAML(n *yaml.Node) error {
	if err := s.Set(n.Value); err != nil {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: %v", n.Line, err)}}
	}
	return nil
}
