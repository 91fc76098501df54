package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/edgefn/edgefn"
)

func millis(t, now time.Time) int64 {
	if t.IsZero() {
		t = now
	}
	return t.UnixMilli()
}

func (s *Store) applyInvocation(ctx context.Context, b *batch, r *request) error {
	inv := r.inv
	fn, err := s.nameID(ctx, b, inv.Function)
	if err != nil {
		return err
	}
	src, err := s.nameID(ctx, b, string(inv.Source))
	if err != nil {
		return err
	}
	t := millis(inv.Time, b.now)
	var stream int64 // of the emitted records, made on the first one
	var fail *edgefn.Failure
	var seqs []uint64
	if inv.Err == nil {
		kvAfter, kvErr := s.checkKV(ctx, b, fn, inv)
		if kvErr != nil && !errors.As(kvErr, &fail) {
			return kvErr
		}
		emits, need := 0, int64(0)
		for i := range inv.Effects {
			if e := &inv.Effects[i]; e.Kind == edgefn.EffectEmit {
				emits++
				need += int64(len(e.Payload)) + RecordOverhead
			}
		}
		if fail == nil && s.cfg.OnFull == RejectNew && emits > 0 && b.st.bytes+need > int64(s.cfg.MaxBytes) {
			fail = edgefn.Fail(edgefn.ReasonOutboxFull, "outbox full: %d of %d bytes pending (max_bytes, on_full: reject_new), %d records need %d more",
				b.st.bytes, int64(s.cfg.MaxBytes), emits, need)
			b.st.drops[DropRejected] += int64(emits)
			b.drops = true
		}
		if fail == nil {
			if kvAfter != nil {
				b.st.kv[fn] = *kvAfter
			}
			for i := range inv.Effects {
				e := &inv.Effects[i]
				switch e.Kind {
				case edgefn.EffectEmit:
					b.st.lastSeq++
					seq := b.st.lastSeq
					payload := e.Payload
					if payload == nil {
						payload = []byte{}
					}
					if stream == 0 {
						if stream, err = s.streamID(ctx, b, streamKey{fn, int64(inv.Version), src, inv.Subject}); err != nil {
							return err
						}
					}
					b.recRows = append(b.recRows, int64(seq), stream, t, payload)
					seqs = append(seqs, seq)
					b.st.depth++
					b.st.bytes += int64(len(e.Payload)) + RecordOverhead
					b.added = true
				case edgefn.EffectKVSet:
					v := e.Payload
					if v == nil {
						v = []byte{}
					}
					if _, err := s.stmts.kvSet.ExecContext(ctx, fn, e.Key, v); err != nil {
						return err
					}
				case edgefn.EffectKVDelete:
					if _, err := s.stmts.kvDel.ExecContext(ctx, fn, e.Key); err != nil {
						return err
					}
				}
			}
		}
	}
	// NULL for a success; the message of a failure is its detail, without
	// the reason (a column of its own): "edgefn_handle returned 1", not
	// "exit: edgefn_handle returned 1".
	var reason, message any
	switch {
	case fail != nil:
		reason, message = string(fail.Reason), fail.Detail()
	case inv.Err != nil:
		var f *edgefn.Failure
		reason, message = string(edgefn.ReasonInternal), inv.Err.Error()
		if errors.As(inv.Err, &f) {
			reason = string(f.Reason)
			if f == inv.Err {
				message = f.Detail()
			}
		}
	}
	if reason == nil {
		k := usageKey{fn, floorDiv(t, 60000)}
		a := b.usage[k]
		if a == nil {
			if b.usage == nil {
				b.usage = map[usageKey]*usageAgg{}
			}
			a = &usageAgg{}
			b.usage[k] = a
		}
		a.add(inv.Duration, inv.MemoryCap, inv.Cold)
	} else {
		b.st.lastInv++
		b.st.invCount++
		b.invRows = append(b.invRows, b.st.lastInv, fn, inv.Version, inv.EventID, src, inv.Subject, t,
			reason, message, inv.Duration.Microseconds(), int64(inv.MemoryBytes), inv.MemoryCap, inv.Cold, len(seqs))
	}
	for i := range inv.Logs {
		l := &inv.Logs[i]
		b.st.lastLog++
		if _, err := s.stmts.insLog.ExecContext(ctx, b.st.lastLog, fn, millis(l.Time, b.now), int(l.Level), l.Message, inv.EventID, nil); err != nil {
			return err
		}
		b.st.logCount[fn]++
	}
	if reason != nil {
		b.st.lastLog++
		if _, err := s.stmts.insLog.ExecContext(ctx, b.st.lastLog, fn, b.now.UnixMilli(), int(edgefn.LogError), message, inv.EventID, reason); err != nil {
			return err
		}
		b.st.logCount[fn]++
	}
	r.out = seqs
	if fail != nil {
		r.err = fail
	}
	return nil
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if a%b != 0 && a < 0 {
		q--
	}
	return q
}

// writeUsage adds the sums of successful invocations to their
// usage_minutes rows.
func (s *Store) writeUsage(ctx context.Context, b *batch, usage map[usageKey]*usageAgg) error {
	for k, add := range usage {
		var a usageAgg
		var hist []byte
		err := s.stmts.usageGet.QueryRowContext(ctx, k.fn, k.minute).Scan(&a.count, &a.cold, &a.durUS, &a.maxUS, &a.gbs, &hist)
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return err
		default:
			if a.hist, err = decodeHist(hist); err != nil {
				return fmt.Errorf("function %d minute %d: %w", k.fn, k.minute, err)
			}
		}
		a.merge(add)
		b.st.usageCount += add.count
		if _, err := s.stmts.usagePut.ExecContext(ctx, k.fn, k.minute, a.count, a.cold, a.durUS, a.maxUS, a.gbs, encodeHist(a.hist)); err != nil {
			return err
		}
	}
	return nil
}

// checkKV returns the function's kv usage after inv's writes, nil when inv
// writes no key. Writes past the limits refuse the invocation: the error is
// then a *edgefn.Failure (ReasonOutputLimit). Any other error is a database
// error, and the batch fails.
func (s *Store) checkKV(ctx context.Context, b *batch, fn int64, inv *Invocation) (*kvUsage, error) {
	u := b.st.kv[fn]
	touched := false
	var sizes map[string]int64 // key -> key+value bytes after earlier writes of inv, -1 absent
	for i := range inv.Effects {
		e := &inv.Effects[i]
		if e.Kind != edgefn.EffectKVSet && e.Kind != edgefn.EffectKVDelete {
			continue
		}
		touched = true
		if e.Key == "" || len(e.Key) > s.cfg.MaxKeyLen {
			return nil, edgefn.Fail(edgefn.ReasonOutputLimit, "kv key of %d bytes: must be 1 to %d bytes (max_key_len)", len(e.Key), s.cfg.MaxKeyLen)
		}
		if sizes == nil {
			sizes = map[string]int64{}
		}
		old, ok := sizes[e.Key]
		if !ok {
			var n sql.NullInt64
			err := s.stmts.kvLen.QueryRowContext(ctx, fn, e.Key).Scan(&n)
			switch {
			case errors.Is(err, sql.ErrNoRows):
				old = -1
			case err != nil:
				return nil, err
			default:
				old = n.Int64
			}
		}
		if e.Kind == edgefn.EffectKVSet {
			n := int64(len(e.Key) + len(e.Payload))
			if old < 0 {
				u.keys++
				u.bytes += n
			} else {
				u.bytes += n - old
			}
			sizes[e.Key] = n
		} else {
			if old >= 0 {
				u.keys--
				u.bytes -= old
			}
			sizes[e.Key] = -1
		}
	}
	if u.keys > int64(s.cfg.MaxKVKeys) || u.bytes > int64(s.cfg.MaxKVBytes) {
		return nil, edgefn.Fail(edgefn.ReasonOutputLimit, "kv store of function %q would hold %d keys and %d bytes, limits are %d keys (max_kv_keys) and %d bytes (max_kv_bytes)",
			inv.Function, u.keys, u.bytes, s.cfg.MaxKVKeys, int64(s.cfg.MaxKVBytes))
	}
	if !touched {
		return nil, nil
	}
	return &u, nil
}
