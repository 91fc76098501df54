package edgefn

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// Isolation says whether a reactor's instances are reused across events.
type Isolation string

// Isolation modes.
const (
	// IsolationWarm reuses pooled instances across events (the default).
	IsolationWarm Isolation = "warm"
	// IsolationFresh gives every event a new instance.
	IsolationFresh Isolation = "fresh"
)

// Limits bound one function's invocations. A zero field means "use the
// agent's default". Each field is described by an entry of LimitFields,
// which gives its range, default and ceiling: a new limit is a field here
// plus an entry there.
type Limits struct {
	// Memory caps the guest's linear memory.
	Memory Size `json:"memory,omitempty" yaml:"memory"`
	// Timeout is the deadline of one invocation.
	Timeout time.Duration `json:"timeout,omitempty" yaml:"timeout"`
	// Concurrency is the most invocations (and warm instances) alive at once.
	Concurrency int `json:"concurrency,omitempty" yaml:"concurrency"`
	// MaxOutput caps the bytes emitted and published by one invocation.
	MaxOutput Size `json:"max_output,omitempty" yaml:"max_output"`
	// MaxPublishes caps the number of publishes of one invocation.
	MaxPublishes int `json:"max_publishes,omitempty" yaml:"max_publishes"`
	// MaxLog caps the bytes logged by one invocation; lines past it are
	// dropped and counted, the invocation does not fail.
	MaxLog Size `json:"max_log,omitempty" yaml:"max_log"`
	// KeepWarm is how long an idle warm instance is kept before it is
	// closed (scale to zero); a function without an event for this long
	// also has its compiled code unloaded (reloaded from the disk cache at
	// its next event).
	KeepWarm time.Duration `json:"keep_warm,omitempty" yaml:"keep_warm"`
	// MaxDepth bounds the guest's call depth.
	MaxDepth int `json:"max_depth,omitempty" yaml:"max_depth"`
}

// LimitKind says how a limit's value is written.
type LimitKind int

// Limit kinds.
const (
	// LimitSize is a number of bytes with a binary unit (8MiB).
	LimitSize LimitKind = iota
	// LimitDuration is a Go duration (50ms).
	LimitDuration
	// LimitCount is a whole number.
	LimitCount
)

// LimitField describes one field of Limits. The table LimitFields drives
// the manifest's range checks, the agent's defaults and ceilings
// (limits.default and limits.max in the agent config) and the reference in
// docs/manifest.md.
type LimitField struct {
	// Key is the field's name in manifests and the agent config.
	Key  string
	Kind LimitKind
	// Min and Max bound what a manifest or the agent config may write,
	// whatever the agent's ceiling (0 for Max: no bound but the ceiling).
	Min, Max int64
	// Default is the agent's default when neither the manifest nor
	// limits.default says otherwise.
	Default int64
	// Ceiling is the agent's maximum when limits.max does not say
	// otherwise: a manifest above it is refused at deploy.
	Ceiling int64
	// Doc says what the limit bounds, for the reference.
	Doc string
}

// LimitFields lists every field of Limits, in the order of the struct.
var LimitFields = []LimitField{
	{Key: "memory", Kind: LimitSize, Min: int64(64 * KiB), Max: int64(4 * GiB),
		Default: int64(16 * MiB), Ceiling: int64(128 * MiB),
		Doc: "linear memory cap (at least one 64KiB WebAssembly page)"},
	{Key: "timeout", Kind: LimitDuration, Min: int64(time.Millisecond), Max: int64(time.Hour),
		Default: int64(100 * time.Millisecond), Ceiling: int64(30 * time.Second),
		Doc: "deadline of one invocation"},
	{Key: "concurrency", Kind: LimitCount, Min: 1, Max: 1024,
		Default: 2, Ceiling: 16,
		Doc: "invocations (and warm instances) at once"},
	{Key: "max_output", Kind: LimitSize, Min: 0, Max: int64(GiB),
		Default: int64(256 * KiB), Ceiling: int64(4 * MiB),
		Doc: "bytes emitted + published per invocation"},
	{Key: "max_publishes", Kind: LimitCount, Min: 0, Max: 1 << 20,
		Default: 16, Ceiling: 256,
		Doc: "publishes per invocation"},
	{Key: "max_log", Kind: LimitSize, Min: 0, Max: int64(GiB),
		Default: int64(16 * KiB), Ceiling: int64(64 * KiB),
		Doc: "log bytes per invocation (lines past it are dropped and counted)"},
	{Key: "keep_warm", Kind: LimitDuration, Min: 0, Max: int64(24 * time.Hour),
		Default: int64(5 * time.Minute), Ceiling: int64(time.Hour),
		Doc: "idle warm instances are closed after this; after this without an event the compiled code is unloaded too (reloaded from the disk cache at the next event)"},
	{Key: "max_depth", Kind: LimitCount, Min: 16, Max: 1 << 20,
		Default: 10000, Ceiling: 100000,
		Doc: "guest call depth"},
}

// DefaultLimits are the agent's defaults when neither the manifest nor the
// agent config says otherwise.
var DefaultLimits = limitsOf(func(f LimitField) int64 { return f.Default })

// DefaultMaxLimits are the agent's ceilings when the agent config's
// limits.max does not say otherwise.
var DefaultMaxLimits = limitsOf(func(f LimitField) int64 { return f.Ceiling })

func limitsOf(v func(LimitField) int64) Limits {
	var l Limits
	for _, f := range LimitFields {
		f.Set(&l, v(f))
	}
	return l
}

// field finds the struct field whose yaml tag is f.Key.
func (f LimitField) field(l reflect.Value) reflect.Value {
	t := l.Type()
	for i := range t.NumField() {
		if t.Field(i).Tag.Get("yaml") == f.Key {
			return l.Field(i)
		}
	}
	panic("edgefn: LimitFields names " + f.Key + ", which Limits does not have")
}

// Get returns the field's value in l.
func (f LimitField) Get(l Limits) int64 { return f.field(reflect.ValueOf(l)).Int() }

// Set sets the field's value in l.
func (f LimitField) Set(l *Limits, v int64) { f.field(reflect.ValueOf(l).Elem()).SetInt(v) }

// Format writes v the way the field is written in YAML: 64KiB, 50ms, 4.
func (f LimitField) Format(v int64) string {
	switch f.Kind {
	case LimitSize:
		return Size(v).String()
	case LimitDuration:
		return formatDuration(time.Duration(v))
	}
	return strconv.FormatInt(v, 10)
}

// formatDuration writes d as time.Duration does, without zero trailing
// units: 1h rather than 1h0m0s, 5m rather than 5m0s.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// CheckRange reports a value outside the field's Min and Max.
func (f LimitField) CheckRange(v int64) error {
	if v < f.Min || f.Max > 0 && v > f.Max {
		return fmt.Errorf("%s: out of range, use %s to %s", f.Format(v), f.Format(f.Min), f.Format(f.Max))
	}
	return nil
}

// WithDefaults returns l with every zero field taken from d.
func (l Limits) WithDefaults(d Limits) Limits {
	for _, f := range LimitFields {
		if f.Get(l) == 0 {
			f.Set(&l, f.Get(d))
		}
	}
	return l
}

// LimitsReference is the table of LimitFields in Markdown, as it appears in
// docs/manifest.md.
func LimitsReference() string {
	var b strings.Builder
	b.WriteString("| limit | what it bounds | range | default | agent maximum (`limits.max`) |\n")
	b.WriteString("| --- | --- | --- | --- | --- |\n")
	for _, f := range LimitFields {
		rng := f.Format(f.Min) + " to " + f.Format(f.Max)
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", f.Key, f.Doc, rng, f.Format(f.Default), f.Format(f.Ceiling))
	}
	return b.String()
}
