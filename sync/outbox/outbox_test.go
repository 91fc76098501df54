package outbox

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/sync/uplink"
)

var _ uplink.Source = (*Store)(nil)

func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// reopen closes s, failing the test if Close does, and opens the outbox
// again with cfg: a clean restart.
func reopen(t testing.TB, s *Store, cfg Config) *Store {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return openStore(t, cfg)
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	if cfg.Path == "" {
		cfg.Path = filepath.Join(t.TempDir(), "outbox.db")
	}
	if cfg.Gateway == "" {
		cfg.Gateway = "gw1"
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func emitInv(fn string, payloads ...string) *Invocation {
	inv := &Invocation{Function: fn, Version: 3, EventID: "ev-" + fn, Source: edgefn.SourceMQTT, Subject: "sensors/a/t",
		Time: time.Now(), Duration: 2 * time.Millisecond, MemoryBytes: 1 << 20, MemoryCap: 8 << 20}
	for _, p := range payloads {
		inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectEmit, Payload: []byte(p)})
	}
	return inv
}

func mustCommit(t testing.TB, s *Store, inv *Invocation) []uint64 {
	t.Helper()
	seqs, err := s.Commit(context.Background(), inv)
	if err != nil {
		t.Fatalf("commit: %v", err)
	}
	return seqs
}

func stats(t testing.TB, s *Store) Stats {
	t.Helper()
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func TestCommitPendingConfirm(t *testing.T) {
	s := openStore(t, Config{})
	ctx := context.Background()
	seqs := mustCommit(t, s, emitInv("temp", "a", "bb"))
	if !slices.Equal(seqs, []uint64{1, 2}) {
		t.Fatalf("seqs = %v, want [1 2]", seqs)
	}
	select {
	case <-s.Notify():
	default:
		t.Fatal("no notification after a commit with records")
	}
	recs, err := s.Pending(ctx, 0, 10, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || string(recs[0].Payload) != "a" || string(recs[1].Payload) != "bb" {
		t.Fatalf("pending = %+v", recs)
	}
	r := recs[0]
	if r.ID() != "gw1:1" || r.Function != "temp" || r.Version != 3 || r.Source != edgefn.SourceMQTT || r.Subject != "sensors/a/t" || r.Time.IsZero() {
		t.Errorf("record = %+v", r)
	}
	// maxBytes stops after the first record, but one always comes.
	if recs, _ := s.Pending(ctx, 0, 10, 1); len(recs) != 1 {
		t.Errorf("pending with maxBytes 1 = %d records, want 1", len(recs))
	}
	if recs, _ := s.Pending(ctx, 1, 10, 1<<20); len(recs) != 1 || recs[0].Seq != 2 {
		t.Errorf("pending after 1 = %+v", recs)
	}
	if err := s.Confirm(ctx, []uint64{1, 99}); err != nil {
		t.Fatal(err)
	}
	if err := s.Confirm(ctx, []uint64{1}); err != nil {
		t.Fatalf("confirming twice: %v", err)
	}
	st := stats(t, s)
	if st.Depth != 1 || st.Bytes != 2+RecordOverhead || st.LastSeq != 2 || st.Functions["temp"].Depth != 1 {
		t.Errorf("stats = %+v", st)
	}
	if err := s.DeadLetter(ctx, []uint64{2}, "400: bad record"); err != nil {
		t.Fatal(err)
	}
	dl, err := s.DeadLetters(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(dl) != 1 || dl[0].Seq != 2 || dl[0].Reason != "400: bad record" || string(dl[0].Payload) != "bb" {
		t.Fatalf("dead letters = %+v", dl)
	}
	if st := stats(t, s); st.Depth != 0 || st.Bytes != 0 || st.DeadLetters != 1 {
		t.Errorf("stats after dead letter = %+v", st)
	}
	if recs, _ := s.Pending(ctx, 0, 10, 1<<20); len(recs) != 0 {
		t.Errorf("pending after all gone = %+v", recs)
	}
}

// Many goroutines commit at once: every seq is unique, each invocation's
// seqs are increasing, and every returned seq is in the database.
func TestGroupCommitConcurrent(t *testing.T) {
	for _, d := range []Durability{DurabilityFull, DurabilityNormal} {
		t.Run(string(d), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "outbox.db")
			s := openStore(t, Config{Path: path, Durability: d})
			const workers, each = 16, 50
			var mu sync.Mutex
			var all []uint64
			var wg sync.WaitGroup
			for w := range workers {
				wg.Go(func() {
					for i := range each {
						seqs, err := s.Commit(context.Background(), emitInv(fmt.Sprintf("f%d", w%4), fmt.Sprint(w, i), "x"))
						if err != nil {
							t.Error(err)
							return
						}
						if len(seqs) != 2 || seqs[1] != seqs[0]+1 {
							t.Errorf("seqs of one invocation = %v", seqs)
						}
						mu.Lock()
						all = append(all, seqs...)
						mu.Unlock()
					}
				})
			}
			wg.Wait()
			slices.Sort(all)
			if len(all) != workers*each*2 || len(slices.Compact(slices.Clone(all))) != len(all) {
				t.Fatalf("%d seqs, %d unique", len(all), len(slices.Compact(slices.Clone(all))))
			}
			s2 := reopen(t, s, Config{Path: path})
			recs, err := s2.Pending(context.Background(), 0, 1<<20, 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			got := make([]uint64, len(recs))
			for i, r := range recs {
				got[i] = r.Seq
			}
			if !slices.Equal(got, all) {
				t.Fatalf("reopened store has %d records, committed %d", len(got), len(all))
			}
			if st := stats(t, s2); st.Invocations != workers*each || st.LastSeq != all[len(all)-1] {
				t.Errorf("stats = %+v", st)
			}
		})
	}
}

func TestSeqNeverReused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	ctx := context.Background()
	seqs := mustCommit(t, s, emitInv("f", "1", "2", "3"))
	if err := s.Confirm(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, Config{Path: path})
	if got := mustCommit(t, s, emitInv("f", "4")); !slices.Equal(got, []uint64{4}) {
		t.Fatalf("after deleting all rows and reopening: seqs = %v, want [4]", got)
	}
	// Dead-lettered records also hold their seqs.
	if err := s.DeadLetter(ctx, []uint64{4}, "gone"); err != nil {
		t.Fatal(err)
	}
	s = reopen(t, s, Config{Path: path})
	if got := mustCommit(t, s, emitInv("f", "5")); !slices.Equal(got, []uint64{5}) {
		t.Fatalf("seqs = %v, want [5]", got)
	}
}

func TestDropOldest(t *testing.T) {
	// Each record is 10 bytes + RecordOverhead; the budget holds 5.
	per := int64(10 + RecordOverhead)
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path, MaxBytes: edgefn.Size(5 * per), OnFull: DropOldest})
	for i := range 8 {
		mustCommit(t, s, emitInv("f", fmt.Sprintf("%010d", i)))
	}
	st := stats(t, s)
	if st.Depth != 5 || st.Bytes != 5*per || st.Drops[DropMaxBytes] != 3 || st.Drops[DropRejected] != 0 {
		t.Fatalf("stats = %+v", st)
	}
	recs, _ := s.Pending(context.Background(), 0, 100, 1<<20)
	if len(recs) != 5 || recs[0].Seq != 4 || recs[4].Seq != 8 {
		t.Fatalf("pending = %d records from %d", len(recs), recs[0].Seq)
	}
	// Counters survive a restart.
	s = reopen(t, s, Config{Path: path, MaxBytes: edgefn.Size(5 * per)})
	if st := stats(t, s); st.Drops[DropMaxBytes] != 3 || st.Depth != 5 || st.Bytes != 5*per {
		t.Fatalf("after reopen: %+v", st)
	}
	// One invocation bigger than the whole budget keeps only what fits.
	mustCommit(t, s, emitInv("f", "0123456789", "0123456789", "0123456789", "0123456789", "0123456789", "0123456789", "0123456789"))
	if st := stats(t, s); st.Drops[DropMaxBytes] != 3+5+2 || st.Depth != 5 {
		t.Fatalf("after a huge invocation: %+v", st)
	}
}

func TestRejectNew(t *testing.T) {
	per := int64(10 + RecordOverhead)
	s := openStore(t, Config{MaxBytes: edgefn.Size(3 * per), OnFull: RejectNew})
	ctx := context.Background()
	mustCommit(t, s, emitInv("f", "0123456789", "0123456789"))
	// Two more records would not fit: the whole invocation is refused.
	inv := emitInv("f", "0123456789", "0123456789")
	inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectKVSet, Key: "k", Payload: []byte("v")})
	seqs, err := s.Commit(ctx, inv)
	var f *edgefn.Failure
	if !errors.As(err, &f) || f.Reason != edgefn.ReasonOutboxFull || seqs != nil {
		t.Fatalf("commit over budget: seqs %v, err %v; want ReasonOutboxFull", seqs, err)
	}
	if _, ok, _ := s.KVGet(ctx, "f", "k"); ok {
		t.Error("kv write of a rejected invocation was stored")
	}
	// One still fits.
	mustCommit(t, s, emitInv("f", "0123456789"))
	if _, err := s.Commit(ctx, emitInv("f", "x")); !errors.As(err, &f) || f.Reason != edgefn.ReasonOutboxFull {
		t.Fatalf("err = %v", err)
	}
	// An invocation without records is not refused.
	mustCommit(t, s, emitInv("f"))
	st := stats(t, s)
	if st.Depth != 3 || st.Drops[DropRejected] != 3 || st.Drops[DropMaxBytes] != 0 {
		t.Fatalf("stats = %+v", st)
	}
	logs, err := s.Logs(ctx, "f", time.Time{}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(logs) != 2 || logs[0].Reason != edgefn.ReasonOutboxFull || !strings.HasPrefix(logs[0].Message, "outbox full: ") {
		t.Fatalf("failure records in the log ring = %+v", logs)
	}
	u, err := s.Usage(ctx, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].Invocations != 5 || u[0].ErrorsByReason[edgefn.ReasonOutboxFull] != 2 {
		t.Fatalf("usage = %+v", u)
	}
	// Confirming makes room again.
	if err := s.Confirm(ctx, []uint64{1, 2}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, emitInv("f", "0123456789", "0123456789"))
}

func TestMaxAge(t *testing.T) {
	s := openStore(t, Config{MaxAge: time.Hour})
	old := emitInv("f", "old1", "old2")
	old.Time = time.Now().Add(-2 * time.Hour)
	mustCommit(t, s, old)
	// Expired records go in the same commit that finds them.
	st := stats(t, s)
	if st.Depth != 0 || st.Drops[DropMaxAge] != 2 {
		t.Fatalf("stats = %+v", st)
	}
	mustCommit(t, s, emitInv("f", "new"))
	if st := stats(t, s); st.Depth != 1 || st.Drops[DropMaxAge] != 2 || st.OldestAge > time.Minute {
		t.Fatalf("stats = %+v", st)
	}
}

// Records expire while the store is idle, too.
func TestMaxAgeIdle(t *testing.T) {
	s := openStore(t, Config{MaxAge: 200 * time.Millisecond})
	mustCommit(t, s, emitInv("f", "a", "b", "c"))
	deadline := time.Now().Add(10 * time.Second)
	for stats(t, s).Drops[DropMaxAge] != 3 {
		if time.Now().After(deadline) {
			t.Fatalf("records not expired: %+v", stats(t, s))
		}
		time.Sleep(20 * time.Millisecond) // polling a condition with a deadline
	}
	if st := stats(t, s); st.Depth != 0 || st.Bytes != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestKV(t *testing.T) {
	s := openStore(t, Config{MaxKVKeys: 3, MaxKVBytes: 100})
	ctx := context.Background()
	kv := func(inv *Invocation, ops ...string) *Invocation {
		for _, op := range ops {
			k, v, set := strings.Cut(op, "=")
			if set {
				inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectKVSet, Key: k, Payload: []byte(v)})
			} else {
				inv.Effects = append(inv.Effects, edgefn.Effect{Kind: edgefn.EffectKVDelete, Key: k})
			}
		}
		return inv
	}
	get := func(fn, k string) string {
		t.Helper()
		v, ok, err := s.KVGet(ctx, fn, k)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return "<none>"
		}
		return string(v)
	}
	// Records and kv writes of one invocation land together.
	mustCommit(t, s, kv(emitInv("f", "rec"), "a=1", "b=2", "a=3"))
	if get("f", "a") != "3" || get("f", "b") != "2" || get("g", "a") != "<none>" || stats(t, s).Depth != 1 {
		t.Fatalf("a=%s b=%s", get("f", "a"), get("f", "b"))
	}
	mustCommit(t, s, kv(emitInv("f"), "b", "c=", "d=4"))
	if get("f", "b") != "<none>" || get("f", "c") != "" || get("f", "d") != "4" {
		t.Fatalf("b=%s c=%q d=%s", get("f", "b"), get("f", "c"), get("f", "d"))
	}
	// A fourth key is refused, and nothing of that invocation is stored.
	_, err := s.Commit(ctx, kv(emitInv("f", "lost"), "a=9", "e=5"))
	var f *edgefn.Failure
	if !errors.As(err, &f) || f.Reason != edgefn.ReasonOutputLimit || !strings.Contains(f.Message, "max_kv_keys") {
		t.Fatalf("err = %v, want an output_limit failure naming max_kv_keys", err)
	}
	if get("f", "a") != "3" || get("f", "e") != "<none>" || stats(t, s).Depth != 1 {
		t.Fatal("a refused invocation left effects behind")
	}
	// Replacing a key within the byte budget is fine; passing it is not.
	mustCommit(t, s, kv(emitInv("f"), "a="+strings.Repeat("x", 90)))
	if _, err := s.Commit(ctx, kv(emitInv("f"), "d="+strings.Repeat("x", 20))); !errors.As(err, &f) || !strings.Contains(f.Message, "max_kv_bytes") {
		t.Fatalf("err = %v, want max_kv_bytes", err)
	}
	// Another function has its own budget; a failed invocation writes nothing.
	failed := kv(emitInv("g", "r"), "a=1")
	failed.Err = edgefn.Fail(edgefn.ReasonTrap, "unreachable")
	if seqs, err := s.Commit(ctx, failed); err != nil || seqs != nil {
		t.Fatalf("failed invocation: %v %v", seqs, err)
	}
	if get("g", "a") != "<none>" {
		t.Fatal("kv write of a failed invocation was stored")
	}
	// Same-batch visibility: concurrent invocations on one key all apply in order.
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() { mustCommit(t, s, kv(emitInv("h"), fmt.Sprintf("k%d=%d", i%2, i))) })
	}
	wg.Wait()
	s.mu.Lock()
	u := s.seen.kv[s.names["h"]]
	s.mu.Unlock()
	if u.keys != 2 {
		t.Fatalf("kv usage of h = %+v, want 2 keys", u)
	}
	if _, err := s.Commit(ctx, kv(emitInv("f"), strings.Repeat("k", 300)+"=1")); !errors.As(err, &f) || !strings.Contains(f.Message, "max_key_len") {
		t.Fatalf("err = %v, want max_key_len", err)
	}
}

func TestLogsAndUsage(t *testing.T) {
	s := openStore(t, Config{MaxLogLines: 8})
	ctx := context.Background()
	start := time.Now().Add(-time.Second)
	for i := range 30 {
		inv := emitInv("f", "r")
		inv.Duration = time.Duration(i+1) * time.Millisecond
		inv.MemoryCap = int64(edgefn.GiB)
		inv.Cold = i == 0
		inv.Logs = []edgefn.LogLine{{Time: time.Now(), Level: edgefn.LogInfo, Message: fmt.Sprintf("line %d", i)}}
		if i%10 == 9 {
			inv.Err = edgefn.Fail(edgefn.ReasonTimeout, "deadline 50ms")
		}
		mustCommit(t, s, inv)
	}
	logs, err := s.Logs(ctx, "f", start, 100)
	if err != nil {
		t.Fatal(err)
	}
	// The ring keeps between MaxLogLines and 9/8 of it.
	if len(logs) < 8 || len(logs) > 9 || logs[len(logs)-1].Reason != edgefn.ReasonTimeout || logs[len(logs)-2].Message != "line 29" {
		t.Fatalf("logs = %+v", logs)
	}
	// The failure line holds the message without its reason, which is a
	// field of its own ("deadline 50ms", not "timeout: deadline 50ms").
	if m := logs[len(logs)-1].Message; m != "deadline 50ms" {
		t.Errorf("failure log message = %q, want %q", m, "deadline 50ms")
	}
	if logs, _ := s.Logs(ctx, "f", start, 2); len(logs) != 2 || logs[1].Reason != edgefn.ReasonTimeout {
		t.Fatalf("last 2 logs = %+v", logs)
	}
	u, err := s.Usage(ctx, start)
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 {
		t.Fatalf("usage = %+v", u)
	}
	got := u[0]
	if got.Invocations != 30 || got.Errors != 3 || got.ErrorsByReason[edgefn.ReasonTimeout] != 3 || got.Cold != 1 || got.Warm != 29 ||
		got.TotalDuration != 465*time.Millisecond || got.P99Duration != 30*time.Millisecond || got.GBSeconds < 0.4649 || got.GBSeconds > 0.4651 {
		t.Fatalf("usage = %+v", got)
	}
	if u, _ := s.Usage(ctx, time.Now().Add(time.Hour)); len(u) != 0 {
		t.Fatalf("usage of the future = %+v", u)
	}
}

// MaxInvocations bounds the failure records; successful invocations are
// summed per minute and bounded by age only.
func TestInvocationRetention(t *testing.T) {
	s := openStore(t, Config{MaxInvocations: 16})
	for range 40 {
		inv := emitInv("f")
		inv.Err = edgefn.Fail(edgefn.ReasonTrap, "unreachable")
		mustCommit(t, s, inv)
	}
	if n := stats(t, s).Invocations; n < 16 || n > 18 {
		t.Fatalf("kept %d invocation records, want 16..18", n)
	}
	for range 40 {
		mustCommit(t, s, emitInv("f"))
	}
	if n := stats(t, s).Invocations; n < 56 || n > 58 {
		t.Fatalf("%d invocations on record, want 16..18 failures and 40 successes", n)
	}
}

func TestCorruptFile(t *testing.T) {
	ctx := context.Background()
	t.Run("garbage", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		if err := os.WriteFile(path, bytes.Repeat([]byte("garbage!"), 1000), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := Open(ctx, Config{Path: path, Gateway: "gw"})
		checkCorrupt(t, err, path)
		moved, err := MoveAside(path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(moved); err != nil {
			t.Fatalf("moved file: %v", err)
		}
		s := openStore(t, Config{Path: path})
		// Seqs of the fresh outbox start above anything the old one can
		// have handed out (here: the time floor, the old file is garbage).
		if seqs := mustCommit(t, s, emitInv("f", "fresh start")); seqs[0] < uint64(time.Now().Add(-time.Hour).UnixMicro()) {
			t.Fatalf("first seq after recovery = %d, want above the time floor", seqs[0])
		}
		if _, err := os.Stat(path + seqFloorSuffix); !os.IsNotExist(err) {
			t.Errorf("seq floor file left behind: %v", err)
		}
	})
	t.Run("readable old file keeps its seqs", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		s := openStore(t, Config{Path: path})
		mustCommit(t, s, emitInv("f", "a", "b"))
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		if hw := readHighWater(path); hw != 2 {
			t.Fatalf("readHighWater = %d, want 2", hw)
		}
		if _, err := MoveAside(path); err != nil {
			t.Fatal(err)
		}
		s = openStore(t, Config{Path: path})
		if seqs := mustCommit(t, s, emitInv("f", "c")); seqs[0] <= 2 {
			t.Fatalf("seq %d reused after recovery", seqs[0])
		}
	})
	t.Run("damaged pages", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		s := openStore(t, Config{Path: path})
		for i := range 200 {
			mustCommit(t, s, emitInv("f", strings.Repeat(fmt.Sprint(i), 300)))
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		// Keep the header, overwrite pages 2.. with garbage.
		f, err := os.OpenFile(path, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(bytes.Repeat([]byte{0xA5}, 64<<10), 4096); err != nil {
			t.Fatal(err)
		}
		f.Close()
		_, err = Open(ctx, Config{Path: path, Gateway: "gw"})
		checkCorrupt(t, err, path)
	})
}

func checkCorrupt(t *testing.T, err error, path string) {
	t.Helper()
	var ce *CorruptError
	if !errors.As(err, &ce) || !errors.Is(err, ErrCorrupt) {
		t.Fatalf("err = %v, want a *CorruptError", err)
	}
	msg := err.Error()
	for _, want := range []string{path, "corrupt", "edgefn outbox recover", ".corrupt-"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
}

// Tests run as root here, and root ignores directory permissions, so a
// chmod 0500 directory would still be writable. The unwritable data dirs
// are: a path under a regular file (ENOTDIR, what a typo in data_dir
// gives), and /proc (read-only for everybody). A chmod'ed directory is
// tried too when not root.
func TestUnwritableDataDir(t *testing.T) {
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "a-file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cases := map[string]string{
		"under a file": filepath.Join(file, "outbox.db"),
		"proc":         "/proc/outbox.db",
	}
	if os.Geteuid() != 0 {
		ro := t.TempDir()
		if err := os.Chmod(ro, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(ro, 0o700) })
		cases["chmod 0500"] = filepath.Join(ro, "outbox.db")
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Open(ctx, Config{Path: path, Gateway: "gw"})
			if err == nil {
				t.Fatal("opened")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "data dir") {
				t.Errorf("error %q does not name the path and the data dir", err)
			}
			t.Log(err)
		})
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := Open(context.Background(), Config{Durability: "fast", OnFull: "panic"})
	for _, want := range []string{"path: missing", "gateway: missing", `durability "fast"`, `on_full "panic"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to mention %q", err, want)
		}
	}
}

// SQLite's max_page_count stands in for a full disk (making a tiny file
// system needs root and a loop device): the commit fails with SQLITE_FULL,
// every invocation of that batch gets ReasonStorage, and commits work again
// once the limit is raised, with no restart.
func TestDiskFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	ctx := context.Background()
	mustCommit(t, s, emitInv("f", "before"))
	var pages int64
	if err := s.execWriter(ctx, func(ctx context.Context, db *sql.Conn) error {
		if err := db.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
			return err
		}
		_, err := db.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 64<<10)
	_, err := s.Commit(ctx, emitInv("f", big))
	var f *edgefn.Failure
	if !errors.As(err, &f) || f.Reason != edgefn.ReasonStorage || !strings.Contains(f.Message, "disk full") || !strings.Contains(f.Message, path) {
		t.Fatalf("err = %v, want ReasonStorage saying disk full and naming %s", err, path)
	}
	st := stats(t, s)
	if st.Depth != 1 || st.LastSeq != 1 {
		t.Fatalf("a failed commit changed the accounting: %+v", st)
	}
	onWriter(t, s, "PRAGMA max_page_count = 1073741823")
	if seqs := mustCommit(t, s, emitInv("f", big)); !slices.Equal(seqs, []uint64{2}) {
		t.Fatalf("after space returned: seqs %v, want [2]", seqs)
	}
	if st := stats(t, s); st.Depth != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestCloseDrainsAndRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path, FlushInterval: 50 * time.Millisecond})
	var wg sync.WaitGroup
	results := make(chan error, 10)
	for range 10 {
		wg.Go(func() {
			_, err := s.Commit(context.Background(), emitInv("f", "x"))
			results <- err
		})
	}
	// Wait until all ten are queued or committed, then close.
	deadline := time.Now().Add(5 * time.Second)
	for len(s.queue) < 10 && stats(t, s).Depth+int64(len(s.queue)) < 10 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(results)
	ok := 0
	for err := range results {
		if err == nil {
			ok++
		} else if !errors.Is(err, ErrClosed) {
			t.Errorf("commit during close: %v", err)
		}
	}
	if _, err := s.Commit(context.Background(), emitInv("f", "x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	s2 := openStore(t, Config{Path: path})
	if d := stats(t, s2).Depth; d != int64(ok) {
		t.Fatalf("%d commits returned ok, %d records stored", ok, d)
	}
}

// TestDeferredInvocations: an invocation with no record and no kv write
// (a publish-only function, a failure) does not wait for a transaction:
// Commit returns while the committer is busy. Readers see it, and a store
// closed with invocations deferred commits them.
func TestDeferredInvocations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	hold, held := make(chan struct{}), make(chan struct{})
	go func() {
		_ = s.execWriter(context.Background(), func(context.Context, *sql.Conn) error {
			close(held)
			<-hold
			return nil
		})
	}()
	<-held // the committer is busy until hold closes
	pub := emitInv("pub")
	pub.Effects = []edgefn.Effect{{Kind: edgefn.EffectPublish, Topic: "a/b", Payload: []byte("x")}}
	for i := 0; i < 3; i++ {
		if seqs := mustCommit(t, s, pub); seqs != nil {
			t.Fatalf("publish-only commit returned seqs %v", seqs)
		}
	}
	failed := emitInv("bad")
	failed.Err = edgefn.Fail(edgefn.ReasonTrap, "boom")
	failed.Logs = []edgefn.LogLine{{Level: edgefn.LogInfo, Message: "before the trap"}}
	mustCommit(t, s, failed)
	close(hold)

	us, err := s.Usage(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int64{}
	for _, u := range us {
		got[u.Function] = u.Invocations
	}
	if got["pub"] != 3 || got["bad"] != 1 {
		t.Errorf("usage %v, want pub 3 and bad 1", got)
	}
	logs, err := s.Logs(context.Background(), "bad", time.Time{}, 10)
	if err != nil || len(logs) != 2 {
		t.Errorf("logs of bad: %v, %v; want its line and its failure record", logs, err)
	}

	mustCommit(t, s, pub)
	s2 := reopen(t, s, Config{Path: path})
	if st := stats(t, s2); st.Invocations != 5 {
		t.Errorf("after close and reopen %d invocations, want 5 (the last deferred one committed by Close)", st.Invocations)
	}
}
