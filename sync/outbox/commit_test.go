package outbox

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// onWriter runs statements on the committer's pinned writer connection,
// between two group commits.
func onWriter(t testing.TB, s *Store, stmts ...string) {
	t.Helper()
	if err := s.execWriter(context.Background(), func(ctx context.Context, c *sql.Conn) error {
		for _, q := range stmts {
			if _, err := c.ExecContext(ctx, q); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}

// wantStorageFailure commits one record, expects the commit to fail with
// ReasonStorage caused by a SQLite error of code want, and checks nothing of
// it is pending.
func wantStorageFailure(t *testing.T, s *Store, want sqlite3.ErrNo, pending []string) {
	t.Helper()
	_, err := s.Commit(context.Background(), emitInv("f", "lost"))
	var f *edgefn.Failure
	var se sqlite3.Error
	if !errors.As(err, &f) || f.Reason != edgefn.ReasonStorage || !errors.As(err, &se) || se.Code != want {
		t.Fatalf("err = %v, want ReasonStorage from SQLite error %v", err, want)
	}
	wantPending(t, s, pending)
}

// wantPending checks the committed records' payloads (read by a reader
// connection) and the in-memory depth.
func wantPending(t *testing.T, s *Store, payloads []string) {
	t.Helper()
	recs, err := s.Pending(context.Background(), 0, 100, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, string(r.Payload))
	}
	if !slices.Equal(got, payloads) {
		t.Fatalf("pending payloads %q, want %q", got, payloads)
	}
	if d := stats(t, s).Depth; d != int64(len(payloads)) {
		t.Fatalf("depth %d, want %d", d, len(payloads))
	}
}

// TestFailedCommitRollsBack: a COMMIT that fails and leaves SQLite's
// transaction open (here a deferred foreign key, checked only at COMMIT,
// violated by a temporary trigger on the writer connection) is rolled
// back: the batch's callers get ReasonStorage, nothing of it is stored,
// and the next batch on the same connection begins and commits.
func TestFailedCommitRollsBack(t *testing.T) {
	s := openStore(t, Config{Path: filepath.Join(t.TempDir(), "outbox.db")})
	mustCommit(t, s, emitInv("f", "before"))
	onWriter(t, s, "PRAGMA foreign_keys = ON",
		"CREATE TEMP TABLE parent (id INTEGER PRIMARY KEY)",
		"CREATE TEMP TABLE child (p INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)",
		"CREATE TEMP TRIGGER orphan AFTER INSERT ON main.records BEGIN INSERT INTO child (p) VALUES (new.seq); END")
	wantStorageFailure(t, s, sqlite3.ErrConstraint, []string{"before"})
	onWriter(t, s, "DROP TRIGGER temp.orphan")
	if seqs := mustCommit(t, s, emitInv("f", "after")); !slices.Equal(seqs, []uint64{2}) {
		t.Fatalf("after the failed commit: seqs %v, want [2]", seqs)
	}
	wantPending(t, s, []string{"before", "after"})
}

// TestBusyCommit: another connection holds the write lock past the busy
// timeout: BEGIN IMMEDIATE fails with SQLITE_BUSY, the batch's callers get
// ReasonStorage, and commits resume once the lock is released.
func TestBusyCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	ctx := context.Background()
	mustCommit(t, s, emitInv("f", "before"))
	onWriter(t, s, "PRAGMA busy_timeout = 20")
	other := sql.OpenDB(connector{dsn: "file:" + path, driver: &sqlite3.SQLiteDriver{}})
	defer other.Close()
	c, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	wantStorageFailure(t, s, sqlite3.ErrBusy, []string{"before"})
	if _, err := c.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, s, emitInv("f", "after"))
	wantPending(t, s, []string{"before", "after"})
}

// TestCommitAsync: invocations queued by one goroutine commit in the order
// it queued them and their callbacks come in that order, after the records
// are readable; a publish-only invocation is answered before CommitAsync
// returns; Close commits and answers what is queued; after Close the
// callback gets ErrClosed at once.
func TestCommitAsync(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path})
	const n = 500
	type answer struct {
		i    int
		seqs []uint64
		err  error
	}
	answers := make(chan answer, n)
	for i := range n {
		s.CommitAsync(context.Background(), emitInv("f", fmt.Sprint(i)), func(seqs []uint64, err error) {
			answers <- answer{i, seqs, err}
		})
	}
	var last uint64
	for want := range n {
		a := <-answers
		if a.err != nil || a.i != want || len(a.seqs) != 1 || a.seqs[0] <= last {
			t.Fatalf("answer %d: %+v (last seq %d), want invocation %d with a higher seq", want, a, last, want)
		}
		last = a.seqs[0]
		if want == 0 {
			// Answered after the commit: a reader sees the record.
			if d := stats(t, s).Depth; d < 1 {
				t.Fatalf("answered, but depth %d", d)
			}
		}
	}

	called := false
	pub := &Invocation{Function: "p", Version: 1, EventID: "ev-p", Source: edgefn.SourceMQTT, Time: time.Now(),
		Effects: []edgefn.Effect{{Kind: edgefn.EffectPublish, Topic: "a/b", Payload: []byte("x")}}}
	s.CommitAsync(context.Background(), pub, func(seqs []uint64, err error) {
		called = err == nil && seqs == nil
	})
	if !called {
		t.Fatal("a publish-only invocation was not answered (nil, nil) before CommitAsync returned")
	}

	// Queued behind a slow batch, then closed: every one is answered
	// before Close returns, and stored if answered without error.
	block := make(chan struct{})
	go func() {
		_ = s.execWriter(context.Background(), func(context.Context, *sql.Conn) error { <-block; return nil })
	}()
	var mu sync.Mutex
	var ok, answered int
	for i := range 20 {
		s.CommitAsync(context.Background(), emitInv("g", fmt.Sprint(i)), func(_ []uint64, err error) {
			mu.Lock()
			defer mu.Unlock()
			answered++
			if err == nil {
				ok++
			}
		})
	}
	close(block)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if answered != 20 || ok != 20 {
		t.Fatalf("after Close: %d of 20 answered, %d without error", answered, ok)
	}
	mu.Unlock()
	var afterClose error
	s.CommitAsync(context.Background(), emitInv("g", "late"), func(_ []uint64, err error) { afterClose = err })
	if !errors.Is(afterClose, ErrClosed) {
		t.Fatalf("CommitAsync after Close: %v, want ErrClosed at once", afterClose)
	}
	if d := stats(t, openStore(t, Config{Path: path})).Depth; d != n+20 {
		t.Fatalf("reopened: %d records, want %d", d, n+20)
	}
}
