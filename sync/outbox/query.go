package outbox

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/edgefn/edgefn"
)

// KVGet returns the committed value of key in function's kv store, and
// whether it exists. Writes of invocations still in flight are not visible
// (the sandbox overlays an invocation's own writes).
func (s *Store) KVGet(ctx context.Context, function, key string) ([]byte, bool, error) {
	var v []byte
	err := s.rdb.QueryRowContext(ctx, "SELECT kv.value FROM kv JOIN names f ON f.id = kv.fn WHERE f.name = ? AND kv.key = ?", function, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("outbox %s: kv get %q/%q: %w", s.cfg.Path, function, key, err)
	}
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Stats is a snapshot of the outbox.
type Stats struct {
	// Depth and Bytes are the pending records and their budgeted size
	// (payload plus RecordOverhead each), against MaxBytes.
	Depth    int64
	Bytes    int64
	MaxBytes int64
	// OldestAge is how old the oldest pending record is (0 when empty).
	OldestAge time.Duration
	// LastSeq is the highest seq ever assigned.
	LastSeq uint64
	// Drops counts records lost to a bound, by reason (DropMaxBytes,
	// DropMaxAge, DropRejected, DropDeadLetters), since the database was
	// created.
	Drops map[string]int64
	// DeadLetters is the number of parked dead letters.
	DeadLetters int64
	// Invocations is the number of invocations on record: the failure
	// records kept plus the successful invocations summed per minute.
	Invocations int64
	// Functions is the pending backlog per function.
	Functions map[string]Backlog
	// Commits is the number of group commits since Open; records per commit
	// is what the SD card's wear depends on.
	Commits int64
	// FileBytes is the size of the database file plus its WAL.
	FileBytes int64
}

// Backlog is one function's share of the pending records.
type Backlog struct {
	Depth int64
	Bytes int64
}

// Stats returns a snapshot of the outbox. The counters come from memory;
// the per-function backlog and the oldest age are read from the database.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	if err := s.flushDeferred(ctx); err != nil {
		return Stats{}, err
	}
	s.mu.Lock()
	st := s.seen
	s.mu.Unlock()
	out := Stats{
		Depth: st.depth, Bytes: st.bytes, MaxBytes: int64(s.cfg.MaxBytes), LastSeq: st.lastSeq,
		Drops:       map[string]int64{DropMaxBytes: 0, DropMaxAge: 0, DropRejected: 0, DropDeadLetters: 0},
		DeadLetters: st.deadCount, Invocations: st.invCount + st.usageCount, Commits: st.commits, Functions: map[string]Backlog{},
	}
	for k, v := range st.drops {
		out.Drops[k] = v
	}
	var oldest sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, "SELECT time FROM records ORDER BY seq LIMIT 1").Scan(&oldest)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return out, fmt.Errorf("outbox %s: stats: %w", s.cfg.Path, err)
	}
	if oldest.Valid {
		out.OldestAge = max(time.Since(time.UnixMilli(oldest.Int64)), 0)
	}
	err = scanAll(ctx, s.rdb, `SELECT f.name, count(*), sum(length(r.payload))
		FROM records r JOIN streams st ON st.id = r.stream JOIN names f ON f.id = st.fn GROUP BY st.fn`, func(rows *sql.Rows) error {
		var name string
		var b Backlog
		if err := rows.Scan(&name, &b.Depth, &b.Bytes); err != nil {
			return err
		}
		b.Bytes += b.Depth * RecordOverhead
		out.Functions[name] = b
		return nil
	})
	if err != nil {
		return out, fmt.Errorf("outbox %s: stats: %w", s.cfg.Path, err)
	}
	out.FileBytes = fileSize(s.cfg.Path) + fileSize(s.cfg.Path+"-wal")
	return out, nil
}

// LogEntry is one line of a function's log ring: a line the function logged,
// or the failure record of a failed invocation (Reason set).
type LogEntry struct {
	ID      int64
	Time    time.Time
	Level   edgefn.LogLevel
	Message string
	EventID string
	Reason  edgefn.Reason
}

// Logs returns function's most recent log entries at or after since, at
// most limit of them, oldest first. The ring keeps MaxLogLines per function.
func (s *Store) Logs(ctx context.Context, function string, since time.Time, limit int) ([]LogEntry, error) {
	if err := s.flushDeferred(ctx); err != nil {
		return nil, err
	}
	out := []LogEntry{}
	err := scanAll(ctx, s.rdb, `SELECT l.id, l.time, l.level, l.message, l.event_id, coalesce(l.reason, '')
		FROM logs l WHERE l.fn = (SELECT id FROM names WHERE name = ?) AND l.time >= ? ORDER BY l.id DESC LIMIT ?`,
		func(rows *sql.Rows) error {
			var e LogEntry
			var t int64
			var reason string
			if err := rows.Scan(&e.ID, &t, &e.Level, &e.Message, &e.EventID, &reason); err != nil {
				return err
			}
			e.Time, e.Reason = time.UnixMilli(t), edgefn.Reason(reason)
			out = append(out, e)
			return nil
		}, function, since.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: logs of %q: %w", s.cfg.Path, function, err)
	}
	slices.Reverse(out)
	return out, nil
}

// Usage is one function's metering over a period.
type Usage struct {
	Function    string
	Invocations int64
	Errors      int64
	// ErrorsByReason counts failed invocations by edgefn.Reason.
	ErrorsByReason map[edgefn.Reason]int64
	TotalDuration  time.Duration
	P99Duration    time.Duration
	// GBSeconds is the sum of memory cap (GiB) x duration (s), the usual
	// serverless billing unit.
	GBSeconds  float64
	Cold, Warm int64
}

// Usage aggregates, per function and sorted by function name, the
// invocations at or after since: the failure records one by one and the
// successful invocations from their per-minute sums, so a minute that
// contains since counts whole. P99Duration is exact when it falls on a
// failure record, else read from the duration histogram (within ±6.25%).
// Invocations older than the retention (InvocationMaxAge, and
// MaxInvocations for failure records) are gone and not counted.
func (s *Store) Usage(ctx context.Context, since time.Time) ([]Usage, error) {
	if err := s.flushDeferred(ctx); err != nil {
		return nil, err
	}
	by := map[string]*Usage{}
	durs := map[string][]durCount{}
	get := func(name string) *Usage {
		u := by[name]
		if u == nil {
			u = &Usage{Function: name, ErrorsByReason: map[edgefn.Reason]int64{}}
			by[name] = u
		}
		return u
	}
	err := scanAll(ctx, s.rdb, `SELECT f.name, coalesce(i.reason, ''), i.duration_us, i.memory_cap, i.cold
		FROM invocations i JOIN names f ON f.id = i.fn WHERE i.time >= ?`, func(rows *sql.Rows) error {
		var name, reason string
		var us, capBytes int64
		var cold bool
		if err := rows.Scan(&name, &reason, &us, &capBytes, &cold); err != nil {
			return err
		}
		u := get(name)
		d := time.Duration(us) * time.Microsecond
		u.Invocations++
		if reason != "" {
			u.Errors++
			u.ErrorsByReason[edgefn.Reason(reason)]++
		}
		u.TotalDuration += d
		u.GBSeconds += float64(capBytes) / float64(edgefn.GiB) * d.Seconds()
		if cold {
			u.Cold++
		} else {
			u.Warm++
		}
		durs[name] = append(durs[name], durCount{us, 1})
		return nil
	}, since.UnixMilli())
	if err != nil {
		return nil, fmt.Errorf("outbox %s: usage: %w", s.cfg.Path, err)
	}
	err = scanAll(ctx, s.rdb, `SELECT f.name, m.minute, m.count, m.cold, m.duration_us, m.max_us, m.gb_seconds, m.hist
		FROM usage_minutes m JOIN names f ON f.id = m.fn WHERE m.minute >= ?`, func(rows *sql.Rows) error {
		var name string
		var minute int64
		var a usageAgg
		var hist []byte
		if err := rows.Scan(&name, &minute, &a.count, &a.cold, &a.durUS, &a.maxUS, &a.gbs, &hist); err != nil {
			return err
		}
		h, err := decodeHist(hist)
		if err != nil {
			return fmt.Errorf("function %q minute %d: %w", name, minute, err)
		}
		u := get(name)
		u.Invocations += a.count
		u.TotalDuration += time.Duration(a.durUS) * time.Microsecond
		u.GBSeconds += a.gbs
		u.Cold += a.cold
		u.Warm += a.count - a.cold
		for b, n := range h {
			durs[name] = append(durs[name], durCount{min(histMid(b), a.maxUS), n})
		}
		return nil
	}, floorDiv(since.UnixMilli(), 60000))
	if err != nil {
		return nil, fmt.Errorf("outbox %s: usage: %w", s.cfg.Path, err)
	}
	for name, u := range by {
		u.P99Duration = time.Duration(p99(durs[name])) * time.Microsecond
	}
	out := make([]Usage, 0, len(by))
	for _, u := range by {
		out = append(out, *u)
	}
	slices.SortFunc(out, func(a, b Usage) int {
		switch {
		case a.Function < b.Function:
			return -1
		case a.Function > b.Function:
			return 1
		}
		return 0
	})
	return out, nil
}

// durCount is n invocations that took us microseconds.
type durCount struct{ us, n int64 }

// p99 returns the nearest-rank 99th percentile of d.
func p99(d []durCount) int64 {
	slices.SortFunc(d, func(a, b durCount) int { return cmp.Compare(a.us, b.us) })
	var total int64
	for _, x := range d {
		total += x.n
	}
	rank := (total*99 + 99) / 100
	for _, x := range d {
		if rank <= x.n {
			return x.us
		}
		rank -= x.n
	}
	return 0
}
