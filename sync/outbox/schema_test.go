package outbox

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	sqlite3 "github.com/mattn/go-sqlite3"
)

// The histogram's p99 is within ±6.25% of the exact nearest-rank p99.
func TestHistogramP99(t *testing.T) {
	for _, scale := range []float64{10, 1e3, 1e5, 1e7} {
		var a usageAgg
		exact := make([]int64, 0, 5000)
		for range 5000 {
			us := int64(rand.ExpFloat64() * scale)
			exact = append(exact, us)
			a.add(time.Duration(us)*time.Microsecond, 0, false)
		}
		h, err := decodeHist(encodeHist(a.hist))
		if err != nil {
			t.Fatal(err)
		}
		var d []durCount
		for b, n := range h {
			if histBucket(histMid(b)) != b {
				t.Fatalf("midpoint of bucket %d is in bucket %d", b, histBucket(histMid(b)))
			}
			d = append(d, durCount{min(histMid(b), a.maxUS), n})
		}
		slices.Sort(exact)
		want := exact[(len(exact)*99+99)/100-1]
		if got := p99(d); float64(got) < float64(want)*0.9375-1 || float64(got) > float64(want)*1.0625+1 {
			t.Errorf("scale %v: p99 from the histogram %d µs, exact %d µs", scale, got, want)
		}
	}
}

// A version 1 database keeps its successful invocation rows through the
// migration to per-minute sums: Usage counts old rows and new sums alike.
func TestMigrateInvocationsToUsageMinutes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	db := sql.OpenDB(connector{dsn: "file:" + path, driver: &sqlite3.SQLiteDriver{}})
	now := time.Now().UnixMilli()
	for _, q := range []string{migrations[0], "PRAGMA user_version = 1",
		"INSERT INTO names (id, name) VALUES (1, 'f'), (2, 'mqtt')",
		"INSERT INTO invocations VALUES (1, 1, 1, 'e1', 2, 's', ?, NULL, NULL, 4000, 1, 1073741824, 1, 1)",
		"INSERT INTO records VALUES (7, 1, 4, 2, 'a/b', 1700000000123, x'0102')",
		"INSERT INTO records VALUES (8, 1, 4, 2, 'a/c', 1700000000124, x'03')",
		"INSERT INTO invocations VALUES (2, 1, 1, 'e2', 2, 's', ?, 'trap', 'boom', 1000, 1, 1073741824, 0, 0)",
	} {
		var args []any
		if len(q) > 20 && q[:20] == "INSERT INTO invocati" {
			args = []any{now}
		}
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	_ = db.Close()
	s := openStore(t, Config{Path: path})
	recs, err := s.Pending(context.Background(), 0, 10, 1<<20)
	if err != nil || len(recs) != 2 {
		t.Fatalf("pending after migration = %+v, %v", recs, err)
	}
	want := edgefn.Record{Gateway: "gw1", Seq: 7, Function: "f", Version: 4, Source: "mqtt", Subject: "a/b", Time: time.UnixMilli(1700000000123), Payload: []byte{1, 2}}
	if r := recs[0]; r.Seq != want.Seq || r.Function != want.Function || r.Version != want.Version || r.Source != want.Source ||
		r.Subject != want.Subject || !r.Time.Equal(want.Time) || string(r.Payload) != string(want.Payload) || recs[1].Subject != "a/c" {
		t.Fatalf("pending after migration = %+v", recs)
	}
	inv := emitInv("f", "x")
	inv.Duration, inv.MemoryCap = 2*time.Millisecond, int64(edgefn.GiB)
	mustCommit(t, s, inv)
	if seqs := mustCommit(t, s, emitInv("f", "y")); seqs[0] != 10 {
		t.Fatalf("seqs after migration = %v, want [10]", seqs)
	}
	u, err := s.Usage(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].Invocations != 4 || u[0].Errors != 1 || u[0].Cold != 1 || u[0].Warm != 3 ||
		u[0].TotalDuration != 9*time.Millisecond || u[0].P99Duration != 4*time.Millisecond || u[0].GBSeconds < 0.00701 || u[0].GBSeconds > 0.00702 {
		t.Fatalf("usage = %+v", u)
	}
	if st := stats(t, s); st.Invocations != 4 || st.Depth != 4 || st.Functions["f"].Depth != 4 {
		t.Fatalf("stats = %+v", st)
	}
}

// Streams no pending record uses are deleted once there are many, so
// topics with ever-new subjects do not grow the table without end.
func TestStreamsPruned(t *testing.T) {
	s := openStore(t, Config{Durability: DurabilityNormal})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 32 {
		wg.Go(func() {
			for i := range (minStreamsGC + 200) / 32 {
				inv := emitInv("f", "x")
				inv.Subject = fmt.Sprintf("dev/%d/%d", w, i)
				if _, err := s.Commit(ctx, inv); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	keep := mustCommit(t, s, emitInv("f", "keep"))
	recs, err := s.Pending(ctx, 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var seqs []uint64
	for _, r := range recs[:len(recs)-1] {
		seqs = append(seqs, r.Seq)
	}
	if err := s.Confirm(ctx, seqs); err != nil {
		t.Fatal(err)
	}
	count := func() (n int) {
		if err := s.execWriter(ctx, func(ctx context.Context, db *sql.Conn) error {
			return db.QueryRowContext(ctx, "SELECT count(*) FROM streams").Scan(&n)
		}); err != nil {
			t.Fatal(err)
		}
		return n
	}
	deadline := time.Now().Add(20 * time.Second)
	for count() > 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d streams left, want 1", count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, err = s.Pending(ctx, 0, 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].Seq != keep[0] || recs[0].Subject != "sensors/a/t" || string(recs[0].Payload) != "keep" {
		t.Fatalf("pending = %+v, %v", recs, err)
	}
	seq := mustCommit(t, s, emitInv("f", "after"))
	recs, err = s.Pending(ctx, keep[0], 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].Seq != seq[0] || recs[0].Function != "f" || recs[0].Version != 3 {
		t.Fatalf("pending = %+v, %v", recs, err)
	}
}

// Once a backlog has drained, the idle store gives the free pages back to
// the file system (VACUUM: new databases have no auto_vacuum).
func TestReclaimAfterDrain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox.db")
	s := openStore(t, Config{Path: path, Durability: DurabilityNormal, CheckpointInterval: 100 * time.Millisecond})
	ctx := context.Background()
	payload := string(make([]byte, 1000))
	for range 20 {
		inv := emitInv("f")
		for range 150 {
			inv.Effects = append(inv.Effects, emitInv("f", payload).Effects...)
		}
		mustCommit(t, s, inv)
	}
	checkpoint(t, s)
	full := fileSize(path)
	if full < 2<<20 {
		t.Fatalf("database of %d bytes, want >= 2MiB", full)
	}
	recs, err := s.Pending(ctx, 0, 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	seqs := make([]uint64, len(recs))
	for i, r := range recs {
		seqs[i] = r.Seq
	}
	if err := s.Confirm(ctx, seqs[:len(seqs)-1]); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for fileSize(path) > full/8 {
		if time.Now().After(deadline) {
			t.Fatalf("database still %d bytes (was %d) after the backlog drained", fileSize(path), full)
		}
		time.Sleep(50 * time.Millisecond)
	}
	recs, err = s.Pending(ctx, 0, 10, 1<<20)
	if err != nil || len(recs) != 1 || recs[0].Seq != seqs[len(seqs)-1] {
		t.Fatalf("pending after reclaim = %d records, %v", len(recs), err)
	}
	if seq := mustCommit(t, s, emitInv("f", "after")); seq[0] != seqs[len(seqs)-1]+1 {
		t.Fatalf("seq after reclaim = %v", seq)
	}
}
