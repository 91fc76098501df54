package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/edgefn/edgefn"
)

// Pending returns the oldest pending records with Seq greater than after,
// in Seq order: at most max records and at most maxBytes of payload, but at
// least one record when any is pending, so one oversized record cannot
// stall the queue. Nothing pending gives an empty slice. It reads committed
// data only and never blocks commits.
func (s *Store) Pending(ctx context.Context, after uint64, max, maxBytes int) ([]edgefn.Record, error) {
	return s.pending(ctx, "", nil, after, max, maxBytes)
}

// pending is Pending with an extra SQL condition on r (records) and st
// (streams), ANDed to the seq bound, and its arguments.
func (s *Store) pending(ctx context.Context, where string, args []any, after uint64, max, maxBytes int) ([]edgefn.Record, error) {
	if max <= 0 {
		return []edgefn.Record{}, nil
	}
	out := []edgefn.Record{}
	size := 0
	q := `SELECT r.seq, f.name, st.version, src.name, st.subject, r.time, r.payload
		FROM records r JOIN streams st ON st.id = r.stream JOIN names f ON f.id = st.fn JOIN names src ON src.id = st.source
		WHERE r.seq > ?` + where + ` ORDER BY r.seq LIMIT ?`
	err := scanAll(ctx, s.rdb, q, func(rows *sql.Rows) error {
		if size < 0 {
			return nil // budget reached, skip the rest
		}
		var rec edgefn.Record
		var seq, t int64
		var src string
		if err := rows.Scan(&seq, &rec.Function, &rec.Version, &src, &rec.Subject, &t, &rec.Payload); err != nil {
			return err
		}
		if len(out) > 0 && size+len(rec.Payload) > maxBytes {
			size = -1
			return nil
		}
		size += len(rec.Payload)
		rec.Seq, rec.Gateway, rec.Source, rec.Time = uint64(seq), s.cfg.Gateway, edgefn.Source(src), time.UnixMilli(t)
		out = append(out, rec)
		return nil
	}, append(append([]any{int64(after)}, args...), max)...)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: pending: %w", s.cfg.Path, err)
	}
	return out, nil
}

// Confirm deletes records the cloud accepted. Unknown or already confirmed
// seqs are ignored. It returns once the deletion is committed, with a
// *edgefn.Failure (ReasonStorage) if it could not be.
func (s *Store) Confirm(ctx context.Context, seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.do(ctx, &request{kind: opConfirm, seqs: seqs})
}

// DeadLetter moves records the cloud refused for good out of the pending
// queue into the dead letters, with reason, so the queue moves on. They stay
// listed by DeadLetters and counted in Stats until an operator acts; past
// MaxDeadLetters the oldest are deleted and counted as drops.
func (s *Store) DeadLetter(ctx context.Context, seqs []uint64, reason string) error {
	if len(seqs) == 0 {
		return nil
	}
	return s.do(ctx, &request{kind: opDeadLetter, seqs: seqs, reason: reason})
}

// DeadLetter is a record the cloud refused for good.
type DeadLetter struct {
	edgefn.Record
	Reason string
	At     time.Time
}

// DeadLetters lists up to limit dead letters, oldest first.
func (s *Store) DeadLetters(ctx context.Context, limit int) ([]DeadLetter, error) {
	out := []DeadLetter{}
	err := scanAll(ctx, s.rdb, `SELECT d.seq, f.name, d.version, src.name, d.subject, d.time, d.payload, d.reason, d.at
		FROM dead_letters d JOIN names f ON f.id = d.fn JOIN names src ON src.id = d.source
		ORDER BY d.seq LIMIT ?`, func(rows *sql.Rows) error {
		var d DeadLetter
		var seq, t, at int64
		var src string
		if err := rows.Scan(&seq, &d.Function, &d.Version, &src, &d.Subject, &t, &d.Payload, &d.Reason, &at); err != nil {
			return err
		}
		d.Seq, d.Gateway, d.Source, d.Time, d.At = uint64(seq), s.cfg.Gateway, edgefn.Source(src), time.UnixMilli(t), time.UnixMilli(at)
		out = append(out, d)
		return nil
	}, limit)
	if err != nil {
		return nil, fmt.Errorf("outbox %s: dead letters: %w", s.cfg.Path, err)
	}
	return out, nil
}
