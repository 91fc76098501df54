package outbox

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/edgefn/edgefn"
)

// Durability selects how hard a commit is pushed to the disk before the
// caller is told its invocation is durable.
type Durability string

// Durability modes.
const (
	// DurabilityFull (the default) fsyncs the WAL on every group commit
	// (synchronous=FULL): a committed invocation survives a power loss.
	DurabilityFull Durability = "full"
	// DurabilityNormal writes the WAL on every group commit but fsyncs it
	// only at checkpoints (synchronous=NORMAL): a committed invocation
	// survives a crash of the process, but a power loss can lose the last
	// commits (never corrupt the database).
	DurabilityNormal Durability = "normal"
)

// OnFull says what happens when a commit would take the outbox past
// MaxBytes.
type OnFull string

// OnFull policies.
const (
	// DropOldest (the default) commits the new records and deletes the oldest
	// pending ones until the outbox fits, counting them under "max_bytes".
	DropOldest OnFull = "drop_oldest"
	// RejectNew fails the invocation with edgefn.ReasonOutboxFull and stores
	// none of its records (its invocation record and logs are kept), so a QoS
	// 1 message is not acknowledged and the broker redelivers it later.
	RejectNew OnFull = "reject_new"
)

// Drop reasons, the keys of Stats.Drops.
const (
	DropMaxBytes    = "max_bytes"    // deleted by drop_oldest to fit MaxBytes
	DropMaxAge      = "max_age"      // expired past MaxAge before confirmation
	DropRejected    = "rejected"     // refused by reject_new (never stored)
	DropDeadLetters = "dead_letters" // oldest dead letters past MaxDeadLetters
)

// RecordOverhead is the per-record allowance, on top of the payload, that
// counts against MaxBytes for the record's metadata and SQLite's own
// overhead (row header, cell pointer, index share).
const RecordOverhead = 64

// Config configures a Store. Only Path and Gateway are required.
type Config struct {
	// Path is the database file, normally "<data dir>/outbox.db". The
	// directory must exist and be writable.
	Path string
	// Gateway is this gateway's id, the prefix of every record id.
	Gateway string
	// Durability is DurabilityFull (default) or DurabilityNormal.
	Durability Durability
	// MaxBytes bounds the pending records: payload plus RecordOverhead per
	// record. 0 means 256MiB.
	MaxBytes edgefn.Size
	// MaxAge expires pending records whose time is older than this. 0 means
	// no age limit.
	MaxAge time.Duration
	// OnFull is DropOldest (default) or RejectNew.
	OnFull OnFull
	// FlushInterval is the longest the committer waits, after the first
	// request of a batch arrives, for more to join it: the latency budget
	// of group commit. Default 2ms: at 1,000 evenly spaced invocations a
	// second a 1ms window ends just before the next one arrives and
	// gathers nothing, 2ms gathers about two per commit for about 1ms more
	// latency. A negative value commits whatever is queued without
	// waiting. The wait adapts to the rate of invocations: none while they
	// come more than two windows apart (an idle store commits at once), up
	// to the window under load. A batch commits before that once the queue
	// is empty and it holds as many invocations as recent batches did
	// (their callers are back).
	FlushInterval time.Duration
	// FlushQuiet closes a batch early when no invocation arrived for this
	// long, or for twice the usual gap between invocations if that is
	// longer (a burst is over: its callers are all in). Default
	// FlushInterval/10; negative disables it, so every batch that waits
	// waits the whole FlushInterval (fewer, bigger commits: less SD card
	// wear at moderate rates, at the price of latency and of throughput
	// when few callers commit at once).
	FlushQuiet time.Duration
	// FlushRecords commits a batch as soon as it holds this many rows
	// (records, or one per invocation without records). Default 512.
	FlushRecords int
	// MaxKVKeys and MaxKVBytes bound each function's key-value store (keys
	// plus values). Defaults 4096 keys and 4MiB.
	MaxKVKeys  int
	MaxKVBytes edgefn.Size
	// MaxKeyLen bounds one kv key. Default 256 bytes.
	MaxKeyLen int
	// MaxInvocations bounds the kept failure records of failed or refused
	// invocations (oldest deleted first; successful invocations are summed
	// per function and minute instead, bounded by InvocationMaxAge only).
	// Default 100000.
	MaxInvocations int
	// InvocationMaxAge deletes invocation records and per-minute usage sums
	// older than this. Default 7 days.
	InvocationMaxAge time.Duration
	// MaxLogLines bounds each function's log ring. Default 1000.
	MaxLogLines int
	// MaxDeadLetters bounds the parked dead letters; past it the oldest are
	// deleted and counted under "dead_letters". Default 10000.
	MaxDeadLetters int
	// CheckpointInterval is how often an idle store truncates its WAL and
	// reclaims free pages. Default 1 minute.
	CheckpointInterval time.Duration
	// PageSize is SQLite's page size for a new database (an existing one
	// keeps its own): 512 to 65536, a power of two. Default 2048. Every
	// group commit rewrites a few pages besides the new rows (the database
	// header, the last partly filled leaf, the table's interior page, the
	// usage row), so smaller pages write less per commit; below 2048 the
	// extra interior pages and the checkpoint's scattered page writes eat
	// the gain.
	PageSize int
	// SkipQuickCheck skips PRAGMA quick_check at open (a full scan of the
	// database; seconds on a large outbox on an SD card). The header check
	// still runs.
	SkipQuickCheck bool
	// Logger receives the store's own log lines. Default slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.Durability == "" {
		c.Durability = DurabilityFull
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = 256 * edgefn.MiB
	}
	if c.OnFull == "" {
		c.OnFull = DropOldest
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = 2 * time.Millisecond
	}
	if c.FlushQuiet == 0 {
		c.FlushQuiet = c.FlushInterval / 10
	}
	if c.FlushRecords == 0 {
		c.FlushRecords = 512
	}
	if c.MaxKVKeys == 0 {
		c.MaxKVKeys = 4096
	}
	if c.MaxKVBytes == 0 {
		c.MaxKVBytes = 4 * edgefn.MiB
	}
	if c.MaxKeyLen == 0 {
		c.MaxKeyLen = 256
	}
	if c.MaxInvocations == 0 {
		c.MaxInvocations = 100000
	}
	if c.InvocationMaxAge == 0 {
		c.InvocationMaxAge = 7 * 24 * time.Hour
	}
	if c.MaxLogLines == 0 {
		c.MaxLogLines = 1000
	}
	if c.MaxDeadLetters == 0 {
		c.MaxDeadLetters = 10000
	}
	if c.PageSize == 0 {
		c.PageSize = 2048
	}
	if c.CheckpointInterval == 0 {
		c.CheckpointInterval = time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// validate reports every problem with the configuration at once.
func (c Config) validate() error {
	var errs []error
	if c.Path == "" {
		errs = append(errs, errors.New("outbox: path: missing"))
	}
	if c.Gateway == "" {
		errs = append(errs, errors.New("outbox: gateway: missing (the gateway id prefixes every record id)"))
	}
	switch c.Durability {
	case DurabilityFull, DurabilityNormal:
	default:
		errs = append(errs, fmt.Errorf("outbox: durability %q: use full or normal", c.Durability))
	}
	switch c.OnFull {
	case DropOldest, RejectNew:
	default:
		errs = append(errs, fmt.Errorf("outbox: on_full %q: use drop_oldest or reject_new", c.OnFull))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("outbox: max_bytes %v: must not be negative", c.MaxBytes))
	}
	if c.MaxAge < 0 {
		errs = append(errs, fmt.Errorf("outbox: max_age %v: must not be negative", c.MaxAge))
	}
	if c.FlushRecords < 0 {
		errs = append(errs, fmt.Errorf("outbox: flush_records %d: must not be negative", c.FlushRecords))
	}
	for name, v := range map[string]int{"max_kv_keys": c.MaxKVKeys, "max_key_len": c.MaxKeyLen,
		"max_invocations": c.MaxInvocations, "max_log_lines": c.MaxLogLines, "max_dead_letters": c.MaxDeadLetters} {
		if v < 0 {
			errs = append(errs, fmt.Errorf("outbox: %s %d: must not be negative", name, v))
		}
	}
	if c.PageSize != 0 && (c.PageSize < 512 || c.PageSize > 65536 || c.PageSize&(c.PageSize-1) != 0) {
		errs = append(errs, fmt.Errorf("outbox: page_size %d: use a power of two from 512 to 65536", c.PageSize))
	}
	if c.MaxKVBytes < 0 {
		errs = append(errs, fmt.Errorf("outbox: max_kv_bytes %v: must not be negative", c.MaxKVBytes))
	}
	return errors.Join(errs...)
}
