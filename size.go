package edgefn

import (
	"fmt"
	"strconv"
	"strings"
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
	n, err := parseSize(s)
	if err != nil {
		return 0, fmt.Errorf("size %q: %w", s, err)
	}
	return n, nil
}

// parseSize's errors do not repeat the value: callers quote it.
func parseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return 0, fmt.Errorf("empty, use a number with B, KiB, MiB or GiB")
	}
	i := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9') {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("must start with a number, use for example 8MiB")
	}
	n, err := strconv.ParseInt(t[:i], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("too large")
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
		if len(unit) > 8 {
			unit = unit[:8] + "…"
		}
		return 0, fmt.Errorf("unknown unit %q, use B, KiB, MiB or GiB", unit)
	}
	if n > int64(1<<62)/int64(mul) {
		return 0, fmt.Errorf("too large")
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

// UnmarshalText implements encoding.TextUnmarshaler; its errors do not
// repeat the value, which the caller quotes (cut short) with the field.
func (s *Size) UnmarshalText(b []byte) error {
	n, err := parseSize(string(b))
	if err != nil {
		return err
	}
	*s = n
	return nil
}
