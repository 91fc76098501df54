package uplink_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/edgefn/edgefn"
	"github.com/edgefn/edgefn/internal/testutil"
	"github.com/edgefn/edgefn/sync/outbox"
	"github.com/edgefn/edgefn/sync/uplink"
	"github.com/edgefn/edgefn/sync/uplink/internal/receiver"
)

const (
	envChild  = "EDGEFN_UPLINK_CRASH_CHILD"
	envOutbox = "EDGEFN_UPLINK_CRASH_OUTBOX"
	envURL    = "EDGEFN_UPLINK_CRASH_URL"
	envDrain  = "EDGEFN_UPLINK_CRASH_DRAIN"
)

// TestCrashChild is not a test: it is the child process of
// TestKillNineResumes. It opens the outbox, runs the HTTP uplink, commits
// records from two goroutines and prints "ack <seq> <function>" once each
// Commit has returned. With envDrain set it commits nothing and exits once
// the outbox is empty.
func TestCrashChild(t *testing.T) {
	if os.Getenv(envChild) != "1" {
		t.Skip("helper process for TestKillNineResumes")
	}
	ctx := context.Background()
	st, err := outbox.Open(ctx, outbox.Config{Path: os.Getenv(envOutbox), Gateway: "gw1", Durability: outbox.DurabilityFull, SkipQuickCheck: true})
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: open outbox:", err)
		os.Exit(3)
	}
	u, err := uplink.NewHTTP(uplink.HTTPConfig{URL: os.Getenv(envURL), Timeout: 2 * time.Second,
		Batch:       uplink.Batch{MaxRecords: 40, Linger: 2 * time.Millisecond},
		Backoff:     uplink.Backoff{Min: 10 * time.Millisecond, Max: 100 * time.Millisecond},
		StrictOrder: strictOrder}, st, nil)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child: uplink:", err)
		os.Exit(3)
	}
	go func() { _ = u.Run(ctx) }()
	if os.Getenv(envDrain) == "1" {
		tick := time.NewTicker(10 * time.Millisecond)
		for range tick.C { // poll the outbox until the uplink has emptied it
			if s, err := st.Stats(ctx); err == nil && s.Depth == 0 {
				fmt.Println("drained")
				os.Exit(0)
			}
		}
	}
	var wg sync.WaitGroup
	for g := range 2 {
		wg.Go(func() {
			for i := 0; ; i++ {
				fn := functions[(g+i)%len(functions)]
				seqs, err := st.Commit(ctx, &outbox.Invocation{Function: fn, Version: 1, EventID: "e", Source: edgefn.SourceTimer,
					Subject: "tick", Effects: []edgefn.Effect{
						{Kind: edgefn.EffectEmit, Payload: fmt.Appendf(nil, `{"g":%d,"i":%d}`, g, i)},
						{Kind: edgefn.EffectEmit, Payload: fmt.Appendf(nil, `{"g":%d,"i":%d,"second":true}`, g, i)}}})
				if err != nil {
					fmt.Fprintln(os.Stderr, "child: commit:", err)
					os.Exit(3)
				}
				var b strings.Builder
				for _, s := range seqs {
					fmt.Fprintf(&b, "ack %d %s\n", s, fn)
				}
				os.Stdout.WriteString(b.String()) // one write: a kill cannot tear a line
			}
		})
	}
	wg.Wait()
}

// TestKillNineResumes kills a child process running the outbox and the HTTP
// uplink with SIGKILL at random moments, restarts it, and checks that every
// record whose Commit returned reached the cloud, in order per function.
func TestKillNineResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("kill -9 crash test: skipped with -short")
	}
	r := receiver.Start(t)
	path := t.TempDir() + "/outbox.db"
	want := map[string]string{}
	var mu sync.Mutex
	const kills = 22
	for i := range kills {
		// Sometimes the cloud is failing too, so the backlog builds up and a
		// kill lands between a delivery and its Confirm.
		if i%4 == 3 {
			r.Fail(503, "", i%8 == 7)
		} else {
			r.OK()
		}
		c := child(t, path, r.URL(), false)
		acks := make(chan struct{})
		go func() {
			defer close(acks)
			for l := range c.Lines() {
				f := strings.Fields(l)
				if len(f) == 3 && f[0] == "ack" {
					if _, err := strconv.ParseUint(f[1], 10, 64); err == nil {
						mu.Lock()
						want["gw1:"+f[1]] = f[2]
						mu.Unlock()
					}
				}
			}
		}()
		// The random moment of the kill: 50-450ms into the child's life.
		time.Sleep(time.Duration(50+rand.IntN(400)) * time.Millisecond)
		c.Kill9(t)
		<-acks
	}
	r.OK()
	c := child(t, path, r.URL(), true)
	done := make(chan error, 1)
	go func() {
		for range c.Lines() {
		}
		done <- c.Wait()
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("draining child: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("draining child did not empty the outbox in 60s") // killed at cleanup
	}
	mu.Lock()
	defer mu.Unlock()
	if len(want) < kills*10 {
		t.Errorf("only %d records acknowledged over %d runs; the child is not committing under load", len(want), kills)
	}
	t.Logf("%d acknowledged records over %d kill -9 restarts", len(want), kills)
	checkDelivery(t, r.Lines(), want)
}

func child(t *testing.T, path, url string, drain bool) *testutil.Child {
	t.Helper()
	env := []string{envChild + "=1", envOutbox + "=" + path, envURL + "=" + url}
	if drain {
		env = append(env, envDrain+"=1")
	}
	return testutil.StartChild(t, "TestCrashChild", env...)
}
