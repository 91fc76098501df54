package edgefn

import (
	"errors"
	"path"
	"regexp"
	"strings"
	"time"
)

// Manifest describes one function: its module, what triggers it, its limits
// and its grants. It is read from function.yaml by internal/manifest.Parse.
type Manifest struct {
	Name      string            `json:"name" yaml:"name"`
	Wasm      string            `json:"wasm" yaml:"wasm"`
	Triggers  []Trigger         `json:"triggers,omitempty" yaml:"triggers"`
	Limits    Limits            `json:"limits,omitempty" yaml:"limits"`
	Allow     Grants            `json:"allow,omitempty" yaml:"allow"`
	Env       map[string]string `json:"env,omitempty" yaml:"env"`
	Isolation Isolation         `json:"isolation,omitempty" yaml:"isolation"`
	// Build is the shell command that builds Wasm from the sources, run
	// by `edgefn build` in the manifest's directory; the agent ignores it.
	Build string `json:"build,omitempty" yaml:"build"`
	// Uplink is how the function's records travel to the cloud.
	Uplink UplinkPolicy `json:"uplink,omitempty" yaml:"uplink"`
}

// UplinkPolicy is how a function's records travel to the cloud.
type UplinkPolicy struct {
	// Order is live (the default: while a backlog drains, new records go
	// out in their own batches alongside it) or strict (new records wait
	// behind the backlog, so the cloud sees them in seq order).
	Order UplinkOrder `json:"order,omitempty" yaml:"order"`
}

// UplinkOrder is the order a function's records reach the cloud in.
type UplinkOrder string

// Uplink orders.
const (
	UplinkOrderLive   UplinkOrder = "live"
	UplinkOrderStrict UplinkOrder = "strict"
)

// Edge selects which GPIO transitions trigger a function.
type Edge string

// GPIO edges.
const (
	EdgeRising  Edge = "rising"
	EdgeFalling Edge = "falling"
	EdgeBoth    Edge = "both"
)

// Pull selects a GPIO input's pull resistor.
type Pull string

// GPIO pulls.
const (
	PullNone Pull = "none"
	PullUp   Pull = "up"
	PullDown Pull = "down"
)

// Trigger is one event source of a function; exactly one of MQTT, GPIO,
// Every, Cron and Files is set.
type Trigger struct {
	// MQTT is a topic filter; QoS is the subscription QoS (0 or 1).
	MQTT string `json:"mqtt,omitempty" yaml:"mqtt"`
	QoS  byte   `json:"qos,omitempty" yaml:"qos"`
	// GPIO is a pin name; Edge, Pull and Debounce refine it.
	GPIO     string        `json:"gpio,omitempty" yaml:"gpio"`
	Edge     Edge          `json:"edge,omitempty" yaml:"edge"`
	Pull     Pull          `json:"pull,omitempty" yaml:"pull"`
	Debounce time.Duration `json:"debounce,omitempty" yaml:"debounce"`
	// Every fires at a fixed interval.
	Every time.Duration `json:"every,omitempty" yaml:"every"`
	// Cron fires on a cron schedule (five fields, or a descriptor such as
	// "@hourly").
	Cron string `json:"cron,omitempty" yaml:"cron"`
	// Files is a directory: every complete file dropped in it (closed after
	// writing, or moved in) is handed to the function as its payload. A
	// relative path resolves next to the manifest. Pattern, MaxSize and
	// After refine it.
	Files string `json:"files,omitempty" yaml:"files"`
	// Pattern is a glob the file's name must match (path.Match syntax:
	// "*.jpg"); empty: every file.
	Pattern string `json:"pattern,omitempty" yaml:"pattern"`
	// MaxSize is the largest file handed to the function (default
	// DefaultFileMaxSize, at most MaxFileMaxSize); a larger one is moved
	// to .rejected/ with a failure record.
	MaxSize Size `json:"max_size,omitempty" yaml:"max_size"`
	// After is what becomes of a file once its invocation is durable:
	// moved to .done/ (the default) or deleted.
	After FileAfter `json:"after,omitempty" yaml:"after"`
}

// FileAfter is what becomes of a dropped file once its invocation is
// durable.
type FileAfter string

// What becomes of processed files.
const (
	// FileAfterMove moves the file to the .done/ directory beside it.
	FileAfterMove FileAfter = "move"
	// FileAfterDelete deletes it.
	FileAfterDelete FileAfter = "delete"
)

// The file trigger's bounds.
const (
	// DefaultFileMaxSize is a file trigger's max_size when the manifest
	// does not set one.
	DefaultFileMaxSize = 8 * MiB
	// MaxFileMaxSize is the largest max_size a manifest may set: the
	// whole file is read into the agent's memory and then the guest's.
	MaxFileMaxSize = 64 * MiB
	// FileDoneDir and FileRejectedDir are the directories, inside a file
	// trigger's directory, that processed and rejected files are moved to.
	FileDoneDir     = ".done"
	FileRejectedDir = ".rejected"
)

// Kind returns the trigger's source kind.
func (t *Trigger) Kind() Source {
	switch {
	case t.MQTT != "":
		return SourceMQTT
	case t.GPIO != "":
		return SourceGPIO
	case t.Every != 0 || t.Cron != "":
		return SourceTimer
	case t.Files != "":
		return SourceFile
	}
	return ""
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// ValidName reports whether s is a valid function name: a lower-case letter,
// then up to 62 lower-case letters, digits, '-' or '_'.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// MinEvery is the shortest `every:` interval a timer may have: a manifest
// asking for less is refused, and so is a timer set up with less.
const MinEvery = 10 * time.Millisecond

// maxPatternLen bounds a files trigger's pattern (a file name's length).
const maxPatternLen = 255

// CheckFilePattern reports whether p is a valid files trigger pattern: a
// path.Match glob on a file's name ("*.jpg"), without '/'. Empty is valid
// (every file).
func CheckFilePattern(p string) error {
	switch {
	case len(p) > maxPatternLen:
		return errors.New("longer than 255 bytes")
	case strings.ContainsAny(p, "/\x00"):
		return errors.New("matches a file name, so it may not contain '/' or NUL")
	}
	if _, err := path.Match(p, ""); err != nil {
		return errors.New("not a valid glob: use *, ?, [a-z] and \\ to escape, e.g. \"*.jpg\"")
	}
	return nil
}
