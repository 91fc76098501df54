package outbox

import (
	"context"
)

// maxVacuumBytes bounds the live data a reclaiming VACUUM copies (through a
// temporary database in memory, temp_store=MEMORY).
const maxVacuumBytes = 16 << 20

// reclaim truncates the WAL and, when more than a quarter of the file (and
// at least 256 pages) is free pages, returns them to the file system:
// databases created with auto_vacuum=INCREMENTAL (schema v1 and v2) by
// incremental_vacuum, newer ones by VACUUM, but only while the live data is
// at most maxVacuumBytes (the typical case: a backlog built up during an
// outage has drained). Under a steady load free pages are reused by new
// records instead, which writes less than moving pages around.
func (s *Store) reclaim() {
	ctx := context.Background()
	if _, err := s.wc.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		s.log.Warn("outbox: checkpoint failed", "err", err)
	}
	var free, total, pageSize, autoVacuum int64
	for _, x := range []struct {
		q string
		v *int64
	}{{"PRAGMA freelist_count", &free}, {"PRAGMA page_count", &total}, {"PRAGMA page_size", &pageSize}, {"PRAGMA auto_vacuum", &autoVacuum}} {
		if err := s.wc.QueryRowContext(ctx, x.q).Scan(x.v); err != nil {
			s.log.Warn("outbox: reclaim", "pragma", x.q, "err", err)
			return
		}
	}
	if free < 256 || free*4 <= total {
		return
	}
	q := "PRAGMA incremental_vacuum"
	if autoVacuum != 2 {
		if (total-free)*pageSize > maxVacuumBytes {
			return // a VACUUM would copy too much; new records reuse the pages
		}
		q = "VACUUM"
	}
	if _, err := s.wc.ExecContext(ctx, q); err != nil {
		s.log.Warn("outbox: reclaiming free pages failed", "statement", q, "err", err)
		return
	}
	if _, err := s.wc.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		s.log.Warn("outbox: checkpoint failed", "err", err)
	}
	s.log.Info("outbox: free pages returned to the file system", "pages", free, "by", q)
}
