package outbox

import (
	"context"
	"database/sql"
	"time"
)

// dropOldest deletes the oldest pending records until the outbox fits
// MaxBytes, counting them.
func (s *Store) dropOldest(ctx context.Context, b *batch) error {
	excess := b.st.bytes - int64(s.cfg.MaxBytes)
	var dropped int64
	for excess > 0 {
		var cut, n, freed int64
		err := scanAll(ctx, s.wc, "SELECT seq, length(payload) FROM records ORDER BY seq LIMIT 512", func(r *sql.Rows) error {
			var seq, l int64
			if err := r.Scan(&seq, &l); err != nil {
				return err
			}
			if excess > 0 {
				cut = seq
				n++
				freed += l + RecordOverhead
				excess -= l + RecordOverhead
			}
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
		if _, err := s.wc.ExecContext(ctx, "DELETE FROM records WHERE seq <= ?", cut); err != nil {
			return err
		}
		b.st.depth -= n
		b.st.bytes -= freed
		dropped += n
	}
	if dropped > 0 {
		b.st.drops[DropMaxBytes] += dropped
		b.drops, b.deleted = true, true
		s.warnDrops(b.now, b.st.drops)
	}
	return nil
}

// warnDrops logs the drop counters at most once a minute: under a steady
// overflow every commit drops, and a line per commit would flood the log.
// The counters themselves are exact and in Stats.
func (s *Store) warnDrops(now time.Time, drops map[string]int64) {
	if now.Sub(s.lastDropLog) < time.Minute {
		return
	}
	s.lastDropLog = now
	s.log.Warn("outbox: records dropped by a bound (totals since the database was created)",
		DropMaxBytes, drops[DropMaxBytes], DropMaxAge, drops[DropMaxAge], DropRejected, drops[DropRejected],
		"max_bytes", s.cfg.MaxBytes, "max_age", s.cfg.MaxAge)
}

// expire deletes pending records older than MaxAge, walking from the oldest
// seq and stopping at the first younger record (record times follow seqs
// closely; a stray older record behind a younger one waits its turn).
func (s *Store) expire(ctx context.Context, b *batch) error {
	cutoff := b.now.Add(-s.cfg.MaxAge).UnixMilli()
	var expired int64
	for {
		var cut, n, freed int64
		stopped := false
		rows := 0
		err := scanAll(ctx, s.wc, "SELECT seq, time, length(payload) FROM records ORDER BY seq LIMIT 512", func(r *sql.Rows) error {
			var seq, t, l int64
			if err := r.Scan(&seq, &t, &l); err != nil {
				return err
			}
			rows++
			if stopped || t >= cutoff {
				stopped = true
				return nil
			}
			cut = seq
			n++
			freed += l + RecordOverhead
			return nil
		})
		if err != nil {
			return err
		}
		if n > 0 {
			if _, err := s.wc.ExecContext(ctx, "DELETE FROM records WHERE seq <= ?", cut); err != nil {
				return err
			}
			b.st.depth -= n
			b.st.bytes -= freed
			expired += n
		}
		if stopped || rows < 512 {
			break
		}
	}
	if expired > 0 {
		b.st.drops[DropMaxAge] += expired
		b.drops, b.deleted = true, true
		s.warnDrops(b.now, b.st.drops)
	}
	return nil
}

// prune keeps the invocation records and the log rings within bounds.
// Deleting in slices of an eighth of the bound keeps it off the hot path.
func (s *Store) prune(ctx context.Context, b *batch, retention bool) error {
	maxInv := int64(s.cfg.MaxInvocations)
	if b.st.invCount > maxInv+maxInv/8 {
		res, err := s.wc.ExecContext(ctx, "DELETE FROM invocations WHERE id <= ?", b.st.lastInv-maxInv)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.invCount -= k
	}
	if retention {
		cutoff := b.now.Add(-s.cfg.InvocationMaxAge).UnixMilli()
		res, err := s.wc.ExecContext(ctx, "DELETE FROM invocations WHERE time < ?", cutoff)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.invCount -= k
		var gone int64
		if err := s.wc.QueryRowContext(ctx, "SELECT coalesce(sum(count), 0) FROM usage_minutes WHERE minute < ?", floorDiv(cutoff, 60000)).Scan(&gone); err != nil {
			return err
		}
		if gone > 0 {
			if _, err := s.wc.ExecContext(ctx, "DELETE FROM usage_minutes WHERE minute < ?", floorDiv(cutoff, 60000)); err != nil {
				return err
			}
			b.st.usageCount -= gone
		}
	}
	maxLog := int64(s.cfg.MaxLogLines)
	for fn, n := range b.st.logCount {
		if n <= maxLog+maxLog/8 {
			continue
		}
		res, err := s.wc.ExecContext(ctx, "DELETE FROM logs WHERE fn = ? AND id <= (SELECT id FROM logs WHERE fn = ? ORDER BY id DESC LIMIT 1 OFFSET ?)", fn, fn, maxLog)
		if err != nil {
			return err
		}
		k, _ := res.RowsAffected()
		b.st.logCount[fn] = n - k
	}
	return nil
}

// minStreamsGC is how many streams the store keeps before it looks for
// unused ones to delete.
const minStreamsGC = 4096

// pruneStreams deletes the streams no pending record uses, once there are
// more than twice as many as after the last pruning (and at least
// minStreamsGC): topics with ever-new subjects would otherwise grow the
// table without end. It scans the records, so it runs only in the idle
// maintenance batch and rarely.
func (s *Store) pruneStreams(ctx context.Context, b *batch) error {
	if !s.streamsOver() {
		return nil
	}
	if _, err := s.wc.ExecContext(ctx, "DELETE FROM streams WHERE id NOT IN (SELECT DISTINCT stream FROM records)"); err != nil {
		return err
	}
	b.gcStreams = true
	return nil
}

// streamsOver says whether the idle tick should look for unused streams:
// the table doubled since the last pruning, or records were deleted since
// then (a pruning while they were all pending found nothing to delete).
func (s *Store) streamsOver() bool {
	n := len(s.streams)
	return n > max(minStreamsGC, 2*s.liveStreams) || (s.deletedSinceGC && n > minStreamsGC)
}
