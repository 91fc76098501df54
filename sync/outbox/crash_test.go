package outbox

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn/internal/testutil"
)

const crashEnv = "EDGEFN_OUTBOX_CRASH_DB"

// TestHelperProcess is the child of TestCrashDurability: it commits in a
// loop from several goroutines and prints each seq once Commit returned,
// until it is killed.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("helper process for TestCrashDurability")
	}
	s, err := Open(context.Background(), Config{Path: path, Gateway: "gw", Durability: Durability(os.Getenv(crashEnv + "_MODE"))})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				inv := emitInv("crash", fmt.Sprintf("w%d-%d", w, i))
				seqs, err := s.Commit(context.Background(), inv)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				for _, q := range seqs {
					// One write per line: a pipe write this small is atomic.
					os.Stdout.WriteString(strconv.FormatUint(q, 10) + "\n")
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}

// TestCrashDurability kills -9 a child that commits in a loop at random
// moments, then checks that every seq the child was told is durable is in
// the database, and that seqs keep increasing after the crash. A process
// crash is what both durability modes survive.
func TestCrashDurability(t *testing.T) {
	rounds := 20
	if testing.Short() {
		rounds = 5
	}
	path := filepath.Join(t.TempDir(), "outbox.db")
	var highest uint64
	total := 0
	for round := range rounds {
		mode := DurabilityFull
		if round%2 == 1 {
			mode = DurabilityNormal
		}
		child := testutil.StartChild(t, "TestHelperProcess", crashEnv+"="+path, crashEnv+"_MODE="+string(mode))
		seqs := make(chan uint64, 1<<16)
		read := make(chan struct{})
		go func() {
			defer close(read)
			for l := range child.Lines() {
				q, err := strconv.ParseUint(l, 10, 64)
				if err != nil {
					t.Errorf("child printed %q", l)
					continue
				}
				seqs <- q
			}
		}()
		// Let it commit for a random while after its first durable commit.
		var printed []uint64
		select {
		case q := <-seqs:
			printed = append(printed, q)
		case <-read:
			t.Fatalf("round %d: child exited before committing", round)
		case <-time.After(20 * time.Second):
			t.Fatalf("round %d: child committed nothing in 20s", round)
		}
		time.Sleep(time.Duration(rand.IntN(80)) * time.Millisecond) // a random crash moment, not a wait for a condition
		child.Kill9(t)
		<-read
		close(seqs)
		for q := range seqs {
			printed = append(printed, q)
		}
		s, err := Open(context.Background(), Config{Path: path, Gateway: "gw", Logger: testLogger(t)})
		if err != nil {
			t.Fatalf("round %d: reopen after kill -9: %v", round, err)
		}
		recs, err := s.Pending(context.Background(), 0, 1<<30, 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		have := make(map[uint64]bool, len(recs))
		for _, r := range recs {
			have[r.Seq] = true
		}
		for _, q := range printed {
			if !have[q] {
				t.Fatalf("round %d (%s): seq %d was reported durable but is missing after kill -9", round, mode, q)
			}
			highest = max(highest, q)
		}
		// New seqs continue past everything ever handed out.
		next := mustCommit(t, s, emitInv("crash", "after"))
		if next[0] <= highest {
			t.Fatalf("round %d: seq %d after the crash, but %d was already used", round, next[0], highest)
		}
		highest = next[0]
		// Confirm everything, so the next round also proves seqs survive an
		// empty table.
		all := make([]uint64, 0, len(recs)+1)
		for _, r := range recs {
			all = append(all, r.Seq)
		}
		if err := s.Confirm(context.Background(), append(all, next[0])); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		total += len(printed)
	}
	t.Logf("%d rounds, %d durable seqs checked", rounds, total)
}
