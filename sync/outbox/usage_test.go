package outbox

import (
	"context"
	"database/sql"
	"math/rand/v2"
	"path/filepath"
	"slices"
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
	inv := emitInv("f", "x")
	inv.Duration, inv.MemoryCap = 2*time.Millisecond, int64(edgefn.GiB)
	mustCommit(t, s, inv)
	u, err := s.Usage(context.Background(), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(u) != 1 || u[0].Invocations != 3 || u[0].Errors != 1 || u[0].Cold != 1 || u[0].Warm != 2 ||
		u[0].TotalDuration != 7*time.Millisecond || u[0].P99Duration != 4*time.Millisecond || u[0].GBSeconds < 0.00699 || u[0].GBSeconds > 0.00701 {
		t.Fatalf("usage = %+v", u)
	}
	if st := stats(t, s); st.Invocations != 3 {
		t.Fatalf("stats = %+v", st)
	}
}
